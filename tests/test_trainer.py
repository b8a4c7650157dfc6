"""The trainer: determinism, exact resume, metrics file, refusals, learning, the Figure 2 probe."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import adadelta
from adadelta.app import model as model_module
from adadelta.app import trainer
from adadelta.app.model import MLP
from adadelta.app.trainer import (
    CHECKPOINT,
    METRICS,
    RunMismatchError,
    StepSizeProbe,
    TrainResult,
    epoch_order,
    read_metrics,
    train,
)
from adadelta.optimizers import Optimizer

SIZES = (20, 16, 4)


@dataclass(frozen=True)
class Blobs:
    """Four Gaussian clusters in 20 dimensions: learnable, but not at the first step."""

    name: str
    x_train: np.ndarray[Any, Any]
    y_train: np.ndarray[Any, Any]
    x_test: np.ndarray[Any, Any]
    y_test: np.ndarray[Any, Any]


def make_blobs(n_train: int = 600, n_test: int = 200, seed: int = 0) -> Blobs:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 20))
    y = rng.integers(0, 4, n_train + n_test)
    x = (centres[y] + rng.normal(scale=0.8, size=(y.size, 20))).astype(np.float32)
    return Blobs("blobs", x[:n_train], y[:n_train], x[n_train:], y[n_train:])


DATA = make_blobs()


def setup(
    optimizer: str = "Adadelta", sizes: tuple[int, ...] = SIZES, **hyper: Any
) -> tuple[MLP, Optimizer]:
    model = MLP(sizes, "tanh", seed=0)
    return model, adadelta.OPTIMIZERS[optimizer](model.params, **hyper)


def numbers(result: TrainResult) -> list[tuple[int, float, float]]:
    """Everything of the history except the wall time."""
    return [(r.epoch, r.train_loss, r.test_error) for r in result.history]


def assert_same_params(a: MLP, b: MLP) -> None:
    assert list(a.params) == list(b.params)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)


def assert_same_state(a: Optimizer, b: Optimizer) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    for i, state in sa["state"].items():
        assert state.keys() == sb["state"][i].keys()
        for key, value in state.items():
            np.testing.assert_array_equal(value, sb["state"][i][key])


class Interrupt(Exception):
    pass


def interrupt_at(epoch: int, batch: int) -> Any:
    def hook(e: int, b: int, model: MLP, optimizer: Optimizer) -> None:
        if (e, b) == (epoch, batch):
            raise Interrupt

    return hook


def test_two_runs_are_identical() -> None:
    model_a, opt_a = setup()
    model_b, opt_b = setup()
    a = train(model_a, opt_a, DATA, epochs=3, progress=False)
    b = train(model_b, opt_b, DATA, epochs=3, progress=False)
    assert numbers(a) == numbers(b)
    assert_same_params(model_a, model_b)
    assert_same_state(opt_a, opt_b)
    assert a.resumed_from == 0 and len(a.history) == 3


def test_another_seed_shuffles_differently() -> None:
    model_a, opt_a = setup()
    model_b, opt_b = setup()
    a = train(model_a, opt_a, DATA, epochs=1, seed=0, progress=False)
    b = train(model_b, opt_b, DATA, epochs=1, seed=1, progress=False)
    assert a.train_losses != b.train_losses


@pytest.mark.parametrize("fresh_objects", [True, False])
def test_resume_after_interruption_matches_an_uninterrupted_run(
    tmp_path: Path, fresh_objects: bool
) -> None:
    model_a, opt_a = setup()
    full = train(model_a, opt_a, DATA, epochs=4, run_dir=tmp_path / "a", progress=False)

    run_dir = tmp_path / "b"
    model_b, opt_b = setup()
    with pytest.raises(Interrupt):
        train(
            model_b,
            opt_b,
            DATA,
            epochs=4,
            run_dir=run_dir,
            progress=False,
            on_batch=interrupt_at(3, 2),  # in the middle of epoch 3, after epoch 2 was saved
        )
    assert [r.epoch for r in read_metrics(run_dir)] == [1, 2]
    if fresh_objects:
        model_b, opt_b = setup()  # a new process would start from scratch
    resumed = train(model_b, opt_b, DATA, epochs=4, run_dir=run_dir, progress=False)

    assert resumed.resumed_from == 2
    assert numbers(resumed) == numbers(full)
    assert_same_params(model_a, model_b)
    assert_same_state(opt_a, opt_b)
    assert [asdict(r) for r in read_metrics(run_dir)][2:] == [asdict(r) for r in resumed.history][
        2:
    ]
    assert [r.test_error for r in read_metrics(run_dir)] == full.test_errors


def test_extending_a_finished_run_matches_a_longer_run(tmp_path: Path) -> None:
    model_a, opt_a = setup("SGD", lr=0.05, momentum=0.9)
    full = train(model_a, opt_a, DATA, epochs=3, batch_size=50, progress=False)
    model_b, opt_b = setup("SGD", lr=0.05, momentum=0.9)
    train(model_b, opt_b, DATA, epochs=1, batch_size=50, run_dir=tmp_path, progress=False)
    model_b, opt_b = setup("SGD", lr=0.05, momentum=0.9)
    longer = train(model_b, opt_b, DATA, epochs=3, batch_size=50, run_dir=tmp_path, progress=False)
    assert longer.resumed_from == 1
    assert numbers(longer) == numbers(full)
    assert_same_params(model_a, model_b)


def test_a_finished_run_returns_its_history_without_training(tmp_path: Path) -> None:
    model, opt = setup()
    first = train(model, opt, DATA, epochs=2, run_dir=tmp_path, progress=False)
    steps = []
    model2, opt2 = setup()
    again = train(
        model2,
        opt2,
        DATA,
        epochs=2,
        run_dir=tmp_path,
        progress=False,
        on_batch=lambda *args: steps.append(args[:2]),
    )
    assert steps == []
    assert again.history == first.history and again.resumed_from == 2
    assert_same_params(model, model2)


def test_metrics_file_has_one_json_line_per_epoch(tmp_path: Path) -> None:
    model, opt = setup()
    result = train(model, opt, DATA, epochs=3, run_dir=tmp_path / "run", progress=False)
    lines = (tmp_path / "run" / METRICS).read_text().splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for record, epoch in zip(records, result.history, strict=True):
        assert set(record) == {"epoch", "train_loss", "test_error", "seconds"}
        assert record == asdict(epoch)
        assert record["seconds"] > 0
    # the test error is a percentage of the 200 test rows
    assert all(round(r["test_error"] * 2) == r["test_error"] * 2 for r in records)
    assert result.test_errors[-1] == model.error_rate(DATA.x_test, DATA.y_test)
    assert (tmp_path / "run" / CHECKPOINT).exists()


def test_training_lowers_the_test_error() -> None:
    model, opt = setup()
    before = model.error_rate(DATA.x_test, DATA.y_test)
    result = train(model, opt, DATA, epochs=5, batch_size=20, progress=True)
    assert before > 40
    assert result.test_errors[-1] < 5
    assert result.train_losses[-1] < 0.5 * result.train_losses[0]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"hyper": {"rho": 0.9}}, r"optimizer\.param_groups\[0\]\.rho"),
        ({"optimizer": "SGD", "hyper": {"lr": 0.1}}, r"optimizer\.name"),
        ({"sizes": (20, 12, 4)}, r"model\.sizes"),
        ({"batch_size": 50}, "batch_size"),
        ({"seed": 1}, "seed"),
        ({"data": make_blobs(n_train=500)}, r"data\.n_train"),
    ],
)
def test_a_checkpoint_of_another_run_is_refused(
    tmp_path: Path, change: dict[str, Any], match: str
) -> None:
    model, opt = setup()
    train(model, opt, DATA, epochs=1, run_dir=tmp_path, progress=False)
    saved = (tmp_path / CHECKPOINT).read_bytes()
    model, opt = setup(
        change.get("optimizer", "Adadelta"), change.get("sizes", SIZES), **change.get("hyper", {})
    )
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(RunMismatchError, match=match):
        train(
            model,
            opt,
            change.get("data", DATA),
            epochs=2,
            batch_size=change.get("batch_size", 100),
            seed=change.get("seed", 0),
            run_dir=tmp_path,
            progress=False,
        )
    assert (tmp_path / CHECKPOINT).read_bytes() == saved
    for name, p in model.params.items():
        np.testing.assert_array_equal(p, before[name])


@pytest.mark.parametrize("damage", ["truncate", "garbage", "not_a_run"])
def test_a_corrupt_checkpoint_raises_checkpoint_error_naming_the_file(
    tmp_path: Path, damage: str
) -> None:
    model, opt = setup()
    train(model, opt, DATA, epochs=1, run_dir=tmp_path, progress=False)
    path = tmp_path / CHECKPOINT
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    else:
        adadelta.save(path, {"weights": np.zeros(3)})
    model, opt = setup()
    with pytest.raises(adadelta.CheckpointError, match=re.escape(str(path))):
        train(model, opt, DATA, epochs=2, run_dir=tmp_path, progress=False)


def test_fewer_epochs_than_checkpointed_is_refused(tmp_path: Path) -> None:
    model, opt = setup()
    train(model, opt, DATA, epochs=2, run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="2 completed epochs, more than the 1 requested"):
        train(*setup(), DATA, epochs=1, run_dir=tmp_path, progress=False)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_run_without_finite_checks_runs_to_the_end(tmp_path: Path) -> None:
    model = MLP(SIZES, "relu", seed=0)
    opt = adadelta.SGD(model.params, lr=1e4, momentum=0.9, check_finite=False)
    result = train(model, opt, DATA, epochs=3, run_dir=tmp_path, progress=False)
    assert not np.isfinite(result.train_losses[-1])
    assert all(0 <= e <= 100 for e in result.test_errors)
    assert [r.epoch for r in read_metrics(tmp_path)] == [1, 2, 3]
    model = MLP(SIZES, "relu", seed=0)
    with pytest.raises(adadelta.NonFiniteGradientError):
        train(
            model, adadelta.SGD(model.params, lr=1e4, momentum=0.9), DATA, epochs=3, progress=False
        )


def test_the_last_batch_may_be_smaller() -> None:
    data = make_blobs(n_train=130, n_test=10)
    seen: list[tuple[int, int]] = []
    model, opt = setup()
    train(
        model,
        opt,
        data,
        epochs=2,
        batch_size=50,
        progress=False,
        on_batch=lambda e, b, m, o: seen.append((e, b)),
    )
    assert seen == [(1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    assert all(s["step"] == 6 for s in opt.state)


def test_hook_sees_the_model_and_optimizer_after_each_step() -> None:
    model, opt = setup()
    steps: list[int] = []

    def hook(epoch: int, batch: int, m: MLP, o: Optimizer) -> None:
        assert m is model and o is opt
        steps.append(o.state[0]["step"])

    train(model, opt, DATA, epochs=2, progress=False, on_batch=hook)
    assert steps == list(range(1, 13))


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch() -> None:
    a = epoch_order(0, 1, 50)
    np.testing.assert_array_equal(np.sort(a), np.arange(50))
    np.testing.assert_array_equal(a, epoch_order(0, 1, 50))
    assert not np.array_equal(a, epoch_order(0, 2, 50))
    assert not np.array_equal(a, epoch_order(1, 1, 50))


def test_bad_arguments_are_refused() -> None:
    model, opt = setup()
    with pytest.raises(ValueError, match="epochs"):
        train(model, opt, DATA, epochs=-1, progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        train(model, opt, DATA, epochs=1, batch_size=0, progress=False)
    wide = Blobs("x", np.zeros((5, 21)), np.zeros(5, int), np.zeros((2, 20)), np.zeros(2, int))
    with pytest.raises(ValueError, match=r"data\.x_train.*20"):
        train(model, opt, wide, epochs=1, progress=False)
    labels = Blobs("x", np.zeros((5, 20)), np.full(5, 4), np.zeros((2, 20)), np.zeros(2, int))
    with pytest.raises(ValueError, match=r"data\.y_train.*0\.\.3"):
        train(model, opt, labels, epochs=1, progress=False)
    other = adadelta.Adadelta(MLP(SIZES, "tanh", seed=0).params)
    with pytest.raises(ValueError, match=r"model\.params"):
        train(model, other, DATA, epochs=1, progress=False)
    assert all(s["step"] == 0 for s in opt.state)


def test_step_size_probe_records_exactly_the_optimizers_steps() -> None:
    model, opt = setup(sizes=(20, 16, 8, 4))
    probe = StepSizeProbe(model, opt, n_dims=5, every=4, seed=1)
    full: list[dict[str, np.ndarray[Any, Any]]] = []
    before = {k: v.copy() for k, v in model.params.items()}
    params: list[dict[str, np.ndarray[Any, Any]]] = [before]

    def reference(epoch: int, batch: int, m: MLP, o: Optimizer) -> None:
        probe(epoch, batch, m, o)
        full.append(
            {f"{k}{i}": s[k].copy() for i, s in enumerate(o.state) for k in s if k != "step"}
        )
        params.append({k: v.copy() for k, v in m.params.items()})

    train(model, opt, DATA, epochs=2, batch_size=50, progress=False, on_batch=reference)
    assert probe.steps == [1, 5, 9, 13, 17, 21]
    arrays = probe.as_arrays()
    for name, slot in (("W1", 0), ("W2", 2), ("W3", 4)):
        idx = probe.indices[name]
        assert arrays[f"step_size/{name}"].shape == (6, 5)
        for k, t in enumerate(probe.steps):
            old = np.zeros(5, np.float32) if t == 1 else full[t - 2][f"E_dx2{slot}"].ravel()[idx]
            new = full[t - 1][f"E_g2{slot}"].ravel()[idx]
            expected = np.sqrt(old + 1e-6) / np.sqrt(new + 1e-6)
            np.testing.assert_array_equal(probe.step_sizes[name][k], expected)
            assert np.all((expected > 0) & (expected < 1))
            applied = params[t][name].ravel()[idx] - params[t - 1][name].ravel()[idx]
            np.testing.assert_allclose(probe.updates[name][k], applied, rtol=1e-3, atol=1e-9)


def test_step_size_probe_refuses_other_settings() -> None:
    model, opt = setup("SGD", lr=0.1)
    with pytest.raises(TypeError, match="Adadelta"):
        StepSizeProbe(model, opt)
    model, opt = setup(lr=0.5)
    with pytest.raises(ValueError, match="lr=1"):
        StepSizeProbe(model, opt)
    model, opt = setup()
    with pytest.raises(ValueError, match="'W9' is not a parameter"):
        StepSizeProbe(model, opt, names=["W9"])


# --- the BLAS threads of training's matrix products ---


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


class FakeLibrary:
    """A BLAS library's thread control that records what it is set to."""

    def __init__(self, threads: int) -> None:
        self.num_threads = threads
        self.settings: list[int] = []

    def set_num_threads(self, threads: int) -> None:
        self.num_threads = threads
        self.settings.append(threads)


