"""Asynchronous training against a sharded parameter server: the shards apply the library's
optimizers exactly, the staleness bookkeeping, the simulator's determinism, the run cache,
the command's errors, and real Ray runs (2 replicas, 2 shards) with a replica or a shard lost."""

from __future__ import annotations

import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adadelta.app import downpour
from adadelta.app.cli import main
from adadelta.app.datasets import Dataset, load_embedded_digits
from adadelta.app.model import MLP

SMALL = (784, 16, 16, 10)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_embedded_digits().subset(1000, 300)


def config(data: Dataset, **kw: Any) -> downpour.RunConfig:
    settings = {
        "method": "ADADELTA",
        "settings": (("rho", 0.95), ("eps", 1e-6)),
        "replicas": 4,
        "seed": 0,
        "engine": "simulate",
        "data": downpour.data_key(data),
        "sizes": SMALL,
        "shards": 3,
        "updates": 40,
        "eval_every": 10,
        "jitter": 0.3,
    }
    settings.update(kw)
    return downpour.RunConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("method", downpour.METHODS)
def test_the_shards_apply_the_library_optimizer_exactly(method: str) -> None:
    settings = dict(downpour.GRID[method][-1])
    model = MLP(SMALL, "relu", seed=1)
    reference = downpour.make_optimizer(method, settings, model.params)
    flat = downpour.flatten(model.params)
    bounds = downpour.bounds_of(flat.size, 3)
    shards = [
        downpour.Shard(flat[a:b], method, settings, 100) for a, b in itertools.pairwise(bounds)
    ]
    server = downpour.LocalServer(shards, bounds)
    rng = np.random.default_rng(0)
    for step in range(5):
        grads = {
            k: rng.standard_normal(p.shape).astype(np.float32) for k, p in model.params.items()
        }
        reference.step(grads)
        assert server.push(0, downpour.flatten(grads), [step] * 3, 0.0)
    got, versions = server.fetch()
    np.testing.assert_array_equal(got, downpour.flatten(model.params))
    assert versions == [5, 5, 5]


def test_staleness_of_replicas_in_lock_step(data: Dataset) -> None:
    c = config(data, replicas=4, jitter=0.0)
    results = downpour.simulate(c, data)
    for shard in results:
        staleness = shard["records"][:, 1].astype(int).tolist()
        # equal step times: the four replicas fetch the same version, and their four pushes
        # arrive one after the other before any of them fetches again
        assert staleness == [0, 1, 2, 3] * 10
        assert shard["version"] == 40
    *_, counts, pushes, diverged = downpour.evaluate(c, results, data)
    assert counts == {0: 30, 1: 30, 2: 30, 3: 30} and pushes == [10] * 4 and diverged is None


def test_pushes_every_n_push_steps_carry_the_fetched_version(data: Dataset) -> None:
    c = config(data, replicas=2, n_push=2, n_fetch=4, jitter=0.0, updates=16)
    results = downpour.simulate(c, data)
    records = results[0]["records"]
    assert len(records) == 8  # 16 steps, one push of two steps' mean gradient each
    # both fetch before their steps 1 and 5 and push after their steps 2, 4, 6 and 8
    staleness = records[:, 1].astype(int).tolist()
    assert staleness == [0, 1, 2, 3] * 2


