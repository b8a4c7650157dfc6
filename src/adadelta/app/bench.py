"""Benchmarks: the time of one ADADELTA step against its peers, and one epoch of the paper's
network against PyTorch (``adadelta bench`` and ``adadelta bench epoch``).

``step``: every implementation updates the same float32 parameters with the same fixed
gradients (lr=1, rho=0.9, eps=1e-6: PyTorch's defaults) at each size, in rounds that alternate
the implementations; the table reports the median over rounds of the mean time per step.
Implementations:

- ``ours``: :class:`adadelta.Adadelta`, whose default path is the fused kernel of
  :mod:`adadelta.kernels` plus the finiteness check of every gradient;
- ``torch-foreach`` and ``torch-for``: ``torch.optim.Adadelta(foreach=True / False)``;
- ``optax-jit`` and ``optax-donated``: ``optax.adadelta`` and ``optax.apply_updates`` in one
  ``jax.jit`` (the second donates the parameters and state, so XLA may update them in place);
- ``numpy-tutorial``: ADADELTA as tutorials write it (ML-From-Scratch): one NumPy expression
  per line of the paper, each making a temporary array;
- ``triad``: not an optimizer but the memory-bandwidth probe ``a = b + s * c`` (Numba,
  parallel), whose GB/s (12 bytes per element) is the ceiling the fused step is measured
  against: an ADADELTA step moves 28 bytes per float32 element (reads x, g, E[g^2], E[dx^2];
  writes x, E[g^2], E[dx^2]).

PyTorch and JAX/optax are optional: their columns are left out, with a note, when they are
not installed.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

import adadelta
from adadelta.rules import FloatArray

LR, RHO, EPS = 1.0, 0.9, 1e-6
STEP_BYTES = 28  # per float32 element: 4 arrays read, 3 written
TRIAD_BYTES = 12  # a = b + s * c: 2 read, 1 written
IMPLEMENTATIONS = (
    "ours",
    "ours-unchecked",
    "torch-foreach",
    "torch-for",
    "optax-jit",
    "optax-donated",
    "numpy-tutorial",
    "triad",
)
DEFAULT_SIZES = "1e5,1e6,1e7,5e7"

Step = Callable[[], None]


@dataclass(frozen=True)
class Case:
    """One benchmark setting: parameters of these sizes (one tensor, or a mix)."""

    name: str
    sizes: tuple[int, ...]

    @property
    def elements(self) -> int:
        return sum(self.sizes)


def mixed_sizes(count: int, total: int, seed: int = 0) -> tuple[int, ...]:
    """``count`` tensor sizes adding up to ``total``, log-uniform between 1 and ``total/10``
    (a network's mix of biases and weight matrices)."""
    rng = np.random.default_rng(seed)
    weights = np.exp(rng.uniform(0.0, math.log(max(total / 10, 2)), count))
    sizes = np.maximum(1, np.floor(weights / weights.sum() * total)).astype(np.int64)
    sizes[np.argmax(sizes)] += total - int(sizes.sum())
    return tuple(int(s) for s in sizes)


# --- the implementations: each returns a function that takes one step ---


def _data(case: Case, seed: int = 0) -> tuple[list[FloatArray], list[FloatArray]]:
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n, dtype=np.float32) for n in case.sizes]
    grads = [rng.standard_normal(n, dtype=np.float32) for n in case.sizes]
    return params, grads


def make_ours(case: Case, check_finite: bool = True) -> Step:
    params, grads = _data(case)
    opt = adadelta.Adadelta(params, lr=LR, rho=RHO, eps=EPS, check_finite=check_finite)
    return lambda: opt.step(grads)


