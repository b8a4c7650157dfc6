"""The paper's MNIST experiments (Zeiler 2012, section 4.1), and the offline demo.

Each experiment trains the paper's network (784-500-300-10, mini-batches of 100) and writes
``OUT/NAME.json`` (every run: optimizer, settings, seed, per-epoch test error in percent),
``OUT/NAME.md`` (our numbers beside the paper's) and ``OUT/NAME.png``.

Runs live in ``OUT/runs/<activation>-<method>-<settings>-seed<k>-<config>/``, where ``<config>``
starts the SHA-256 of everything that determines the run's numbers (:func:`run_config`: the
data's SHA-256 and sizes, the model and its dtype, the optimizer and all its settings, the batch
size and the seed), and are resumable: an interrupted command started again continues every run
from its last completed epoch, to the same bits. A run that already has at least the epochs an
experiment needs is not trained again: its first epochs are exactly those of a shorter run with
the same configuration (the epoch order and the initialisation depend on the seed only), so the
tables reuse the first 6 epochs of Figure 1's 50-epoch runs. A run is reused only after its
checkpoint's recorded configuration is checked equal to the one asked for (else
:class:`RunMismatchError`): other data, a subset or other settings train their own runs.

One command at a time writes to an ``OUT``: :func:`reproduce` holds an exclusive lock on
``OUT/.lock`` (``fcntl.flock``, released when the process ends, however it ends) and refuses with
:class:`OutputLockedError` naming the holder while another process has it. Every file is written
atomically (a temporary file renamed into place).

Choices the paper leaves open (also in the documentation): pixels scaled to [0, 1], no other
preprocessing; He-uniform (ReLU) / Glorot-uniform (tanh) initialisation, zero biases; MOMENTUM
is SGD with momentum 0.9; seeds 0..N-1; float32.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np

from adadelta.app.model import MLP, PAPER_SIZES
from adadelta.app.plots import plot_demo, plot_step_sizes, plot_test_error
from adadelta.app.trainer import (
    RunMismatchError,
    StepSizeProbe,
    TrainData,
    recorded_epochs,
    run_config,
    train,
)
from adadelta.checkpoint import CheckpointError, atomic_write, load, open_regular, save
from adadelta.optimizers import SGD, Adadelta, Adagrad, NonFiniteGradientError, Optimizer

MOMENTUM = 0.9  # the paper does not give MOMENTUM's coefficient; 0.9 is the usual choice
METHODS = ("SGD", "MOMENTUM", "ADAGRAD", "ADADELTA")
LEARNING_RATES = (1e0, 1e-1, 1e-2, 1e-3, 1e-4)
RHOS = (0.9, 0.95, 0.99)
EPSILONS = (1e-2, 1e-4, 1e-6, 1e-8)

# The paper's numbers (../shared/paper/zeiler2012.md).
PAPER_TANH = 2.00
PAPER_TABLE1 = {  # (method, lr) -> test error % after 6 epochs, ReLU
    ("SGD", 1e0): 2.26, ("MOMENTUM", 1e0): 89.68, ("ADAGRAD", 1e0): 43.76,
    ("SGD", 1e-1): 2.51, ("MOMENTUM", 1e-1): 2.03, ("ADAGRAD", 1e-1): 2.82,
    ("SGD", 1e-2): 7.02, ("MOMENTUM", 1e-2): 2.68, ("ADAGRAD", 1e-2): 1.79,
    ("SGD", 1e-3): 17.01, ("MOMENTUM", 1e-3): 6.98, ("ADAGRAD", 1e-3): 5.21,
    ("SGD", 1e-4): 58.10, ("MOMENTUM", 1e-4): 16.98, ("ADAGRAD", 1e-4): 12.59,
}  # fmt: skip
PAPER_TABLE2 = {  # (eps, rho) -> ADADELTA test error % after 6 epochs, ReLU
    (1e-2, 0.9): 2.59, (1e-2, 0.95): 2.58, (1e-2, 0.99): 2.32,
    (1e-4, 0.9): 2.05, (1e-4, 0.95): 1.99, (1e-4, 0.99): 2.28,
    (1e-6, 0.9): 1.90, (1e-6, 0.95): 1.83, (1e-6, 0.99): 2.05,
    (1e-8, 0.9): 2.29, (1e-8, 0.95): 2.13, (1e-8, 0.99): 2.00,
}  # fmt: skip
PAPER_FIGURE1 = {  # method -> {epoch: test error %}, read off the plot (+-0.01)
    "SGD": {1: 5.95, 6: 2.51, 10: 2.06, 20: 1.92, 30: 1.80, 40: 1.76, 50: 1.78},
    "MOMENTUM": {1: 3.76, 6: 2.03, 10: 1.68, 20: 1.76, 30: 1.46, 40: 1.44, 50: 1.41},
    "ADAGRAD": {1: 3.11, 6: 1.79, 10: 1.67, 20: 1.64, 30: 1.64, 40: 1.62, 50: 1.60},
    "ADADELTA": {1: 3.47, 6: 1.83, 10: 1.71, 20: 1.48, 30: 1.50, 40: 1.49, 50: 1.50},
}
# Figure 1: each method at its best setting in Tables 1 and 2.
BEST = {
    "SGD": {"lr": 1e-1},
    "MOMENTUM": {"lr": 1e-1},
    "ADAGRAD": {"lr": 1e-2},
    "ADADELTA": {"rho": 0.95, "eps": 1e-6},
}


@dataclass(frozen=True)
class RunSpec:
    """One training run: a method with its settings on a network, from one seed."""

    method: str
    settings: tuple[tuple[str, float], ...]
    activation: str
    seed: int
    # ADADELTA's state format: None (float32, the default state), "bfloat16", "float8"
    state_dtype: str | None = None

    @classmethod
    def of(
        cls,
        method: str,
        settings: dict[str, float],
        activation: str,
        seed: int,
        state_dtype: str | None = None,
    ) -> RunSpec:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if state_dtype is not None and method != "ADADELTA":
            raise ValueError(f"state_dtype is ADADELTA's only, not {method}'s")
        return cls(method, tuple(settings.items()), activation, seed, state_dtype)

    @property
    def name(self) -> str:
        values = "-".join(f"{k}{v:g}" for k, v in self.settings)
        state = "" if self.state_dtype is None else f"-{self.state_dtype}"
        return f"{self.activation}-{self.method}-{values}{state}-seed{self.seed}"

    def optimizer(self, params: dict[str, Any]) -> Optimizer:
        s = dict(self.settings)
        if self.method == "SGD":
            return SGD(params, lr=s["lr"])
        if self.method == "MOMENTUM":
            return SGD(params, lr=s["lr"], momentum=MOMENTUM)
        if self.method == "ADAGRAD":
            return Adagrad(params, lr=s["lr"])
        return Adadelta(params, rho=s["rho"], eps=s["eps"], state_dtype=self.state_dtype)


class OutputLockedError(RuntimeError):
    """Another process is writing to the same output directory."""


@dataclass
class RunResult:
    spec: RunSpec
    test_error: list[float | None]  # None for epochs after a divergence
    diverged_at_epoch: int | None = None
    directory: Path | None = None  # the run's directory under OUT/runs/

    def final(self) -> float | None:
        return self.test_error[-1] if self.test_error else None

    def to_json(self) -> dict[str, Any]:
        return {
            "optimizer": self.spec.method,
            "settings": dict(self.spec.settings),
            "activation": self.spec.activation,
            "seed": self.spec.seed,
            **({"state_dtype": self.spec.state_dtype} if self.spec.state_dtype else {}),
            "test_error": self.test_error,
            "diverged_at_epoch": self.diverged_at_epoch,
        }


@dataclass
class Context:
    """Where and on what the runs of one command train."""

    data: TrainData
    out: Path
    seeds: int = 1
    progress: bool = True
    epochs: int | None = None  # overrides every experiment's epochs (for quick runs)
    # ADADELTA's compact state format (Adadelta's state_dtype): ADADELTA alone runs
    state_dtype: str | None = None
    results: dict[str, RunResult] = field(default_factory=dict)

    def epochs_for(self, default: int) -> int:
        return default if self.epochs is None else self.epochs


def run(spec: RunSpec, epochs: int, ctx: Context, *, trace: bool = False) -> RunResult:
    """Train ``spec`` for ``epochs`` epochs (resuming its run directory), or reuse a run with
    the same configuration that already has them. A run whose gradients become NaN or infinite
    is recorded as diverged.

    With ``trace`` (ADADELTA at lr 1 only) the run records Figure 2's step sizes into
    ``trace.npz``; the trace is not resumable, so a traced run always trains from scratch.
    """
    model = MLP(PAPER_SIZES, spec.activation, seed=spec.seed)
    optimizer = spec.optimizer(model.params)
    config = run_config(model, optimizer, ctx.data, seed=spec.seed)
    identity = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    run_dir = ctx.out / "runs" / f"{spec.name}-{identity[:12]}"
    diverged_file = run_dir / "diverged.json"
    if diverged_file.exists():
        with open_regular(diverged_file) as f:  # a FIFO or a directory: CheckpointError
            content = f.read()
        try:
            record = json.loads(content)
            epoch = record["epoch"]
            same = record["config"] == config
        except (ValueError, TypeError, KeyError, RecursionError) as error:
            raise CheckpointError(f"{diverged_file}: corrupt ({error}); delete {run_dir}") from None
        if not same or isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise RunMismatchError(
                f"{diverged_file} records a run with another configuration; delete {run_dir}"
            )
        return _diverged(spec, run_dir, config, epoch, epochs)
    if trace:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        done = recorded_epochs(run_dir, config)
        if len(done) >= epochs:
            return RunResult(spec, [r.test_error for r in done[:epochs]], directory=run_dir)

    probe = StepSizeProbe(model, optimizer, seed=spec.seed) if trace else None
    try:
        result = train(
            model,
            optimizer,
            ctx.data,
            epochs=epochs,
            seed=spec.seed,
            run_dir=run_dir,
            progress=ctx.progress,
            on_batch=probe,
        )
    except NonFiniteGradientError:
        epoch = len(recorded_epochs(run_dir, config)) + 1
        text = json.dumps({"epoch": epoch, "config": config})
        atomic_write(diverged_file, partial(_write_bytes, text.encode("utf-8")))
        return _diverged(spec, run_dir, config, epoch, epochs)
    if probe is not None:
        save(run_dir / "trace.npz", probe.as_arrays())
    return RunResult(spec, list(result.test_errors), directory=run_dir)


def _diverged(
    spec: RunSpec, run_dir: Path, config: dict[str, Any], epoch: int, epochs: int
) -> RunResult:
    done: list[float | None] = [r.test_error for r in recorded_epochs(run_dir, config)[:epochs]]
    return RunResult(
        spec, done + [None] * (epochs - len(done)), diverged_at_epoch=epoch, directory=run_dir
    )


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` exclusively (creating ``out``), or raise :class:`OutputLockedError`
    naming the holder. The lock ends with the block or with the process."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the output must be a directory", str(out))
    out.mkdir(parents=True, exist_ok=True)
    path = out / ".lock"
    # not through a symlink (whose target would be truncated), not blocking on a FIFO
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as error:  # a symlink (ELOOP), a directory (EISDIR)
        raise OutputLockedError(f"{path} cannot be the lock file ({error.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutputLockedError(f"{path} cannot be the lock file (not a regular file)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "starting"
            raise OutputLockedError(
                f"{out} is in use by another adadelta process ({holder}; lock file {path}): "
                "wait for it to finish, or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# --- summaries ---


def _errors(results: Sequence[RunResult], epoch: int) -> np.ndarray[Any, Any] | None:
    """The seeds' test errors after ``epoch`` (1-based), or None if a run had diverged."""
    values = [r.test_error[epoch - 1] for r in results]
    return None if any(v is None for v in values) else np.array(values, dtype=float)


