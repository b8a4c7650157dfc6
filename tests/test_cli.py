"""The command line: every error a user can reach is one line and exit status 2, Ctrl-C says
where the run stands and exits with 130, --help shows defaults, --version works."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adadelta.app import cli, datasets, experiments

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No real ~/.cache, no $ADADELTA_DATA, no network, and commands run in tmp_path."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)


def fake_mnist(directory: Path, n_train: int = 30, n_test: int = 10) -> dict[str, str]:
    """Four valid MNIST-format files of random images; returns their SHA-256 table (to patch
    into ``datasets.SHA256``, which otherwise holds the real files' checksums)."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    table = {}
    for key, array in arrays.items():
        header = struct.pack(f">HBB{array.ndim}I", 0, 0x08, array.ndim, *array.shape)
        path = directory / datasets.FILES[key]
        path.write_bytes(gzip.compress(header + array.tobytes(), mtime=0))
        table[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return table


def fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command in-process; assert exit status 2, nothing on stdout, and exactly one
    line on stderr without a traceback; return that line."""
    try:
        status = cli.main(argv)
    except SystemExit as exit_:  # argparse's errors
        status = exit_.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    assert status == 2, (status, out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


# --- errors a user can reach -------------------------------------------------------------------


def test_missing_data_with_no_download_names_the_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    line = fails(["reproduce", "tanh", "--data", str(empty), "--no-download"], capsys)
    assert line.startswith("adadelta: error: MNIST files missing from ")
    assert "--data DIR" in line and "drop --no-download" in line
    assert "download=True" not in line
    assert not (tmp_path / "adadelta-results").exists()  # nothing written for a failed start


def test_missing_data_from_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "nowhere"))
    line = fails(["reproduce", "tanh", "--no-download"], capsys)
    assert f"missing from {tmp_path / 'nowhere'}" in line


def test_a_damaged_data_file_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "mnist"
    monkeypatch.setattr(datasets, "SHA256", fake_mnist(data))
    train_images = data / datasets.FILES["train_images"]
    train_images.write_bytes(train_images.read_bytes()[:-40])  # cut short
    argv = ["reproduce", "tanh", "--data", str(data), "--no-download"]
    line = fails(argv, capsys)
    assert "checksum mismatch" in line and str(train_images) in line
    # the same truncated file, with its checksum accepted: the gzip stream is found short
    table = dict(datasets.SHA256)
    table[train_images.name] = hashlib.sha256(train_images.read_bytes()).hexdigest()
    monkeypatch.setattr(datasets, "SHA256", table)
    line = fails(argv, capsys)
    assert "truncated" in line and str(train_images) in line


def test_a_subset_larger_than_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "mnist"
    monkeypatch.setattr(datasets, "SHA256", fake_mnist(data, n_train=30, n_test=10))
    argv = ["reproduce", "tanh", "--data", str(data), "--no-download"]
    line = fails([*argv, "--subset", "99999,500"], capsys)
    assert line == (
        "adadelta: error: --subset 99999,500: MNIST has 30 training and 10 test images; "
        "choose N_TRAIN <= 30 and N_TEST <= 10"
    )
    line = fails([*argv, "--subset", "30,11"], capsys)
    assert "N_TEST <= 10" in line


@pytest.mark.parametrize("command", [["demo"], ["reproduce", "tanh"]])
def test_a_bad_out_directory(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "mnist"
    monkeypatch.setattr(datasets, "SHA256", fake_mnist(data))
    extra = ["--data", str(data), "--no-download"] if command[0] == "reproduce" else []
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    line = fails([*command, *extra, "--out", str(a_file)], capsys)
    assert (
        line == f"adadelta: error: --out {a_file}: is a file, not a directory; choose a directory"
    )
    line = fails([*command, *extra, "--out", str(a_file / "sub")], capsys)
    assert line.startswith(f"adadelta: error: --out {a_file / 'sub'}: cannot create the directory")
    assert a_file.read_text() == "not a directory"


def test_an_out_directory_in_use_by_another_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "mnist"
    monkeypatch.setattr(datasets, "SHA256", fake_mnist(data))
    argv = ["reproduce", "tanh", "--data", str(data), "--no-download", "--out", "out"]
    (tmp_path / "out").mkdir()
    with experiments.locked(tmp_path / "out"):
        line = fails([*argv, "--epochs", "1"], capsys)
    assert line.startswith("adadelta: error: out is in use by another adadelta process (pid ")
    assert line.endswith("wait for it to finish, or use another --out")
    assert cli.main([*argv, "--epochs", "1"]) == 0  # free again


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["reproduce", "figure9"], "argument EXPERIMENT: invalid choice: 'figure9'"),
        (["reproduce", "tanh", "--subset", "10"], "expected N_TRAIN,N_TEST, got '10'"),
        (["reproduce", "tanh", "--subset", "10,0"], "both sizes must be positive"),
        (["reproduce", "tanh", "--seeds", "two"], "expected a positive integer, got 'two'"),
        (["demo", "--epochs", "0"], "expected a positive integer, got '0'"),
        (["demo", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_argument_errors_are_one_line_with_the_fix(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = fails(argv, capsys)
    assert expected in line
    assert line.endswith("--help)")


# --- Ctrl-C ------------------------------------------------------------------------------------


def test_ctrl_c_in_reproduce_says_where_the_run_stands(tmp_path: Path) -> None:
    data = tmp_path / "mnist"
    table = fake_mnist(data, n_train=2000, n_test=100)
    out = tmp_path / "out"
    argv = ["reproduce", "tanh", "--data", str(data), "--no-download", "--out", str(out)]
    argv += ["--epochs", "10000"]
    code = (
        "import sys; from adadelta.app import cli, datasets; "
        f"datasets.SHA256 = {table!r}; sys.exit(cli.main({argv!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    runs = out / "runs"
    deadline = time.monotonic() + 120
    while not any(m.read_text().strip() for m in runs.glob("*/metrics.jsonl")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no epoch was completed in 120 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    message = err.decode()
    assert process.returncode == 130, message
    assert "Traceback" not in message
    [line] = message.strip().splitlines()
    assert line.startswith("adadelta: interrupted: 1 run(s) in ")
    assert "the latest, tanh-ADADELTA-rho0.95-eps1e-06-seed0-" in line and "had completed " in line
    assert line.endswith("run the same command to resume from there")


def test_ctrl_c_in_the_demo_says_it_starts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted_train(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(experiments, "train", interrupted_train)
    status = cli.main(["demo", "--out", "demo", "--epochs", "1"])
    err = capsys.readouterr().err
    assert status == 130
    assert "Traceback" not in err
    assert err.strip() == (
        f"adadelta: interrupted: the demo stopped in run 1 of {len(demo_plan())} "
        "(SGD, lr 0.1); it keeps no checkpoints (it takes under a minute): run the same "
        "command to start it again"
    )


def demo_plan() -> set[tuple[str, tuple[tuple[str, float], ...]]]:
    """The distinct (method, settings) the demo trains."""
    plan = {(m, tuple(experiments.BEST[m].items())) for m in experiments.METHODS}
    plan |= {
        (m, (("lr", lr),)) for m in ("SGD", "ADAGRAD") for lr in experiments.DEMO_LEARNING_RATES
    }
    plan |= {
        ("ADADELTA", (("rho", rho), ("eps", eps)))
        for rho in experiments.DEMO_RHOS
        for eps in experiments.DEMO_EPSILONS
    }
    return plan


# --- help, version, python -m ------------------------------------------------------------------


def test_help_shows_the_defaults_and_describes_every_argument(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command, defaults in (
        ("demo", ["(default: demo)", f"(default: {experiments.DEMO_EPOCHS})"]),
        ("reproduce", ["(default: adadelta-results", "(default: 1)", "EXPERIMENT  "]),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for default in defaults:
            assert " ".join(default.split()) in text, (default, text)
    assert "tanh (6 epochs)" in text and "figure2" in text
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert set(commands) == {"demo", "reproduce", "bench", "explore", "async"}  # type: ignore[arg-type]
    for name, sub in commands.items():  # type: ignore[union-attr]
        for action in sub._actions:
            assert action.help, f"{name}: {action.dest} has no description"


def test_version_and_python_dash_m() -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-m", "adadelta", "--version"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "adadelta 0.1.0"
    result = subprocess.run(
        [sys.executable, "-m", "adadelta", "reproduce", "nothing"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_progress_bars_only_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = []

    def fake_demo(ctx: experiments.Context, epochs: int) -> experiments.Report:
        seen.append(ctx.progress)
        return experiments.Report("demo", [], "")

    monkeypatch.setattr(experiments, "demo", fake_demo)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert cli.main(["demo", "--out", "d"]) == 0
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert cli.main(["demo", "--out", "d"]) == 0
    assert cli.main(["demo", "--out", "d", "--no-progress"]) == 0
    assert seen == [False, True, False]


def test_reproduce_does_not_write_into_the_repository_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "mnist"
    monkeypatch.setattr(datasets, "SHA256", fake_mnist(data))
    argv = ["reproduce", "tanh", "--data", str(data), "--no-download", "--epochs", "1"]
    assert cli.main(argv) == 0
    assert (tmp_path / "adadelta-results" / "tanh.json").is_file()
    assert not (tmp_path / "results").exists()


def test_without_the_paper_extra_the_command_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None; "  # as if Matplotlib were not installed
        "from adadelta.__main__ import main; sys.exit(main())"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    result = subprocess.run(
        [sys.executable, "-c", code, "demo"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr == (
        "adadelta: error: the command line needs matplotlib, which the [paper] extra installs: "
        "pip install 'adadelta[paper]'\n"
    )


# --- every option of every command, as an adversary would pass it -----------------------------


def _cores() -> int:
    from adadelta.app import bench

    return bench.cores()


BAD_OPTIONS = [
    (["bench", "--sizes", "abc"], "argument --sizes: expected a positive whole number"),
    (["bench", "--sizes", "-5"], "got '-5'"),
    (["bench", "--sizes", "0"], "got '0'"),
    (["bench", "--sizes", "1.5"], "got '1.5'"),
    (["bench", "--sizes", "inf"], "got 'inf'"),
    (["bench", "--sizes", "1e5,,1e6"], "expected sizes separated by commas"),
    (["bench", "--sizes", "1e15"], "1e+15 elements need about 1e+08 GB"),
    (["bench", "--mix", "-1"], "argument --mix: expected 0 or a positive integer, got '-1'"),
    (["bench", "--mix", "10", "--mix-total", "5"], "need --mix-total >= 10"),
    (["bench", "--mix-total", "0"], "argument --mix-total"),
    (["bench", "--threads", str(_cores() + 1)], f"this process may use {_cores()} cores"),
    (["bench", "--threads", "0"], "argument --threads: expected a positive integer, got '0'"),
    (["bench", "--only", "foo"], "--only: unknown implementation(s) foo; choose from ours, "),
    (["bench", "epoch", "--only", "ours,triad"], "--only: unknown run(s) triad"),
    (["bench", "--only", "ours,ours"], "ours listed more than once"),
    (["bench", "--only", ""], "expected names separated by commas"),
    (["bench", "--conditions", "tight,sideways"], "unknown condition(s) sideways"),
    (["bench", "--min-time", "nan"], "argument --min-time: expected seconds above 0"),
    (["bench", "--min-time", "inf"], "argument --min-time"),
    (["bench", "--min-time", "0"], "argument --min-time"),
    (["bench", "--repeats", "0"], "argument --repeats/--rounds: expected a positive integer"),
    (["bench", "epoch", "--n-train", "70000"], "MNIST has 60000 training images"),
    (["bench", "epoch", "--sizes", "1e5", "--conditions", "tight"], "--sizes, --conditions: not "),
    (["bench", "step", "--data", "mnist"], "--data: not an option of bench step"),
    (["bench", "epoch", "--data", "missing"], "--data missing: MNIST files missing: train-"),
    (["bench", "sideways"], "argument what: invalid choice: 'sideways'"),
    (["bench", "models", "--models", "vgg16"], "--models: unknown model(s) vgg16; choose from "),
    (["bench", "models", "--models", "gpt2", "gpt2"], "--models: gpt2 listed more than once"),
    (["bench", "models", "--rounds", "0"], "argument --repeats/--rounds: expected a positive"),
    (["bench", "models", "--backend", "tvm"], "argument --backend: invalid choice: 'tvm'"),
    (["bench", "models", "--only", "ours"], "--only: not an option of bench models"),
    (["bench", "--models", "gpt2", "models"], "name the mode first: adadelta bench models --"),
    (["bench", "epoch", "--memory"], "--memory: not an option of bench epoch"),
    (["bench", "models", "--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (["bench", "--device", "cuda"], "--device: not an option of bench step"),
    (["explore", "--steps", "100000000"], "argument --steps: expected an integer from 1 to 20000"),
    (["explore", "--steps", "0"], "argument --steps"),
    (["explore", "--frames", "1000"], "argument --frames: expected an integer from 1 to 120"),
    (["explore", "--surfaces", "moon"], "argument --surfaces: invalid choice: 'moon'"),
    (["reproduce", "tanh", "--state-dtype", "float32"], "float32 state is the default"),
    (["reproduce", "tanh", "--epochs", "-1"], "argument --epochs"),
    (["reproduce", "figure2", "--state-dtype", "bfloat16"], "not to figure2"),
    (["demo", "--out"], "argument --out: expected one argument"),
]


@pytest.mark.parametrize(
    ("argv", "expected"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS]
)
def test_every_bad_option_is_one_line_before_any_work(
    argv: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``adadelta: error:`` and exit status 2 before anything runs or is written (the work
    itself is replaced by a trap)."""
    from adadelta.app import bench, explore

    def trap(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the command started working")

    for module, name in [(bench, "measure"), (bench, "Workers"), (explore, "run"),
                         (experiments, "reproduce"), (experiments, "demo")]:  # fmt: skip
        monkeypatch.setattr(module, name, trap)
    before = sorted(tmp_path.rglob("*"))
    line = fails(argv, capsys)
    assert line.startswith("adadelta: error: "), line
    assert expected in line, line
    assert "data_dir=" not in line and "download=True" not in line
    assert sorted(tmp_path.rglob("*")) == before  # nothing left on disk


@pytest.mark.parametrize(
    "command", [["explore"], ["bench"], ["bench", "epoch"], ["bench", "models"], ["demo"]]
)
def test_an_out_that_is_a_file_is_refused_before_any_work(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from adadelta.app import bench, explore

    if "models" in command:
        pytest.importorskip("torch", reason="bench models needs the torch extra")

    def trap(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the command started working")

    monkeypatch.setattr(bench, "Workers", trap)
    monkeypatch.setattr(explore, "run", trap)
    monkeypatch.setattr(experiments, "demo", trap)
    (tmp_path / "a-file").write_text("mine")
    line = fails([*command, "--out", "a-file"], capsys)
    assert line == "adadelta: error: --out a-file: is a file, not a directory; choose a directory"
    assert (tmp_path / "a-file").read_text() == "mine"
    # one of the files it would write is a directory
    written = {"explore": "settings.json", "bench": "bench.md", "demo": "demo.json",
               "epoch": "epoch.md", "models": "models.png"}  # fmt: skip
    (tmp_path / "out" / written[command[-1]]).mkdir(parents=True)
    line = fails([*command, "--out", "out"], capsys)
    assert line.startswith("adadelta: error: --out out: ") and "is a directory" in line


def test_a_missing_data_folder_is_not_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A download into a folder that did not exist fails (no network here): the folders made
    for it are removed again."""

    def offline(url: str, *args: Any, **kwargs: Any) -> None:
        raise OSError(f"{url}: network is unreachable")

    monkeypatch.setattr(datasets, "_fetch", offline)
    (tmp_path / "kept").mkdir()
    line = fails(["reproduce", "tanh", "--data", "kept/new/mnist"], capsys)
    assert "could not download" in line and "network is unreachable" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []


def test_help_of_bench_and_explore_describes_and_shows_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command, expected in (
        ("explore", ["Run SGD, MOMENTUM", "(default: explore)", "(default: 36)",
                     "at most 20000 (default: 1000)", "explorer.html"]),
        ("bench", ["Time one ADADELTA step", "(default: bench-results)", "(default: step)",
                   "(default: 1e5,1e6,1e7)", "at most the cores"]),
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for phrase in expected:
            assert phrase in text, (phrase, text)


def test_version_without_the_paper_extra() -> None:
    """The core install (no Matplotlib): --version answers; a command says what to install."""
    code = (
        "import runpy, sys; sys.modules['matplotlib'] = None; "
        "runpy.run_module('adadelta', run_name='__main__')"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    run = subprocess.run(
        [sys.executable, "-c", code, "--version"], env=env, capture_output=True, text=True
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "adadelta 0.1.0\n", "")
    run = subprocess.run(
        [sys.executable, "-c", code, "demo"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 2 and "pip install 'adadelta[paper]'" in run.stderr


def test_state_dtype_means_the_same_on_the_command_line_and_in_the_api(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every format the command line takes, the API takes, and what one refuses the other does."""
    import adadelta

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    reproduce = commands["reproduce"]  # type: ignore[index]
    option = next(a for a in reproduce._actions if a.dest == "state_dtype")
    accepted = [v for v in ("float32", "bfloat16", "float8", "float16", "int8")
                if _accepts(option.type, v)]  # fmt: skip
    for value in ("float32", "bfloat16", "float8", "float16", "int8"):
        try:
            adadelta.Adadelta(np.zeros(4, np.float32), state_dtype=value)
            api = True
        except ValueError:
            api = False
        assert api == (value in accepted), value
    assert accepted == ["bfloat16", "float8"]


def _accepts(parse: Any, value: str) -> bool:
    import argparse

    try:
        parse(value)
    except argparse.ArgumentTypeError:
        return False
    return True