class TutorialAdadelta:
    """ADADELTA as ML-From-Scratch writes it: a NumPy expression per line, one per array."""

    def __init__(self, rho: float = RHO, eps: float = EPS) -> None:
        self.E_w_updt: FloatArray | None = None
        self.E_grad: FloatArray | None = None
        self.w_updt: FloatArray | None = None
        self.eps = eps
        self.rho = rho

    def update(self, w: FloatArray, grad_wrt_w: FloatArray) -> FloatArray:
        if self.w_updt is None:
            self.w_updt = np.zeros(np.shape(w), w.dtype)
            self.E_w_updt = np.zeros(np.shape(w), w.dtype)
            self.E_grad = np.zeros(np.shape(grad_wrt_w), w.dtype)
        assert self.E_grad is not None and self.E_w_updt is not None
        self.E_grad = self.rho * self.E_grad + (1 - self.rho) * np.power(grad_wrt_w, 2)
        RMS_delta_w = np.sqrt(self.E_w_updt + self.eps)
        RMS_grad = np.sqrt(self.E_grad + self.eps)
        adaptive_lr = RMS_delta_w / RMS_grad
        self.w_updt = adaptive_lr * grad_wrt_w
        self.E_w_updt = self.rho * self.E_w_updt + (1 - self.rho) * np.power(self.w_updt, 2)
        return w - self.w_updt


def make_numpy_tutorial(case: Case) -> Step:
    params, grads = _data(case)
    opts = [TutorialAdadelta() for _ in params]

    def step() -> None:
        for i, (opt, g) in enumerate(zip(opts, grads, strict=True)):
            params[i] = opt.update(params[i], g)

    return step


def make_torch(case: Case, foreach: bool) -> Step:
    import torch

    params, grads = _data(case)
    tensors = [torch.from_numpy(p).requires_grad_() for p in params]
    for t, g in zip(tensors, grads, strict=True):
        t.grad = torch.from_numpy(g)
    opt = torch.optim.Adadelta(tensors, lr=LR, rho=RHO, eps=EPS, foreach=foreach)
    return lambda: opt.step()


def make_optax(case: Case, donate: bool) -> Step:
    import jax
    import optax

    params_np, grads_np = _data(case)
    params = [jax.numpy.asarray(p) for p in params_np]
    grads = [jax.numpy.asarray(g) for g in grads_np]
    optimizer = optax.adadelta(learning_rate=LR, rho=RHO, eps=EPS)

    def update(params: Any, state: Any, grads: Any) -> Any:
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    jitted = jax.jit(update, donate_argnums=(0, 1) if donate else ())
    carry = [params, optimizer.init(params)]

    def step() -> None:
        carry[0], carry[1] = jitted(carry[0], carry[1], grads)
        jax.block_until_ready(carry[0])  # type: ignore[no-untyped-call]

    return step


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _triad(a: Any, b: Any, c: Any, s: Any) -> None:
    for i in numba.prange(a.size):
        a[i] = b[i] + s * c[i]


def make_triad(case: Case) -> Step:
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(case.elements, dtype=np.float32) for _ in range(3))
    s = np.float32(0.5)
    return lambda: _triad(a, b, c, s)


MAKERS: dict[str, Callable[[Case], Step]] = {
    "ours": make_ours,
    "ours-unchecked": lambda case: make_ours(case, check_finite=False),
    "torch-foreach": lambda case: make_torch(case, foreach=True),
    "torch-for": lambda case: make_torch(case, foreach=False),
    "optax-jit": lambda case: make_optax(case, donate=False),
    "optax-donated": lambda case: make_optax(case, donate=True),
    "numpy-tutorial": make_numpy_tutorial,
    "triad": make_triad,
}