def fake_blas(monkeypatch: pytest.MonkeyPatch, threads: int) -> FakeLibrary:
    library = FakeLibrary(threads)

    class Controller:
        def select(self, internal_api: str) -> Any:
            assert internal_api == "openblas"
            return type("Selected", (), {"lib_controllers": [library]})()

    monkeypatch.setattr(trainer, "ThreadpoolController", Controller)
    return library


def test_blas_threads_keep_whichever_setting_took_less_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library = fake_blas(monkeypatch, 4)
    blas = trainer.BlasThreads()
    window, period = blas.WINDOW, blas.PERIOD
    used = []
    # first cycle: one thread is faster in total, though its median batch is slower
    for i in range(2 * window + period):
        used.append(blas.threads)
        on_all = i < window
        slow_batch = 1.0 if i % window == 0 else 0.001
        blas.timed((slow_batch if on_all else 0.002) if i < 2 * window else 0.001)
    assert used[:window] == [4] * window
    assert used[window : 2 * window] == [1] * window
    assert used[2 * window :] == [1] * period and blas.chosen == 1
    # second cycle: all threads faster
    for i in range(2 * window + 1):
        used.append(blas.threads)
        blas.timed(0.001 if i < window else 0.002)
    assert blas.chosen == 4 and blas.threads == 4
    assert used[-1] == 4
    blas.restore()
    assert library.num_threads == 4