def _cell(results: Sequence[RunResult], epoch: int) -> str:
    """``mean ± std`` over seeds of the test error after ``epoch``."""
    errors = _errors(results, epoch)
    if errors is None:
        return "diverged"
    if errors.size == 1:
        return f"{errors[0]:.2f}"
    return f"{errors.mean():.2f} ± {errors.std(ddof=1):.2f}"


def _mean(results: Sequence[RunResult], epoch: int) -> float:
    errors = _errors(results, epoch)
    return float("nan") if errors is None else float(errors.mean())


def _runs(
    ctx: Context, method: str, settings: dict[str, float], activation: str, epochs: int, **kw: Any
) -> list[RunResult]:
    specs = [
        RunSpec.of(method, settings, activation, seed, ctx.state_dtype) for seed in range(ctx.seeds)
    ]
    return [run(spec, epochs, ctx, **kw) for spec in specs]


def _target(ctx: Context, epochs: int, needs: int, ok: bool, text: str) -> str:
    """One of the paper's targets: met, MISSED, or not applicable to a quick run (other epochs
    or a subset of MNIST), where our number is not comparable with the paper's."""
    reasons = []
    if epochs != needs:
        reasons.append(f"needs {needs} epochs, this run has {epochs}")
    n_train, n_test = len(ctx.data.y_train), len(ctx.data.y_test)
    if (ctx.data.name, n_train, n_test) != ("mnist", 60_000, 10_000):
        reasons.append(
            f"needs all of MNIST (60000 train / 10000 test), this run has {_data_name(ctx)}"
        )
    if reasons:
        return f"- not applicable: {text} ({'; '.join(reasons)})"
    return f"- {'met' if ok else 'MISSED'}: {text}"