def available(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The implementations that can run here, and notes on those that cannot."""
    usable, notes = [], []
    missing = {
        "torch": "PyTorch is not installed",
        "optax": "JAX and optax are not installed",
    }
    for name in names:
        package = name.split("-")[0]
        if package in missing:
            module = "torch" if package == "torch" else "optax"
            try:
                __import__(module)
                if module == "optax":
                    __import__("jax")
            except ImportError:
                notes.append(f"{name}: skipped, {missing[package]}")
                continue
        usable.append(name)
    return usable, notes


# --- measuring ---


def _time_steps(step: Step, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - start) / count


def measure(
    case: Case,
    names: Sequence[str],
    *,
    repeats: int,
    min_time: float,
    progress: Callable[[str], None],
) -> dict[str, list[float]]:
    """Seconds per step for each implementation: ``repeats`` rounds, each round timing every
    implementation once (for at least ``min_time`` seconds), in an order that rotates."""
    steps: dict[str, Step] = {}
    counts: dict[str, int] = {}
    for name in names:
        progress(f"{case.name}: setting up {name}")
        steps[name] = MAKERS[name](case)
        steps[name]()  # compiles (Numba, XLA) and creates the state
        per_step = _time_steps(steps[name], 2)
        counts[name] = max(1, math.ceil(min_time / max(per_step, 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        progress(f"{case.name}: round {round_ + 1}/{repeats}")
        shift = round_ % len(names)
        for name in [*names[shift:], *names[:shift]]:
            times[name].append(_time_steps(steps[name], counts[name]))
    steps.clear()
    gc.collect()
    return times


def _format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


def step_table(results: list[dict[str, Any]], names: Sequence[str]) -> str:
    """The markdown table of :func:`run_steps`' results."""
    header = ["case", "elements", *names]
    if "ours" in names and "triad" in names:
        header += ["ours GB/s", "triad GB/s", "ours / triad"]
    if "ours" in names and "torch-foreach" in names:
        header += ["torch-foreach / ours"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        median = r["median_s"]
        row = [r["case"], f"{r['elements']:.0e}".replace("e+0", "e")]
        row += [_format_time(median[n]) for n in names]
        if "ours" in names and "triad" in names:
            ours_gbs = STEP_BYTES * r["elements"] / median["ours"] / 1e9
            triad_gbs = TRIAD_BYTES * r["elements"] / median["triad"] / 1e9
            row += [f"{ours_gbs:.1f}", f"{triad_gbs:.1f}", f"{ours_gbs / triad_gbs:.2f}"]
        if "ours" in names and "torch-foreach" in names:
            row += [f"{median['torch-foreach'] / median['ours']:.1f}x"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def step_plot(results: list[dict[str, Any]], names: Sequence[str], path: Path) -> None:
    """Time per step against elements, log-log, one line per implementation (single tensors;
    the mix as separate markers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    single = [r for r in results if r["tensors"] == 1]
    mixes = [r for r in results if r["tensors"] > 1]
    for i, name in enumerate(names):
        color = f"C{i}"
        if single:
            ax.plot(
                [r["elements"] for r in single],
                [r["median_s"][name] * 1e3 for r in single],
                "o-",
                color=color,
                label=name,
            )
        for r in mixes:
            ax.plot(r["elements"], r["median_s"][name] * 1e3, "x", color=color, markersize=9)
    for tensors in sorted({r["tensors"] for r in mixes}):
        ax.plot(  # a legend entry for the markers, in no implementation's colour
            [],
            [],
            "x",
            color="black",
            markersize=9,
            label=f"x: {tensors} tensors of mixed sizes (lines: one tensor)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("elements in all (float32)")
    ax.set_ylabel("time per step (ms)")
    ax.set_title("ADADELTA step, median over rounds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _threading_layer() -> str | None:
    try:
        return str(numba.threading_layer())  # type: ignore[attr-defined]
    except ValueError:  # no parallel loop has run yet
        return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": model,
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": _threading_layer(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
    }
    for module in ("torch", "jax", "optax"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            pass
    return info


def run_steps(args: argparse.Namespace) -> int:
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    cases = [Case(f"{n:.0e}".replace("e+0", "e"), (n,)) for n in sizes]
    if args.mix > 0:
        total = int(float(args.mix_total))
        cases.append(Case(f"{args.mix} tensors", mixed_sizes(args.mix, total)))
    wanted = IMPLEMENTATIONS if args.only is None else tuple(args.only.split(","))
    unknown = [n for n in wanted if n not in MAKERS]
    if unknown:
        print(f"unknown implementation(s) {unknown}; choose from {list(MAKERS)}", file=sys.stderr)
        return 2
    names, notes = available(wanted)
    if "torch-foreach" in names or "torch-for" in names:
        import torch

        torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]

    def progress(message: str) -> None:
        if args.progress:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    results = []
    for case in cases:
        times = measure(
            case, names, repeats=args.repeats, min_time=args.min_time, progress=progress
        )
        results.append(
            {
                "case": case.name,
                "elements": case.elements,
                "tensors": len(case.sizes),
                "median_s": {n: statistics.median(t) for n, t in times.items()},
                "times_s": times,
            }
        )
    table = step_table(results, names)
    info = machine()
    text = (
        f"ADADELTA step, float32, lr={LR} rho={RHO} eps={EPS}; median over {args.repeats} "
        f"rounds of the mean time per step (each timing >= {args.min_time} s)\n"
        f"{_machine_line(info, args.threads)}\n\n{table}\n"
    )
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    record = {
        "what": "step",
        "machine": info,
        "settings": {"lr": LR, "rho": RHO, "eps": EPS, "dtype": "float32", **_plain_args(args)},
        "notes": notes,
        "results": results,
    }
    out = _write_outputs(Path(args.out), "bench", text, record)
    step_plot(results, names, out / "bench.png")
    print(f"wrote {out / 'bench.md'}, {out / 'bench.json'}, {out / 'bench.png'}")
    return 0


def _machine_line(info: dict[str, Any], threads: Any) -> str:
    return (
        f"machine: {info['cpu']}, {info['cores']} cores; threads: {threads}; "
        f"OMP_WAIT_POLICY={info['OMP_WAIT_POLICY']}, GOMP_SPINCOUNT={info['GOMP_SPINCOUNT']}"
    )


def _write_outputs(out: Path, name: str, text: str, record: dict[str, Any]) -> Path:
    """Print ``text``; write it as ``out/name.md`` and ``record`` as ``out/name.json``, both
    with the command line that made them."""
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    command = _command()
    (out / f"{name}.md").write_text(text + f"\ncommand: `{command}`\n")
    (out / f"{name}.json").write_text(json.dumps({**record, "command": command}, indent=1) + "\n")
    return out


def _command() -> str:
    """The command line that is running, for the record."""
    program = sys.argv[0]
    head = "adadelta" if Path(program).name == "adadelta" else f"python {program}"
    return " ".join([head, *sys.argv[1:]])


def _plain_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        k: v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
        for k, v in vars(args).items()
        if k not in ("command", "func")
    }


# --- one epoch of the paper's network, ours against PyTorch ---


def _epoch_data(n_train: int, data_dir: str | None) -> tuple[Any, str]:
    """MNIST from ``data_dir`` if given and loadable, else synthetic images of MNIST's shape."""
    from adadelta.app.datasets import Dataset

    if data_dir is not None:
        from adadelta.app.datasets import load_mnist

        data = load_mnist(data_dir, download=False, progress=False)
        return data.subset(n_train, min(10_000, data.x_test.shape[0])), "MNIST"
    rng = np.random.default_rng(0)
    n = n_train + min(10_000, n_train)  # MNIST's 10,000 test images, fewer for quick runs
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    data = Dataset("synthetic", x[:n_train], y[:n_train], x[n_train:], y[n_train:])
    return data, "synthetic"


def _epoch_ours(data: Any, batch_size: int, seed: int) -> float:
    from adadelta.app.model import MLP
    from adadelta.app.trainer import train

    model = MLP((784, 500, 300, 10), "relu", seed=seed)
    opt = adadelta.Adadelta(model.params)
    result = train(model, opt, data, epochs=1, batch_size=batch_size, seed=seed, progress=False)
    return float(result.history[0].seconds)


def _epoch_torch(data: Any, batch_size: int, seed: int) -> float:
    import torch

    from adadelta.app.trainer import epoch_order

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 500),
        torch.nn.ReLU(),
        torch.nn.Linear(500, 300),
        torch.nn.ReLU(),
        torch.nn.Linear(300, 10),
    )
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-6)
    loss_fn = torch.nn.CrossEntropyLoss()
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    x_test, y_test = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    start = time.perf_counter()
    order = torch.from_numpy(epoch_order(seed, 1, x_train.shape[0]))
    for first in range(0, x_train.shape[0], batch_size):
        rows = order[first : first + batch_size]
        opt.zero_grad()
        loss = loss_fn(model(x_train[rows]), y_train[rows])
        loss.backward()
        opt.step()
    with torch.no_grad():
        errors = sum(
            int((model(x_test[i : i + 1000]).argmax(1) != y_test[i : i + 1000]).sum())
            for i in range(0, x_test.shape[0], 1000)
        )
    _ = 100.0 * errors / x_test.shape[0]
    return time.perf_counter() - start