def test_one_replica_is_sequential_training_with_the_library_optimizer(data: Dataset) -> None:
    c = config(data, replicas=1, updates=25, eval_every=25)
    results = downpour.simulate(c, data)
    model = MLP(SMALL, "relu", seed=0)
    optimizer = downpour.make_optimizer("ADADELTA", {"rho": 0.95, "eps": 1e-6}, model.params)
    rng = np.random.default_rng([0, 0])  # replica 0's own order, a new one for each pass
    n = len(data.y_train)
    order = rng.permutation(n)
    for step in range(25):
        if step % (n // 100) == 0 and step:
            order = rng.permutation(n)
        rows = order[step % (n // 100) * 100 :][:100]
        _, grads = model.loss_and_grads(data.x_train[rows], data.y_train[rows])
        optimizer.step(grads)
    flat = np.concatenate([r["param"] for r in results])
    np.testing.assert_array_equal(flat, downpour.flatten(model.params))
    assert all(r["records"][:, 1].max() == 0 for r in results)


def test_the_simulator_is_deterministic(data: Dataset) -> None:
    c = config(data, replicas=5)
    first, second = downpour.simulate(c, data), downpour.simulate(c, data)
    other = downpour.simulate(config(data, replicas=5, seed=1), data)
    for a, b, o in zip(first, second, other, strict=True):
        np.testing.assert_array_equal(a["records"], b["records"])
        np.testing.assert_array_equal(a["param"], b["param"])
        assert not np.array_equal(a["param"], o["param"])
    assert len({tuple(r[:, 1]) for r in (first[0]["records"], other[0]["records"])}) == 2


def test_a_diverging_run_stops_and_says_where(data: Dataset) -> None:
    c = config(data, method="SGD", settings=(("lr", 1e4),), updates=60)
    results = downpour.simulate(c, data)
    *_, diverged = downpour.evaluate(c, results, data)
    assert diverged is not None and diverged < 60
    assert all(r["version"] < 60 for r in results)


def test_completed_runs_are_reused_by_their_whole_configuration(
    data: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = config(data)
    first = downpour.run(c, data, tmp_path)
    files = list((tmp_path / "runs").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["config"]["replicas"] == 4
    assert first.versions == [0, 10, 20, 30, 40] and first.test_error[-1] < first.test_error[0]

    def no_training(*args: Any, **kw: Any) -> Any:
        raise AssertionError("a completed run was trained again")

    monkeypatch.setattr(downpour, "simulate", no_training)
    again = downpour.run(c, data, tmp_path)
    assert again == first
    with pytest.raises(AssertionError, match="trained again"):  # any other setting trains
        downpour.run(config(data, jitter=0.31), data, tmp_path)


def test_an_interrupted_command_keeps_completed_runs_and_resumes(
    data: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setattr("adadelta.app.datasets.load_mnist", lambda *a, **k: data)
    monkeypatch.setattr(downpour, "SIZES", SMALL)
    argv = ["async", "--ray", "none", "--simulate", "2,3", "--methods", "ADADELTA,ADAGRAD",
            "--updates", "30", "--out", str(tmp_path), "--no-progress"]  # fmt: skip
    real = downpour.simulate
    calls: list[int] = []

    def interrupted_third(config: downpour.RunConfig, *args: Any) -> Any:
        calls.append(config.replicas)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(config, *args)

    monkeypatch.setattr(downpour, "simulate", interrupted_third)
    assert main(argv) == 130
    assert "2 completed run(s) are kept" in capsys.readouterr().err
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2
    assert main(argv) == 0  # the two completed runs are reused, the other two trained
    assert len(calls) == 5
    text = (tmp_path / "async.md").read_text()
    assert "| ADADELTA |" in text and "N = 3" in text
    assert (tmp_path / "async-simulate-30u-j0.3-N3.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shards", "999999"], "--shards: 999999 is more than the network's"),
        (["--simulate", "1", "--updates", "3", "--ray", "4"], "--updates: 3 is fewer than"),
        (["--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster answers there"),
        (["--ray", "none", "--simulate", "none"], "nothing to run"),
    ],
)
def test_bad_configurations_are_one_line_errors_before_any_work(
    args: list[str], message: str, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "out"
    assert main(["async", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adadelta: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_zero_replicas_is_an_argument_error(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["async", "--simulate", "0,4"])
    assert exit_.value.code == 2
    assert "replica counts must be at least 1" in capsys.readouterr().err


# --- real Ray runs ---


@pytest.fixture(scope="module")
def ray_cluster() -> Any:
    ray = pytest.importorskip("ray", reason="the async extra (ray) is not installed")
    ray.init(
        num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
        configure_logging=False,
    )  # fmt: skip
    yield ray
    ray.shutdown()


def ray_config(data: Dataset, **kw: Any) -> downpour.RunConfig:
    return config(data, engine="ray", jitter=None, replicas=2, shards=2, **kw)


def test_a_real_ray_run_records_every_gradient_and_its_staleness(
    ray_cluster: Any, data: Dataset, tmp_path: Path
) -> None:
    c = ray_config(data, updates=60, eval_every=20)
    result = downpour.run(c, data, tmp_path)
    assert result.pushes == [30, 30] and result.lost == []
    assert sum(result.staleness.values()) == 2 * 60  # every gradient slice on both shards
    assert max(result.staleness) <= 4 and result.versions == [0, 20, 40, 60]
    assert result.test_error[-1] < result.test_error[0]
    assert result.step_seconds[0] > 0
    assert len(list((tmp_path / "runs").glob("ray-*.json"))) == 1


def test_a_lost_replica_leaves_the_others_going(ray_cluster: Any, data: Dataset) -> None:
    killed: list[int] = []

    def kill_replica(applied: int, replicas: list[Any], shards: list[Any]) -> None:
        if applied >= 10 and not killed:
            ray_cluster.kill(replicas[0])
            killed.append(applied)

    c = ray_config(data, updates=800, eval_every=100)
    outcome = downpour.run_ray(c, data, watch=kill_replica, timeout=30)
    assert killed, "the run ended before the replica could be killed"
    assert outcome.lost == [0]
    *_, pushes, diverged = downpour.evaluate(c, outcome.shard_results, data)
    assert pushes[1] == 400 and 10 <= pushes[0] < 400 and diverged is None


def test_a_lost_shard_stops_the_run_and_records_nothing(
    ray_cluster: Any, data: Dataset, tmp_path: Path
) -> None:
    def kill_shard(applied: int, replicas: list[Any], shards: list[Any]) -> None:
        if applied >= 10:
            ray_cluster.kill(shards[1])

    c = ray_config(data, updates=800, eval_every=100)
    with pytest.raises(downpour.DownpourError, match="parameter-server shard was lost"):
        downpour.run(c, data, tmp_path, watch=kill_shard)
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_ctrl_c_during_a_ray_run_stops_every_actor(ray_cluster: Any, data: Dataset) -> None:
    def interrupt(applied: int, replicas: list[Any], shards: list[Any]) -> None:
        raise KeyboardInterrupt

    c = ray_config(data, updates=800, eval_every=100)
    with pytest.raises(KeyboardInterrupt):
        downpour.run_ray(c, data, watch=interrupt, timeout=30)
    deadline = time.monotonic() + 30
    while ray_cluster.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray_cluster.available_resources().get("CPU", 0) == 2  # the actors' shares are back


def test_a_damaged_run_record_is_a_one_line_error(
    data: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    c = config(data)
    downpour.run(c, data, tmp_path)
    (record,) = (tmp_path / "runs").glob("*.json")
    record.write_text('{"config": {"method": ')
    with pytest.raises(downpour.DownpourError, match="not a run record"):
        downpour.run(c, data, tmp_path)
    monkeypatch.setattr("adadelta.app.datasets.load_mnist", lambda *a, **k: data)
    monkeypatch.setattr(downpour, "SIZES", SMALL)
    argv = ["async", "--ray", "none", "--simulate", "4", "--methods", "ADADELTA",
            "--updates", "40", "--out", str(tmp_path), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"adadelta: error: {record}: not a run record") and err.count("\n") == 1