@dataclass
class Report:
    """What an experiment found: its runs, a markdown summary, and the files it drew."""

    name: str
    runs: list[RunResult]
    markdown: str
    figures: list[str] = field(default_factory=list)


def tanh_experiment(ctx: Context) -> Report:
    """ADADELTA (rho 0.95, eps 1e-6) on the tanh network for 6 epochs: the paper has 2.00%."""
    epochs = ctx.epochs_for(6)
    runs = _runs(ctx, "ADADELTA", BEST["ADADELTA"], "tanh", epochs)
    ours = _mean(runs, epochs)
    md = (
        f"| | paper | ours (epoch {epochs}) |\n|---|---|---|\n"
        f"| ADADELTA, tanh, rho 0.95, eps 1e-6 | {PAPER_TANH:.2f} | {_cell(runs, epochs)} |\n\n"
        + _target(
            ctx, epochs, 6, abs(ours - PAPER_TANH) <= 0.3, "within 0.3 points of the paper's 2.00%"
        )
        + "\n"
    )
    return Report("tanh", runs, md)


def table1_experiment(ctx: Context) -> Report:
    """Table 1: SGD, MOMENTUM and ADAGRAD over learning rates, ReLU network, 6 epochs."""
    epochs = ctx.epochs_for(6)
    methods = ("SGD", "MOMENTUM", "ADAGRAD")
    cells = {
        (m, lr): _runs(ctx, m, {"lr": lr}, "relu", epochs) for lr in LEARNING_RATES for m in methods
    }
    lines = [
        f"Test error % after {epochs} epochs: ours (paper)\n",
        "| learning rate | " + " | ".join(methods) + " |",
        "|---" * (len(methods) + 1) + "|",
    ]
    for lr in LEARNING_RATES:
        row = [f"{_cell(cells[m, lr], epochs)} ({PAPER_TABLE1[m, lr]:.2f})" for m in methods]
        lines.append(f"| {lr:g} | " + " | ".join(row) + " |")
    runs = [r for rs in cells.values() for r in rs]
    return Report("table1", runs, "\n".join(lines) + "\n")