def run_epoch(args: argparse.Namespace) -> int:
    data, source = _epoch_data(args.n_train, args.data)
    names, notes = available(["ours", "torch-foreach"])
    runners: dict[str, Callable[[], float]] = {
        "ours": lambda: _epoch_ours(data, 100, 0),
    }
    if "torch-foreach" in names:
        import torch

        torch.set_num_threads(args.threads)
        runners["pytorch"] = lambda: _epoch_torch(data, 100, 0)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(args.repeats):
        for name, runner in runners.items() if round_ % 2 == 0 else reversed(runners.items()):
            if args.progress:
                print(f"[{time.strftime('%H:%M:%S')}] epoch {round_ + 1}: {name}", file=sys.stderr)
            times[name].append(runner())
    info = machine()
    median = {name: statistics.median(t) for name, t in times.items()}
    lines = [
        f"One epoch of the paper's network (784-500-300-10, ReLU, batch 100, ADADELTA rho=0.95 "
        f"eps=1e-6, float32) on {data.x_train.shape[0]} {source} images, then the test error "
        f"on {data.x_test.shape[0]}; median of {args.repeats} epochs each, alternating",
        _machine_line(info, args.threads),
        "",
        "| implementation | seconds per epoch |",
        "|---|---|",
        *[f"| {name} | {median[name]:.2f} |" for name in runners],
    ]
    if "pytorch" in median:
        lines += ["", f"pytorch / ours: {median['pytorch'] / median['ours']:.2f}"]
    lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    record = {
        "what": "epoch",
        "machine": info,
        "source": source,
        "median_s": median,
        "times_s": times,
    }
    out = _write_outputs(Path(args.out), "epoch", text, record)
    print(f"wrote {out / 'epoch.md'}, {out / 'epoch.json'}")
    return 0