def test_blas_threads_leave_one_thread_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    library = fake_blas(monkeypatch, 1)
    blas = trainer.BlasThreads()
    for _ in range(3 * (2 * blas.WINDOW + blas.PERIOD)):
        blas.timed(0.001)
    blas.restore()
    assert library.settings == [] and blas.threads == 1


def test_one_blas_chooser_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trainings in two threads: the second leaves the threads alone, and neither leaves the
    library on one thread."""
    library = fake_blas(monkeypatch, 2)
    first, second = trainer.BlasThreads(), trainer.BlasThreads()
    for _ in range(first.WINDOW + 1):
        first.timed(0.001)
        second.timed(0.001)
    assert library.num_threads == 1 and second.threads == 2
    second.restore()
    assert library.num_threads == 1  # the first one's probe goes on
    first.restore()
    first.restore()
    assert library.num_threads == 2
    third = trainer.BlasThreads()  # free again
    for _ in range(third.WINDOW + 1):
        third.timed(0.001)
    assert library.num_threads == 1
    third.restore()
    assert library.num_threads == 2


def test_training_restores_the_blas_threads_even_when_interrupted() -> None:
    train(*setup(), DATA, epochs=1, progress=False)  # loads every library training loads
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        model, opt = setup(sizes=(20, 64, 4))
        window = trainer.BlasThreads.WINDOW
        seen: list[list[int]] = []

        def hook(e: int, b: int, model: MLP, optimizer: Optimizer) -> None:
            seen.append(blas_threads())
            if b == 2 * window + 1:
                raise Interrupt

        with pytest.raises(Interrupt):
            train(
                model,
                opt,
                make_blobs(n_train=5000),
                epochs=1,
                batch_size=100,
                progress=False,
                on_batch=hook,
            )
        assert blas_threads() == before
    # one window on the library's threads, one on one thread
    assert [1] * len(before) in seen


def test_a_users_own_blas_limit_is_kept() -> None:
    with threadpool_limits(1, user_api="blas"):
        seen: list[list[int]] = []
        model, opt = setup()
        train(
            model,
            opt,
            DATA,
            epochs=2,
            batch_size=10,
            progress=False,
            on_batch=lambda e, b, m, o: seen.append(blas_threads()),
        )
        assert {tuple(s) for s in seen} == {tuple(blas_threads())}
        assert all(n == 1 for n in blas_threads())


def test_training_gives_the_same_bits_on_any_number_of_blas_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What lets training change the BLAS threads as it runs: products whose inner dimensions
    (784, 500) OpenBLAS would sum in other blocks on two threads than on one give the same
    results on both."""
    monkeypatch.setattr(trainer.BlasThreads, "timed", lambda self, seconds: None)
    rng = np.random.default_rng(0)
    x = rng.random((600, 784), dtype=np.float32)
    y = rng.integers(0, 10, 600)
    data = Blobs("noise", x[:500], y[:500], x[500:], y[500:])
    runs = []
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            model = MLP((784, 500, 10), "relu", seed=0)
            opt = adadelta.Adadelta(model.params)
            result = train(model, opt, data, epochs=1, batch_size=100, progress=False)
            runs.append((numbers(result), model, opt))
    assert runs[0][0] == runs[1][0]
    assert_same_params(runs[0][1], runs[1][1])
    assert_same_state(runs[0][2], runs[1][2])