def table2_experiment(ctx: Context) -> Report:
    """Table 2: ADADELTA over rho and eps, ReLU network, 6 epochs."""
    epochs = ctx.epochs_for(6)
    cells = {
        (eps, rho): _runs(ctx, "ADADELTA", {"rho": rho, "eps": eps}, "relu", epochs)
        for eps in EPSILONS
        for rho in RHOS
    }
    lines = [
        f"ADADELTA test error % after {epochs} epochs: ours (paper)\n",
        "| eps | " + " | ".join(f"rho = {rho}" for rho in RHOS) + " |",
        "|---" * (len(RHOS) + 1) + "|",
    ]
    for eps in EPSILONS:
        row = [f"{_cell(cells[eps, rho], epochs)} ({PAPER_TABLE2[eps, rho]:.2f})" for rho in RHOS]
        lines.append(f"| {eps:g} | " + " | ".join(row) + " |")
    best = min(_mean(rs, epochs) for rs in cells.values())
    lines += [
        "",
        _target(ctx, epochs, 6, best <= 2.1, f"best cell at most 2.1% (ours: {best:.2f}%)"),
    ]
    runs = [r for rs in cells.values() for r in rs]
    return Report("table2", runs, "\n".join(lines) + "\n")


def figure1_experiment(ctx: Context, *, name: str = "figure1", default_epochs: int = 50) -> Report:
    """Figure 1: the four methods at their best settings, ReLU network, 50 epochs."""
    epochs = ctx.epochs_for(default_epochs)
    methods = METHODS if ctx.state_dtype is None else ("ADADELTA",)
    per_method = {m: _runs(ctx, m, BEST[m], "relu", epochs) for m in methods}
    marks = [e for e in (1, 6, 10, 20, 30, 40, 50) if e <= epochs]
    if epochs not in marks:
        marks.append(epochs)
    paper = PAPER_FIGURE1 if name == "figure1" else None
    lines = [
        "Test error % by epoch: ours" + (" (paper)" if paper else "") + "\n",
        "| method | settings | " + " | ".join(f"ep {e}" for e in marks) + " |",
        "|---" * (len(marks) + 2) + "|",
    ]
    for m, rs in per_method.items():
        settings = ", ".join(f"{k} {v:g}" for k, v in BEST[m].items())
        row = [
            _cell(rs, e) + (f" ({paper[m][e]:.2f})" if paper and e in paper[m] else "")
            for e in marks
        ]
        lines.append(f"| {m} | {settings} | " + " | ".join(row) + " |")
    if paper is not None:
        finals = {m: _mean(rs, epochs) for m, rs in per_method.items()}
        lines += [
            "",
            _target(
                ctx,
                epochs,
                default_epochs,
                finals["ADADELTA"] <= 1.7,
                f"ADADELTA at epoch {default_epochs} at most 1.7% "
                f"(ours at epoch {epochs}: {finals['ADADELTA']:.2f}%)",
            ),
        ]
        if "SGD" in finals:
            sgd_worst = all(finals["SGD"] >= v for v in finals.values())
            lines.append(
                _target(
                    ctx, epochs, default_epochs, sgd_worst, f"SGD worst at epoch {default_epochs}"
                )
            )
    figure = f"{name}.png"
    runs = [r for rs in per_method.values() for r in rs]
    document = {"experiment": name, "data": _data_name(ctx), "runs": [r.to_json() for r in runs]}
    _write_figure(ctx.out / figure, partial(draw_figure1, document))
    return Report(name, runs, "\n".join(lines) + "\n", [figure])


