"""The experiments, the plots and the command line, end to end on small data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.image import imread

from adadelta.app import cli, experiments
from adadelta.app.datasets import Dataset
from adadelta.app.trainer import read_metrics

SHARED_MNIST = Path(
    os.environ.get(
        "ADADELTA_SHARED_MNIST", Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    )
)


def tiny_data(n_train: int = 300, n_test: int = 100, seed: int = 0) -> Dataset:
    """Two separable blobs in 784 dimensions, labels 0 and 1, learnable in an epoch."""
    rng = np.random.default_rng(seed)
    centres = rng.random((10, 784), dtype=np.float32)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 10, n)
        x = np.clip(centres[y] + 0.1 * rng.standard_normal((n, 784)), 0, 1).astype(np.float32)
        return x, y.astype(np.int64)

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    return Dataset("blobs", x_train, y_train, x_test, y_test)


def context(tmp_path: Path, *, epochs: int | None = None, seeds: int = 1) -> experiments.Context:
    return experiments.Context(tiny_data(), tmp_path, seeds=seeds, progress=False, epochs=epochs)


def test_run_spec_builds_the_papers_optimizers() -> None:
    params = {"W": np.zeros(3, np.float32)}
    momentum = experiments.RunSpec.of("MOMENTUM", {"lr": 0.1}, "relu", 0).optimizer(params)
    assert momentum.param_groups[0]["momentum"] == experiments.MOMENTUM
    assert momentum.param_groups[0]["lr"] == 0.1
    delta = experiments.RunSpec.of("ADADELTA", {"rho": 0.9, "eps": 1e-4}, "tanh", 0)
    group = delta.optimizer({"W": np.zeros(3)}).param_groups[0]
    assert (group["rho"], group["eps"], group["lr"]) == (0.9, 1e-4, 1.0)
    assert delta.name == "tanh-ADADELTA-rho0.9-eps0.0001-seed0"
    with pytest.raises(ValueError, match="method must be one of"):
        experiments.RunSpec.of("NEWTON", {}, "relu", 0)


def test_a_longer_run_supplies_the_epochs_of_a_shorter_one(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    spec = experiments.RunSpec.of("ADAGRAD", {"lr": 0.01}, "relu", 0)
    long = experiments.run(spec, 3, ctx)
    fresh = experiments.run(spec, 2, context(tmp_path / "fresh"))
    reused = experiments.run(spec, 2, ctx)
    assert len(long.test_error) == 3
    assert reused.test_error == long.test_error[:2] == fresh.test_error
    assert reused.directory == long.directory is not None
    assert len(read_metrics(long.directory)) == 3  # not retrained


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_a_diverging_run_is_recorded_as_diverged(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    spec = experiments.RunSpec.of("SGD", {"lr": 1e12}, "relu", 0)
    result = experiments.run(spec, 2, ctx)
    assert result.diverged_at_epoch == 1
    assert result.test_error == [None, None]
    assert experiments.run(spec, 2, ctx).diverged_at_epoch == 1  # remembered, not retrained
    assert experiments._cell([result], 2) == "diverged"


def test_tables_put_the_papers_numbers_beside_ours(tmp_path: Path) -> None:
    ctx = context(tmp_path, epochs=1)
    report = experiments.table2_experiment(ctx)
    experiments.write_report(report, ctx)
    assert len(report.runs) == 12
    assert "(1.83)" in report.markdown and "rho = 0.95" in report.markdown
    document = json.loads((tmp_path / "table2.json").read_text())
    run = document["runs"][0]
    assert set(run) >= {"optimizer", "settings", "seed", "test_error"}
    assert run["optimizer"] == "ADADELTA" and len(run["test_error"]) == 1
    assert 0 <= run["test_error"][0] <= 100


def test_seeds_give_mean_and_std(tmp_path: Path) -> None:
    ctx = context(tmp_path, epochs=1, seeds=2)
    report = experiments.tanh_experiment(ctx)
    assert [r.spec.seed for r in report.runs] == [0, 1]
    assert "±" in report.markdown
    assert (
        "- not applicable: within 0.3 points of the paper's 2.00% (needs 6 epochs, this run "
        "has 1; needs all of MNIST (60000 train / 10000 test), this run has blobs, 300 train / "
        "100 test)" in report.markdown
    )
    assert "MISSED" not in report.markdown and "met:" not in report.markdown


@pytest.mark.parametrize(
    ("name", "n_train", "epochs", "expected"),
    [
        ("mnist", 60_000, 6, "- met: target"),
        ("mnist", 60_000, 5, "- not applicable: target (needs 6 epochs, this run has 5)"),
        ("mnist", 59_999, 6, "- not applicable: target (needs all of MNIST"),
        ("blobs", 60_000, 6, "- not applicable: target (needs all of MNIST"),
    ],
)
def test_targets_apply_only_to_the_papers_setting(
    tmp_path: Path, name: str, n_train: int, epochs: int, expected: str
) -> None:
    data = SimpleNamespace(name=name, y_train=np.zeros(n_train), y_test=np.zeros(10_000))
    ctx = experiments.Context(data, tmp_path)  # type: ignore[arg-type]
    assert experiments._target(ctx, epochs, 6, True, "target").startswith(expected)
    if expected.endswith("met: target"):
        assert experiments._target(ctx, epochs, 6, False, "target") == "- MISSED: target"


def test_figure2_traces_step_sizes(tmp_path: Path) -> None:
    # 13 batches an epoch, 5 epochs: samples at steps 1 and 61
    ctx = experiments.Context(tiny_data(n_train=1300), tmp_path, progress=False, epochs=5)
    report = experiments.figure2_experiment(ctx)
    assert report.figures == ["figure2.png"]
    image = imread(tmp_path / "figure2.png")
    assert image.shape[0] > 300 and image.std() > 0
    assert "W1" in report.markdown and "W3" in report.markdown


@pytest.fixture
def small_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's sweeps cut to a few settings (the whole demo takes about a minute)."""
    monkeypatch.setattr(experiments, "DEMO_LEARNING_RATES", (0.1, 1e-3))
    monkeypatch.setattr(experiments, "DEMO_RHOS", (0.95,))
    monkeypatch.setattr(experiments, "DEMO_EPSILONS", (1e-6, 1e-2))