# --- the command line (``adadelta bench``) ---


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``adadelta bench [step|epoch]``."""
    parser.add_argument(
        "what",
        nargs="?",
        choices=["step", "epoch"],
        default="step",
        help="step: one optimizer step at several sizes (default); epoch: one epoch of the "
        "paper's network, ours against PyTorch",
    )
    parser.add_argument("--out", default="bench-results", help="output directory")
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help=f"single-tensor sizes (default {DEFAULT_SIZES})"
    )
    parser.add_argument(
        "--mix", type=int, default=200, help="tensors in the mixed case (0: none; default 200)"
    )
    parser.add_argument("--mix-total", default="1e7", help="elements of the mixed case")
    parser.add_argument(
        "--only", help=f"comma-separated implementations (default all: {','.join(MAKERS)})"
    )
    parser.add_argument(
        "--repeats", type=int, help="rounds (default: 7 for step, 3 epochs each for epoch)"
    )
    parser.add_argument(
        "--min-time", type=float, default=0.2, help="seconds per timing (default 0.2)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="threads for Numba and PyTorch (default: all cores)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast check: sizes 1e5,1e6, a 20-tensor mix of 1e6, 3 rounds of 0.05 s",
    )
    parser.add_argument("--n-train", type=int, default=60_000, help="epoch: training images")
    parser.add_argument(
        "--data", help="epoch: directory of the MNIST .gz files (default: synthetic images)"
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false")


def run(args: argparse.Namespace) -> int:
    """Run ``adadelta bench`` with the options of :func:`add_arguments`.

    Importing :mod:`adadelta` has set ``GOMP_SPINCOUNT=10000`` unless ``GOMP_SPINCOUNT`` or
    ``OMP_WAIT_POLICY`` was set (see :mod:`adadelta.kernels`): by default, the OpenMP threads
    of Numba and of PyTorch spin for up to 300,000 iterations (milliseconds) after each
    parallel loop, taking the cores from whichever implementation runs next (on 2 cores, up to
    50x slower steps); with ``OMP_WAIT_POLICY=PASSIVE`` they sleep at once, and every parallel
    loop then waits tens of microseconds for them to wake.
    """
    if args.repeats is None:
        args.repeats = 3 if args.what == "epoch" else 7
    if args.quick:
        args.sizes, args.mix, args.mix_total = "1e5,1e6", 20, "1e6"
        args.repeats, args.min_time = 3, 0.05
        args.n_train = min(args.n_train, 10_000)
        args.repeats = 1 if args.what == "epoch" else args.repeats
    if args.repeats < 1 or args.min_time <= 0 or args.threads < 1:
        print("--repeats and --threads must be >= 1, --min-time > 0", file=sys.stderr)
        return 2
    return run_epoch(args) if args.what == "epoch" else run_steps(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m adadelta.app.bench``: the same as ``adadelta bench``."""
    parser = argparse.ArgumentParser(prog="adadelta bench", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