def test_a_checkpoint_of_products_cut_otherwise_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs of an older version (products in one piece) or other pieces give other bits: they
    are not resumed as this model's."""
    train(*setup(), DATA, epochs=1, run_dir=tmp_path, progress=False)
    before = (tmp_path / CHECKPOINT).read_bytes()
    monkeypatch.setattr(model_module, "INNER", model_module.INNER // 2)
    with pytest.raises(RunMismatchError, match="matmul_piece"):
        train(*setup(), DATA, epochs=2, run_dir=tmp_path, progress=False)
    assert (tmp_path / CHECKPOINT).read_bytes() == before


def test_trainings_in_two_threads_give_their_own_bits_and_restore_the_blas_threads() -> None:
    """Concurrent trainings: one chooses the BLAS threads, the other's products change threads
    under it; both end with the bits of a training alone, and the library's setting is back."""
    rng = np.random.default_rng(1)
    x = rng.random((600, 784), dtype=np.float32)
    y = rng.integers(0, 10, 600)
    data = Blobs("noise", x[:500], y[:500], x[500:], y[500:])

    def run() -> MLP:
        model = MLP((784, 500, 10), "relu", seed=0)
        optimizer = adadelta.Adadelta(model.params)
        train(model, optimizer, data, epochs=2, batch_size=10, progress=False)
        return model

    with threadpool_limits(2, user_api="blas"):
        alone = run()  # also loads every library that training loads
        before = blas_threads()
        results: list[MLP] = []
        threads = [threading.Thread(target=lambda: results.append(run())) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert blas_threads() == before
    assert len(results) == 2
    for model in results:
        assert_same_params(model, alone)