def test_demo_command_draws_and_tabulates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the sweeps cut to one more setting each (the whole demo takes about 30 s)
    monkeypatch.setattr(experiments, "DEMO_LEARNING_RATES", (0.1,))
    monkeypatch.setattr(experiments, "DEMO_RHOS", (0.95,))
    monkeypatch.setattr(experiments, "DEMO_EPSILONS", (1e-6, 1e-2))
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--epochs", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert (
        "| method | settings | ep 1 |" in printed and "| learning rate | SGD | ADAGRAD |" in printed
    )
    document = json.loads((out / "demo.json").read_text())
    assert document["data"] == "mnist-demo, 10000 train / 2000 test"
    runs = {(r["optimizer"], tuple(r["settings"].items())): r for r in document["runs"]}
    # the four curves, ADAGRAD at 0.1, ADADELTA at eps 1e-2: no run twice
    assert len(runs) == len(document["runs"]) == 6
    assert all(len(r["test_error"]) == 1 for r in document["runs"])
    # on 10,000 real digits, ADADELTA beats chance (90%) after one epoch at both eps
    for eps in (1e-6, 1e-2):
        assert runs["ADADELTA", (("rho", 0.95), ("eps", eps))]["test_error"][0] < 50
    image = imread(out / "demo.png")
    assert image.ndim == 3 and image.shape[1] > 2 * image.shape[0] and image.std() > 0


@pytest.mark.usefixtures("small_demo")
def test_demo_says_what_its_sweeps_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(experiments, "DEMO_LEARNING_RATES", (1e12, 0.1, 1e-3))
    with pytest.warns(RuntimeWarning):  # SGD at lr 1e12 overflows and diverges
        report = experiments.demo(context(tmp_path), epochs=4)
    finals = {
        (r.spec.method, r.spec.settings): r.test_error[experiments.DEMO_SWEEP_EPOCHS - 1]
        for r in report.runs
    }
    sgd = [finals["SGD", (("lr", lr),)] for lr in (0.1, 1e-3)]
    adagrad = [finals["ADAGRAD", (("lr", lr),)] for lr in (1e12, 0.1, 1e-3)]
    delta = [finals["ADADELTA", (("rho", 0.95), ("eps", eps))] for eps in (1e-6, 1e-2)]
    assert None not in [*sgd, *delta]
    assert finals["SGD", (("lr", 1e12),)] is None
    md = report.markdown
    assert "| 1e+12 | diverged |" in md
    assert (
        f"- SGD over 3 learning rates: {min(sgd):.2f}% to {max(sgd):.2f}% after 3 epochs "
        f"(spread {max(sgd) - min(sgd):.2f} points, 1 diverged)" in md
    )
    assert f"- ADADELTA over 2 (rho, eps) settings: {min(delta):.2f}% to {max(delta):.2f}%" in md
    beaten = 1 + sum(v > max(delta) for v in sgd)  # the diverged run counts as beaten
    assert f"beats SGD at {beaten} of its 3 learning rates" in md
    beaten = sum(v is None or v > max(delta) for v in adagrad)
    assert f"beats ADAGRAD at {beaten} of its 3 learning rates" in md
    curves = [r for r in report.runs if len(r.test_error) == 4]
    assert {r.spec.method for r in curves} == set(experiments.METHODS)
    assert (tmp_path / "demo.png").is_file() and (tmp_path / "demo.json").is_file()
    assert not (tmp_path / "runs").exists()  # trained in memory, no checkpoints


@pytest.mark.skipif(
    not SHARED_MNIST.is_dir(), reason="needs the real MNIST files in ../shared/data/mnist"
)
def test_reproduce_command_on_a_subset_of_mnist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "results"
    argv = ["reproduce", "all", "--data", str(SHARED_MNIST), "--out", str(out)]
    argv += ["--subset", "700,200", "--epochs", "2", "--no-download", "--no-progress"]
    assert cli.main(argv) == 0
    for name in experiments.ALL_ORDER:
        assert (out / f"{name}.json").is_file() and (out / f"{name}.md").is_file()
    assert (out / "figure1.png").is_file() and (out / "figure2.png").is_file()
    table1 = json.loads((out / "table1.json").read_text())
    assert len(table1["runs"]) == 15
    printed = capsys.readouterr().out
    assert "## table2" in printed and "(89.68)" in printed


def test_command_line_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "figure9"])
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "tanh", "--subset", "10"])
    with pytest.raises(SystemExit):
        cli.main(["demo", "--epochs", "0"])
    assert "invalid choice" in capsys.readouterr().err