def draw_figure1(document: dict[str, Any], path: Path) -> None:
    """Figure 1 from an experiment's JSON document (``OUT/figure1.json`` as
    :func:`write_report` writes it): each method's mean test error over its seeds, with a
    mean ± std band over several seeds, and the paper's values for the experiment ``figure1``.
    ``python scripts/redraw_figure1.py results/figure1.json`` redraws the committed figure."""
    curves: dict[str, list[list[float | None]]] = {}
    for entry in document["runs"]:
        curves.setdefault(entry["optimizer"], []).append(entry["test_error"])
    plot_test_error(
        curves,
        path,
        title=f"MNIST test error, ReLU network ({document['data']})",
        paper=PAPER_FIGURE1 if document["experiment"] == "figure1" else None,
    )


def figure2_experiment(ctx: Context) -> Report:
    """Figure 2: ADADELTA's step sizes and updates on the tanh network over 25 epochs, for 10
    random weights of each layer, sampled every 60 batches (seed 0)."""
    epochs = ctx.epochs_for(25)
    spec = RunSpec.of("ADADELTA", BEST["ADADELTA"], "tanh", 0)
    result = run(spec, epochs, ctx, trace=True)
    assert result.directory is not None
    tree = load(result.directory / "trace.npz")
    layers = [k.split("/", 1)[1] for k in tree if k.startswith("step_size/")]
    n_train = len(ctx.data.y_train)
    batches_per_epoch = -(-n_train // 100)
    figure = "figure2.png"
    _write_figure(
        ctx.out / figure,
        lambda path: plot_step_sizes(
            list(tree["steps"]),
            {layer: tree[f"step_size/{layer}"] for layer in layers},
            {layer: tree[f"update/{layer}"] for layer in layers},
            path,
            batches_per_epoch=batches_per_epoch,
        ),
    )
    lines = [
        "Mean step size RMS[dx]_{t-1}/RMS[g]_t of the sampled weights, per layer\n",
        "| layer | first sample | after 1 epoch | last sample |",
        "|---|---|---|---|",
    ]
    for layer in layers:
        sizes = tree[f"step_size/{layer}"].mean(axis=1)
        one_epoch = min(len(sizes) - 1, max(1, batches_per_epoch // 60))
        lines.append(f"| {layer} | {sizes[0]:.3g} | {sizes[one_epoch]:.3g} | {sizes[-1]:.3g} |")
    return Report("figure2", [result], "\n".join(lines) + "\n", [figure])


def _data_name(ctx: Context) -> str:
    n_train, n_test = len(ctx.data.y_train), len(ctx.data.y_test)
    return f"{ctx.data.name}, {n_train} train / {n_test} test"


EXPERIMENTS: dict[str, Callable[[Context], Report]] = {
    "tanh": tanh_experiment,
    "table1": table1_experiment,
    "table2": table2_experiment,
    "figure1": figure1_experiment,
    "figure2": figure2_experiment,
}
COMPACT_EXPERIMENTS = {"figure1", "table2", "tanh"}  # those that --state-dtype runs
# "all" runs Figure 1 first, so the tables reuse the first 6 epochs of its 50-epoch runs.
ALL_ORDER = ("figure1", "table1", "table2", "tanh", "figure2")


def reproduce(names: Iterable[str], ctx: Context) -> list[Report]:
    """Run the named experiments and write each one's JSON, markdown and figures to ctx.out,
    holding its lock (:func:`locked`) throughout."""
    reports = []
    if ctx.state_dtype is not None and not set(names) <= COMPACT_EXPERIMENTS:
        raise ValueError(
            f"state_dtype applies to {sorted(COMPACT_EXPERIMENTS)} (ADADELTA's accuracy), "
            f"not to {sorted(set(names) - COMPACT_EXPERIMENTS)}"
        )
    with locked(ctx.out):
        for name in names:
            report = EXPERIMENTS[name](ctx)
            write_report(report, ctx)
            reports.append(report)
    return reports


# --- the demo ---

# The paper's claim in miniature: SGD and ADAGRAD over Table 1's learning rates, ADADELTA over
# Table 2's (rho, eps) grid, all for DEMO_SWEEP_EPOCHS epochs; Figure 1's curves for longer.
DEMO_LEARNING_RATES = LEARNING_RATES
DEMO_RHOS = RHOS
DEMO_EPSILONS = EPSILONS
DEMO_SWEEP_EPOCHS = 3
DEMO_EPOCHS = 8


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a command; the message says where it stood and how to go on."""


def demo(ctx: Context, epochs: int = DEMO_EPOCHS) -> Report:
    """Figure 1's four methods at the paper's settings for ``epochs`` epochs, and the paper's
    central claim in miniature: test error after ``min(epochs, DEMO_SWEEP_EPOCHS)`` epochs of
    SGD and ADAGRAD over learning rates 1 ... 1e-4 against ADADELTA over 12 (rho, eps) settings.

    Seed 0, trained in memory (no checkpoints are written); writes ``demo.json``, ``demo.md`` and
    ``demo.png`` to ``ctx.out``. A run whose gradients become NaN or infinite is reported as
    diverged.
    """
    sweep_epochs = min(epochs, DEMO_SWEEP_EPOCHS)
    curve_specs = [RunSpec.of(m, BEST[m], "relu", 0) for m in METHODS]
    sweep_specs = [
        RunSpec.of(m, {"lr": lr}, "relu", 0)
        for m in ("SGD", "ADAGRAD")
        for lr in DEMO_LEARNING_RATES
    ] + [
        RunSpec.of("ADADELTA", {"rho": rho, "eps": eps}, "relu", 0)
        for eps in DEMO_EPSILONS
        for rho in DEMO_RHOS
    ]
    # A sweep setting that is also a curve takes the curve's first epochs (same seed, same run).
    plan = {spec: epochs for spec in curve_specs}
    plan.update({spec: sweep_epochs for spec in sweep_specs if spec not in plan})
    ctx.out.mkdir(parents=True, exist_ok=True)
    results = _train_in_memory(plan, ctx)

    def at(spec: RunSpec, epoch: int) -> float | None:
        return results[spec].test_error[epoch - 1]

    marks = sorted({1, *range(2, epochs + 1, 2), epochs})
    lines = [
        "Figure 1's methods at the paper's settings: test error % by epoch (seed 0)\n",
        "| method | settings | " + " | ".join(f"ep {e}" for e in marks) + " |",
        "|---" * (len(marks) + 2) + "|",
    ]
    for spec in curve_specs:
        settings = ", ".join(f"{k} {v:g}" for k, v in spec.settings)
        lines.append(
            f"| {spec.method} | {settings} | "
            + " | ".join(_percent(at(spec, e)) for e in marks)
            + " |"
        )
    lr_runs = {
        (m, lr): RunSpec.of(m, {"lr": lr}, "relu", 0)
        for m in ("SGD", "ADAGRAD")
        for lr in DEMO_LEARNING_RATES
    }
    lines += [
        "",
        f"Test error % after {sweep_epochs} epochs: SGD and ADAGRAD need their learning rate\n",
        "| learning rate | SGD | ADAGRAD |",
        "|---|---|---|",
    ]
    for lr in DEMO_LEARNING_RATES:
        row = [_percent(at(lr_runs[m, lr], sweep_epochs)) for m in ("SGD", "ADAGRAD")]
        lines.append(f"| {lr:g} | " + " | ".join(row) + " |")
    grid = {
        (eps, rho): RunSpec.of("ADADELTA", {"rho": rho, "eps": eps}, "relu", 0)
        for eps in DEMO_EPSILONS
        for rho in DEMO_RHOS
    }
    lines += [
        "",
        f"ADADELTA test error % after {sweep_epochs} epochs, no learning rate\n",
        "| eps | " + " | ".join(f"rho = {rho}" for rho in DEMO_RHOS) + " |",
        "|---" * (len(DEMO_RHOS) + 1) + "|",
    ]
    for eps in DEMO_EPSILONS:
        row = [_percent(at(grid[eps, rho], sweep_epochs)) for rho in DEMO_RHOS]
        lines.append(f"| {eps:g} | " + " | ".join(row) + " |")
    ranges = {
        "SGD": [at(lr_runs["SGD", lr], sweep_epochs) for lr in DEMO_LEARNING_RATES],
        "ADAGRAD": [at(lr_runs["ADAGRAD", lr], sweep_epochs) for lr in DEMO_LEARNING_RATES],
        "ADADELTA": [at(spec, sweep_epochs) for spec in grid.values()],
    }
    lines += ["", *_sensitivity_lines(ranges, sweep_epochs)]
    figure = "demo.png"
    _write_figure(
        ctx.out / figure,
        partial(
            plot_demo,
            {spec.method: [results[spec].test_error] for spec in curve_specs},
            {m: dict(zip(DEMO_LEARNING_RATES, ranges[m], strict=True)) for m in ("SGD", "ADAGRAD")},
            ranges["ADADELTA"],
            title=f"MNIST demo digits ({_data_name(ctx)}), ReLU network, seed 0",
            sweep_epochs=sweep_epochs,
        ),
    )
    runs = [results[spec] for spec in plan]
    report = Report("demo", runs, "\n".join(lines) + "\n", [figure])
    write_report(report, ctx)
    return report


def _train_in_memory(plan: dict[RunSpec, int], ctx: Context) -> dict[RunSpec, RunResult]:
    """Train each run of ``plan`` (spec -> epochs) from scratch without checkpoints, one
    progress bar for all of them; Ctrl-C raises :class:`Interrupted` saying where it stood."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    batches = -(-len(ctx.data.y_train) // 100)
    bar = tqdm(
        total=sum(plan.values()) * batches, unit="batch", disable=not ctx.progress, desc="demo"
    )
    results: dict[RunSpec, RunResult] = {}
    try:
        for number, (spec, epochs) in enumerate(plan.items(), 1):
            model = MLP(PAPER_SIZES, spec.activation, seed=spec.seed)
            start = bar.n
            try:
                done = train(
                    model,
                    spec.optimizer(model.params),
                    ctx.data,
                    epochs=epochs,
                    seed=spec.seed,
                    progress=False,
                    on_batch=lambda *_: bar.update(),
                )
                results[spec] = RunResult(spec, list(done.test_errors))
            except NonFiniteGradientError:
                epoch = (bar.n - start) // batches + 1
                bar.update(start + epochs * batches - bar.n)
                results[spec] = RunResult(spec, [None] * epochs, diverged_at_epoch=epoch)
            except KeyboardInterrupt:
                settings = ", ".join(f"{k} {v:g}" for k, v in spec.settings)
                raise Interrupted(
                    f"the demo stopped in run {number} of {len(plan)} ({spec.method}, {settings}); "
                    "it keeps no checkpoints (it takes under a minute): run the same command to "
                    "start it again"
                ) from None
    finally:
        bar.close()
    return results


def _percent(value: float | None) -> str:
    return "diverged" if value is None else f"{value:.2f}"


def _sensitivity_lines(ranges: dict[str, list[float | None]], epochs: int) -> list[str]:
    """What the sweeps say, computed from them: each method's best, worst and spread."""
    lines = []
    for method, values in ranges.items():
        finite = [v for v in values if v is not None]
        over = "(rho, eps) settings" if method == "ADADELTA" else "learning rates"
        diverged = len(values) - len(finite)
        note = f", {diverged} diverged" if diverged else ""
        if finite:
            lines.append(
                f"- {method} over {len(values)} {over}: {min(finite):.2f}% to {max(finite):.2f}% "
                f"after {epochs} epochs (spread {max(finite) - min(finite):.2f} points{note})"
            )
        else:
            lines.append(f"- {method} over {len(values)} {over}: all diverged")
    delta = [v for v in ranges["ADADELTA"] if v is not None]
    if delta and len(delta) == len(ranges["ADADELTA"]):
        worst = max(delta)
        for method in ("SGD", "ADAGRAD"):
            beaten = sum(v is None or v > worst for v in ranges[method])
            lines.append(
                f"- ADADELTA's worst setting ({worst:.2f}%) beats {method} at {beaten} of its "
                f"{len(ranges[method])} learning rates"
            )
    return lines


def write_report(report: Report, ctx: Context) -> None:
    document = {
        "experiment": report.name,
        "data": _data_name(ctx),
        "seeds": ctx.seeds,
        **({"state_dtype": ctx.state_dtype} if ctx.state_dtype else {}),
        "runs": [r.to_json() for r in report.runs],
    }
    figures = "".join(f"\n![{f}]({f})\n" for f in report.figures)
    texts = {
        f"{report.name}.json": json.dumps(document, indent=1) + "\n",
        f"{report.name}.md": f"# {report.name} ({_data_name(ctx)}, {ctx.seeds} seed(s))\n\n"
        + report.markdown
        + figures,
    }
    for file, text in texts.items():
        atomic_write(ctx.out / file, partial(_write_bytes, text.encode("utf-8")))


def _write_bytes(content: bytes, f: IO[bytes]) -> None:
    f.write(content)


def _write_figure(target: Path, draw: Callable[[Path], None]) -> None:
    """Draw into a scratch file, then put its bytes at ``target`` atomically."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / target.name
        draw(path)
        image = path.read_bytes()
    atomic_write(target, partial(_write_bytes, image))
