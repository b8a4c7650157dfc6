"""Benchmarks: one ADADELTA step against its peers, as a training loop runs it and back to back,
one epoch of the paper's network against PyTorch, and the PyTorch drop-in's step on real models'
parameter lists (``adadelta bench``, ``adadelta bench epoch`` and ``adadelta bench models``).

``step``: every implementation updates the same float32 parameters with the same fixed
gradients (lr=1, rho=0.9, eps=1e-6: PyTorch's defaults) at each size, under three conditions:

- ``interleaved``: before every step, its framework's own matrix products of a training step
  (the forward and backward products of a linear layer with as many weights as the step has
  elements, on a batch of 100 rows: ``x @ W``, ``x.T @ dy``, ``dy @ W.T``), as in training: the
  step's threads have gone idle, the BLAS threads have just run, the caches hold other data.
  Only the step is timed.
- ``interleaved-busy``: the same, with one competing CPU-bound process on the machine (a
  Python busy loop), as on a machine that also does other work.
- ``tight``: steps back to back, the best case (no training loop runs this way).

Each framework runs in its own process (its thread pools and OpenMP runtime as in a program
that uses it alone), the rounds alternate the implementations, and the tables report the
median over rounds of the mean time per step. Implementations (the default five first):

- ``ours``: :class:`adadelta.Adadelta`, the fused kernel of :mod:`adadelta.kernels` with the
  finiteness check of every gradient (``ours-unchecked``: ``check_finite=False``);
- ``torch-compiled``: ``torch.optim.Adadelta``'s step under ``torch.compile`` (PyTorch's way to
  fuse an optimizer step; Inductor's C++ code on the CPU), compiled and warmed up first;
- ``torch-foreach`` and ``torch-for``: ``torch.optim.Adadelta(foreach=True / False)``, eager;
- ``optax-jit`` and ``optax-donated``: ``optax.adadelta`` and ``optax.apply_updates`` in one
  ``jax.jit`` (the second donates the parameters and state, so XLA may update them in place);
- ``triad``: not an optimizer but the memory-bandwidth probe ``a = b + s * c`` (Numba,
  parallel), whose GB/s (12 bytes per element) is the ceiling the fused step is measured
  against: an ADADELTA step moves 28 bytes per float32 element (reads x, g, E[g^2], E[dx^2];
  writes x, E[g^2], E[dx^2]);
- ``numpy-tutorial``: ADADELTA as tutorials write it (ML-From-Scratch): one NumPy expression
  per line of the paper, each making a temporary array.

``epoch``: one epoch of the paper's network with ours (and the share of ``opt.step`` in it),
the same network in PyTorch eager and with a ``torch.compile``d training step; ours again with
a competing process; with ``--demo``, ``adadelta demo``'s wall time without and with one.

``models``: the parameter lists of ResNet-50, GPT-2 small and MobileNetV2 stepped by every
state format of :class:`adadelta.torch.Adadelta` and by compiled and eager
``torch.optim.Adadelta`` in one process (:mod:`adadelta.app.bench_models`), each step after a
forward and backward pass of the paper's network; bytes of state per parameter; with
``--memory``, the peak resident set of a GPT-2-small step per state format.

PyTorch and JAX/optax are optional: their columns are left out, with a note, when they are
not installed (``models`` needs PyTorch, and says so).
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import math
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

import adadelta
from adadelta.app import bench_models
from adadelta.checkpoint import atomic_write
from adadelta.rules import FloatArray

LR, RHO, EPS = 1.0, 0.9, 1e-6
STEP_BYTES = 28  # per float32 element: 4 arrays read, 3 written
TRIAD_BYTES = 12  # a = b + s * c: 2 read, 1 written
BATCH = 100  # rows of the interleaved matrix products (the paper's mini-batch)
FRAMEWORKS = {
    "ours": "numpy",
    "torch-compiled": "torch",
    "torch-foreach": "torch",
    "optax-jit": "jax",
    "triad": "numpy",
    "ours-unchecked": "numpy",
    "torch-for": "torch",
    "optax-donated": "jax",
    "numpy-tutorial": "numpy",
}
IMPLEMENTATIONS = ("ours", "torch-compiled", "torch-foreach", "optax-jit", "triad")
CONDITIONS = ("interleaved", "interleaved-busy", "tight")
DEFAULT_SIZES = "1e5,1e6,1e7"

Step = Callable[[], None]


@dataclass(frozen=True)
class Case:
    """One benchmark setting: parameters of these sizes (one tensor, or a mix)."""

    name: str
    sizes: tuple[int, ...]

    @property
    def elements(self) -> int:
        return sum(self.sizes)


@dataclass(frozen=True)
class Peer:
    """An implementation's step, and its framework's matrix products that the interleaved
    conditions run before every step."""

    step: Step
    products: Step


def mixed_sizes(count: int, total: int, seed: int = 0) -> tuple[int, ...]:
    """``count`` tensor sizes adding up to ``total``, log-uniform between 1 and ``total/10``
    (a network's mix of biases and weight matrices)."""
    rng = np.random.default_rng(seed)
    weights = np.exp(rng.uniform(0.0, math.log(max(total / 10, 2)), count))
    sizes = np.maximum(1, np.floor(weights / weights.sum() * total)).astype(np.int64)
    sizes[np.argmax(sizes)] += total - int(sizes.sum())
    return tuple(int(s) for s in sizes)


# --- the matrix products of a training step, in each framework ---


def _layer_width(elements: int) -> int:
    """The width of a square linear layer with about ``elements`` weights."""
    return max(1, round(math.sqrt(elements)))


def numpy_products(elements: int) -> Step:
    """The forward and backward products of a linear layer (NumPy, i.e. its BLAS)."""
    d = _layer_width(elements)
    rng = np.random.default_rng(1)
    x, dy = (rng.standard_normal((BATCH, d), dtype=np.float32) for _ in range(2))
    w = rng.standard_normal((d, d), dtype=np.float32)
    y, dx, dw = np.empty_like(x), np.empty_like(x), np.empty_like(w)

    def products() -> None:
        np.matmul(x, w, out=y)
        np.matmul(x.T, dy, out=dw)
        np.matmul(dy, w.T, out=dx)

    return products


def torch_products(elements: int) -> Step:
    import torch

    d = _layer_width(elements)
    generator = torch.Generator().manual_seed(1)
    x, dy = (torch.randn(BATCH, d, generator=generator) for _ in range(2))
    w = torch.randn(d, d, generator=generator)
    y, dx, dw = torch.empty_like(x), torch.empty_like(x), torch.empty_like(w)

    def products() -> None:
        torch.mm(x, w, out=y)
        torch.mm(x.T, dy, out=dw)
        torch.mm(dy, w.T, out=dx)

    return products


def jax_products(elements: int) -> Step:
    import jax

    d = _layer_width(elements)
    rng = np.random.default_rng(1)
    x, dy = (jax.numpy.asarray(rng.standard_normal((BATCH, d), dtype=np.float32)) for _ in "xy")
    w = jax.numpy.asarray(rng.standard_normal((d, d), dtype=np.float32))
    jitted = jax.jit(lambda x, w, dy: (x @ w, x.T @ dy, dy @ w.T))

    def products() -> None:
        jax.block_until_ready(jitted(x, w, dy))  # type: ignore[no-untyped-call]

    return products


# --- the implementations ---


def _data(case: Case, seed: int = 0) -> tuple[list[FloatArray], list[FloatArray]]:
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(n, dtype=np.float32) for n in case.sizes]
    grads = [rng.standard_normal(n, dtype=np.float32) for n in case.sizes]
    return params, grads


def make_ours(case: Case, check_finite: bool = True) -> Peer:
    params, grads = _data(case)
    opt = adadelta.Adadelta(params, lr=LR, rho=RHO, eps=EPS, check_finite=check_finite)
    return Peer(lambda: opt.step(grads), numpy_products(case.elements))


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


def make_numpy_tutorial(case: Case) -> Peer:
    params, grads = _data(case)
    opts = [TutorialAdadelta() for _ in params]

    def step() -> None:
        for i, (opt, g) in enumerate(zip(opts, grads, strict=True)):
            params[i] = opt.update(params[i], g)

    return Peer(step, numpy_products(case.elements))


def _torch_optimizer(case: Case, **options: Any) -> Any:
    import torch

    params, grads = _data(case)
    tensors = [torch.from_numpy(p).requires_grad_() for p in params]
    for t, g in zip(tensors, grads, strict=True):
        t.grad = torch.from_numpy(g)
    return torch.optim.Adadelta(tensors, lr=LR, rho=RHO, eps=EPS, **options)


def make_torch(case: Case, foreach: bool) -> Peer:
    opt = _torch_optimizer(case, foreach=foreach)
    return Peer(lambda: opt.step(), torch_products(case.elements))


def make_torch_compiled(case: Case) -> Peer:
    """``torch.optim.Adadelta``'s step compiled as PyTorch's tutorial "Compiling the optimizer
    with torch.compile" does it; the first calls compile it (see :func:`measure`'s warm-up)."""
    import torch

    opt = _torch_optimizer(case)

    @torch.compile(fullgraph=False)
    def step() -> None:
        opt.step()

    for _ in range(3):  # compiles, then runs the compiled code
        step()
    return Peer(step, torch_products(case.elements))


def make_optax(case: Case, donate: bool) -> Peer:
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

    return Peer(step, jax_products(case.elements))


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _triad(a: Any, b: Any, c: Any, s: Any) -> None:
    for i in numba.prange(a.size):
        a[i] = b[i] + s * c[i]


def make_triad(case: Case) -> Peer:
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(case.elements, dtype=np.float32) for _ in range(3))
    s = np.float32(0.5)
    return Peer(lambda: _triad(a, b, c, s), numpy_products(case.elements))


MAKERS: dict[str, Callable[[Case], Peer]] = {
    "ours": make_ours,
    "torch-compiled": make_torch_compiled,
    "torch-foreach": lambda case: make_torch(case, foreach=True),
    "optax-jit": lambda case: make_optax(case, donate=False),
    "triad": make_triad,
    "ours-unchecked": lambda case: make_ours(case, check_finite=False),
    "torch-for": lambda case: make_torch(case, foreach=False),
    "optax-donated": lambda case: make_optax(case, donate=True),
    "numpy-tutorial": make_numpy_tutorial,
}


def available(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """The implementations that can run here, and notes on those that cannot."""
    usable, notes = [], []
    for name in names:
        framework = FRAMEWORKS[name]
        modules = {"torch": ["torch"], "jax": ["jax", "optax"]}.get(framework, [])
        if not all(importlib.util.find_spec(module) for module in modules):  # not imported here
            notes.append(f"{name}: skipped, {' and '.join(modules)} not installed")
            continue
        usable.append(name)
    return usable, notes


# --- the processes: one per framework, and a competitor ---


def _time_steps(peer: Peer, interleaved: bool, count: int) -> float:
    """Seconds per step, the mean of ``count`` steps; ``interleaved``: each after the matrix
    products (not timed). One untimed step first, after a pause in which the threads of what
    ran before (another process's) fall asleep."""
    time.sleep(0.02)
    if interleaved:
        peer.products()
    peer.step()
    total = 0.0
    for _ in range(count):
        if interleaved:
            peer.products()
        start = time.perf_counter()
        peer.step()
        total += time.perf_counter() - start
    return total / count


def _serve(framework: str, threads: int, connection: Any) -> None:  # pragma: no cover (child)
    """A process running one framework's implementations (and epochs) on request."""
    if framework == "torch":
        import torch  # before anything starts an OpenMP runtime: PyTorch's own, as it ships

        torch.set_num_threads(threads)
    peers: dict[str, Peer] = {}
    while True:
        request = connection.recv()
        try:
            command, *args = request
            if command == "stop":
                return
            if command == "setup":
                name, sizes = args
                peer = peers[name] = MAKERS[name](Case(name, tuple(sizes)))
                peer.step()  # compiles (Numba, XLA) and creates the state
                peer.products()
                start = time.perf_counter()
                peer.step()
                stepped = time.perf_counter()
                peer.products()
                reply: Any = (stepped - start, time.perf_counter() - stepped)
            elif command == "time":
                name, interleaved, count = args
                reply = _time_steps(peers[name], interleaved, count)
            elif command == "clear":
                peers.clear()
                gc.collect()
                reply = None
            elif command == "epoch":
                reply = EPOCHS[args[0]](*args[1:])
            elif command == "model":
                reply = bench_models.time_model(*args)
            elif command == "peak":
                reply = bench_models.peak_memory(*args)
            else:
                raise ValueError(f"unknown request {command!r}")
            connection.send(("ok", reply))
        except Exception:
            connection.send(("error", traceback.format_exc()))


class Workers:
    """One process per framework (started on first use), each with its thread pools as in a
    program that uses that framework alone: NumPy and Numba with ``threads`` threads, PyTorch
    imported before anything else and set to ``threads``, JAX as it starts. ``defaults``:
    environment variables the processes start with, unless this process has them set."""

    def __init__(self, threads: int, defaults: dict[str, str] | None = None) -> None:
        self.threads = threads
        self.defaults = defaults or {}
        self.processes: dict[str, tuple[Any, Any]] = {}

    def ask(self, framework: str, *request: Any) -> Any:
        if framework not in self.processes:
            context = multiprocessing.get_context("spawn")
            ours, theirs = context.Pipe()
            # Numba reads its thread count when it is imported (numba.set_num_threads would
            # start its pool before adadelta's first step does, see adadelta.kernels.parallel)
            variables = {k: v for k, v in self.defaults.items() if k not in os.environ}
            variables["NUMBA_NUM_THREADS"] = str(self.threads)
            with _environment(variables):
                process = context.Process(
                    target=_serve, args=(framework, self.threads, theirs), daemon=True
                )
                process.start()
            self.processes[framework] = (process, ours)
        connection = self.processes[framework][1]
        connection.send(request)
        status, reply = connection.recv()
        if status != "ok":
            raise RuntimeError(f"the {framework} process failed:\n{reply}")
        return reply

    def close(self) -> None:
        for process, connection in self.processes.values():
            connection.send(("stop",))
            process.join(timeout=30)
        self.processes.clear()


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """These environment variables set meanwhile (for the processes started), then as before."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


@contextmanager
def competitor(busy: bool) -> Iterator[None]:
    """With ``busy``, one CPU-bound process (a Python busy loop) runs meanwhile."""
    if not busy:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # running
        yield
    finally:
        process.kill()
        process.wait()


# --- measuring ---


def measure(
    case: Case,
    names: Sequence[str],
    conditions: Sequence[str],
    workers: Workers,
    *,
    repeats: int,
    min_time: float,
    progress: Callable[[str], None],
) -> dict[str, dict[str, list[float]]]:
    """Seconds per step for each condition and implementation: ``repeats`` rounds, each round
    timing every implementation once (for at least ``min_time`` seconds, at least 3 steps), in
    an order that rotates."""
    counts: dict[tuple[str, bool], int] = {}
    for name in names:
        progress(f"{case.name}: setting up {name}")
        step_s, products_s = workers.ask(FRAMEWORKS[name], "setup", name, case.sizes)
        counts[name, False] = max(3, math.ceil(min_time / max(step_s, 1e-7)))
        counts[name, True] = max(3, math.ceil(min_time / max(step_s + products_s, 1e-7)))
    times: dict[str, dict[str, list[float]]] = {}
    for condition in conditions:
        interleaved = condition.startswith("interleaved")
        times[condition] = {name: [] for name in names}
        with competitor(condition.endswith("busy")):
            for round_ in range(repeats):
                progress(f"{case.name}, {condition}: round {round_ + 1}/{repeats}")
                shift = round_ % len(names)
                for name in [*names[shift:], *names[:shift]]:
                    seconds = workers.ask(
                        FRAMEWORKS[name], "time", name, interleaved, counts[name, interleaved]
                    )
                    times[condition][name].append(seconds)
    for framework in {FRAMEWORKS[name] for name in names}:
        workers.ask(framework, "clear")
    return times


def _format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms"


def _ratio(results: list[dict[str, Any]], case: str, name: str, num: str, den: str) -> float:
    """``name``'s median time under condition ``num`` over that under ``den``, for ``case``."""
    conditions = next(r for r in results if r["case"] == case)["conditions"]
    return float(conditions[num]["median_s"][name] / conditions[den]["median_s"][name])


def step_table(results: list[dict[str, Any]], names: Sequence[str], condition: str) -> str:
    """The markdown table of :func:`run_steps`' results under one condition."""
    header = ["case", "elements", *names]
    ratios = [(peer, "ours") for peer in ("torch-compiled", "torch-foreach") if peer in names]
    header += [f"{peer} / ours" for peer, _ in ratios if "ours" in names]
    bandwidth = "ours" in names and "triad" in names
    if bandwidth:
        header += ["ours GB/s", "triad GB/s", "ours / triad"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        median = r["conditions"][condition]["median_s"]
        row = [r["case"], f"{r['elements']:.0e}".replace("e+0", "e")]
        row += [_format_time(median[n]) for n in names]
        if "ours" in names:
            row += [f"{median[peer] / median['ours']:.2f}x" for peer, _ in ratios]
        if bandwidth:
            ours_gbs = STEP_BYTES * r["elements"] / median["ours"] / 1e9
            triad_gbs = TRIAD_BYTES * r["elements"] / median["triad"] / 1e9
            row += [f"{ours_gbs:.1f}", f"{triad_gbs:.1f}", f"{ours_gbs / triad_gbs:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def step_plot(
    results: list[dict[str, Any]], names: Sequence[str], conditions: Sequence[str], path: Path
) -> None:
    """Time per step against elements, log-log, one color per implementation, one line style
    per condition (single tensors; the mix as separate markers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    single = [r for r in results if r["tensors"] == 1]
    mixes = [r for r in results if r["tensors"] > 1]
    styles = {"interleaved": "o-", "interleaved-busy": "s:", "tight": "^--"}
    for i, name in enumerate(names):
        for condition in conditions:
            medians = [r["conditions"][condition]["median_s"][name] * 1e3 for r in single]
            label = f"{name}, {condition}"
            if single:
                ax.plot([r["elements"] for r in single], medians, styles[condition], color=f"C{i}",
                        label=label, markersize=4)  # fmt: skip
            for r in mixes:
                seconds = r["conditions"][condition]["median_s"][name]
                ax.plot(r["elements"], seconds * 1e3, "x", color=f"C{i}", markersize=8)
    for tensors in sorted({r["tensors"] for r in mixes}):
        ax.plot(  # a legend entry for the markers, in no implementation's colour
            [],
            [],
            "x",
            color="black",
            markersize=8,
            label=f"x: {tensors} tensors of mixed sizes (lines: one tensor)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("elements in all (float32)")
    ax.set_ylabel("time per step (ms)")
    ax.set_title("ADADELTA step, median over rounds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, dpi=120, format="png"))
    plt.close(fig)


def run_steps(args: argparse.Namespace) -> int:
    cases = [Case(f"{n:.0e}".replace("e+0", "e"), (n,)) for n in args.sizes]
    if args.mix > 0:
        cases.append(Case(f"{args.mix} tensors", mixed_sizes(args.mix, args.mix_total)))
    conditions = args.conditions
    names, notes = available(args.only or IMPLEMENTATIONS)

    def progress(message: str) -> None:
        if args.progress:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    workers = Workers(args.threads)
    results: list[dict[str, Any]] = []
    try:
        for case in cases:
            times = measure(
                case,
                names,
                conditions,
                workers,
                repeats=args.repeats,
                min_time=args.min_time,
                progress=progress,
            )
            results.append(
                {
                    "case": case.name,
                    "elements": case.elements,
                    "tensors": len(case.sizes),
                    "conditions": {
                        condition: {
                            "median_s": {n: statistics.median(t) for n, t in by_name.items()},
                            "times_s": by_name,
                        }
                        for condition, by_name in times.items()
                    },
                }
            )
    finally:
        workers.close()
    info = machine(args.threads)
    text = (
        f"ADADELTA step, float32, lr={LR} rho={RHO} eps={EPS}; median over {args.repeats} "
        f"rounds of the mean time per step (each timing >= {args.min_time} s and >= 3 steps); "
        f"each framework in its own process\n{_machine_line(info)}\n"
    )
    for condition in conditions:
        text += f"\n### {condition}: {_CONDITION_TEXT[condition]}\n\n"
        text += step_table(results, names, condition) + "\n"
    if "interleaved" in conditions and "tight" in conditions and "ours" in names:
        ratios = [
            f"{r['case']} {_ratio(results, r['case'], 'ours', 'interleaved', 'tight'):.2f}"
            for r in results
        ]
        text += "\nours, interleaved / tight: " + ", ".join(ratios) + "\n"
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
    step_plot(results, names, conditions, out / "bench.png")
    print(f"wrote {out / 'bench.md'}, {out / 'bench.json'}, {out / 'bench.png'}")
    return 0


_CONDITION_TEXT = {
    "interleaved": "each step after its framework's forward and backward matrix products "
    f"(a square linear layer with as many weights as the step's elements, batch {BATCH})",
    "interleaved-busy": "the same, with one competing CPU-bound process on the machine",
    "tight": "steps back to back (no training loop runs this way)",
}


def _threading_layer() -> str | None:
    try:
        return str(numba.threading_layer())  # type: ignore[attr-defined]
    except ValueError:  # no parallel loop has run yet
        return None


def machine(threads: int) -> dict[str, Any]:
    """What the numbers were measured on, and the load on the machine when they were."""
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
        "threads": threads,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        **{name: os.environ.get(name) for name in _THREAD_VARIABLES},
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
    }
    for package in ("torch", "jax", "optax"):
        try:
            info[package] = importlib.metadata.version(package)  # without importing it
        except importlib.metadata.PackageNotFoundError:
            pass
    return info


# the environment variables that change how the thread pools wait or how many threads they run
_THREAD_VARIABLES = (
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "OPENBLAS_THREAD_TIMEOUT",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def _machine_line(info: dict[str, Any]) -> str:
    settings = [f"{name}={info[name]}" for name in _THREAD_VARIABLES if info[name] is not None]
    return (
        f"machine: {info['cpu']}, {info['cores']} cores; threads: {info['threads']}; "
        f"thread settings: {', '.join(settings) or 'none'}; "
        f"load average at the end (1, 5, 15 min): {info['load_average']}"
    )


def _write_outputs(out: Path, name: str, text: str, record: dict[str, Any]) -> Path:
    """Print ``text``; write it as ``out/name.md`` and ``record`` as ``out/name.json``, both
    with the command line that made them."""
    print(text)
    command = _command()
    markdown = (text + f"\ncommand: `{command}`\n").encode("utf-8")
    atomic_write(out / f"{name}.md", lambda f: f.write(markdown))
    as_json = (json.dumps({**record, "command": command}, indent=1) + "\n").encode("utf-8")
    atomic_write(out / f"{name}.json", lambda f: f.write(as_json))
    return out


def _command() -> str:
    """The command line that is running, for the record."""
    program = Path(sys.argv[0])
    if program.name == "adadelta" or program.name == "__main__.py":  # also python -m adadelta
        head = "adadelta"
    else:
        head = f"python {os.path.relpath(program)}"
    return " ".join([head, *sys.argv[1:]])


def _plain_args(args: argparse.Namespace) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)

    return {k: plain(v) for k, v in vars(args).items() if k not in ("command", "func")}


# --- one epoch of the paper's network, ours against PyTorch ---


_DATA: dict[tuple[int, Path | None], tuple[Any, str]] = {}


def _epoch_data(n_train: int, data_dir: Path | None) -> tuple[Any, str]:
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


def _cached_data(n_train: int, data_dir: Path | None) -> tuple[Any, str]:
    if (n_train, data_dir) not in _DATA:
        _DATA[n_train, data_dir] = _epoch_data(n_train, data_dir)
    return _DATA[n_train, data_dir]


class _TimedAdadelta(adadelta.Adadelta):
    """:class:`adadelta.Adadelta` that adds up the seconds its steps take."""

    seconds = 0.0

    def step(self, grads: Any) -> None:
        start = time.perf_counter()
        super().step(grads)
        self.seconds += time.perf_counter() - start


def _epoch_ours(n_train: int, data_dir: Path | None) -> dict[str, float]:
    """One epoch with :func:`adadelta.app.trainer.train`: its seconds (training and test
    error) and those of the optimizer's steps in it."""
    from adadelta.app.model import MLP
    from adadelta.app.trainer import train

    data, _ = _cached_data(n_train, data_dir)
    model = MLP((784, 500, 300, 10), "relu", seed=0)
    opt = _TimedAdadelta(model.params)
    result = train(model, opt, data, epochs=1, batch_size=BATCH, seed=0, progress=False)
    return {"seconds": float(result.history[0].seconds), "step_seconds": opt.seconds}


def _epoch_torch(n_train: int, data_dir: Path | None, compiled: bool = False) -> dict[str, float]:
    """The same epoch in PyTorch (the same layers and batches; PyTorch's initialisation, on
    which the time does not depend), eager or with a ``torch.compile``d training step
    (compiled and warmed up on three batches first, not timed)."""
    import torch

    from adadelta.app.trainer import epoch_order

    data, _ = _cached_data(n_train, data_dir)
    torch.manual_seed(0)
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

    def train_step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    step = torch.compile(train_step) if compiled else train_step
    order = torch.from_numpy(epoch_order(0, 1, x_train.shape[0]))
    batches = [order[first : first + BATCH] for first in range(0, x_train.shape[0], BATCH)]
    if compiled:
        for rows in batches[:3]:
            step(x_train[rows], y_train[rows])
    start = time.perf_counter()
    for rows in batches:
        step(x_train[rows], y_train[rows])
    with torch.no_grad():
        errors = sum(
            int((model(x_test[i : i + 1000]).argmax(1) != y_test[i : i + 1000]).sum())
            for i in range(0, x_test.shape[0], 1000)
        )
    _ = 100.0 * errors / x_test.shape[0]
    return {"seconds": time.perf_counter() - start}


EPOCHS: dict[str, Callable[..., dict[str, float]]] = {
    "ours": _epoch_ours,
    "pytorch": _epoch_torch,
    "pytorch-compiled": lambda n_train, data_dir: _epoch_torch(n_train, data_dir, compiled=True),
}


def _demo_seconds() -> float:
    """The wall time of ``adadelta demo`` (a fresh process; its output in a temporary folder)."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "adadelta", "demo", "--out", out, "--no-progress"]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - start


EPOCH_RUNS = ("ours", "pytorch", "pytorch-compiled", "demo")


def run_epoch(args: argparse.Namespace) -> int:
    wanted = args.only or EPOCH_RUNS[:3]
    data, source = _epoch_data(args.n_train, args.data)
    notes = []
    if ("pytorch" in wanted or "pytorch-compiled" in wanted) and not available(["torch-for"])[0]:
        wanted = tuple(n for n in wanted if not n.startswith("pytorch"))
        notes.append("pytorch: skipped, torch not installed")
    # (label, what runs, in which process, with a competing process): ours and the demo also
    # with one competing process
    runs = [(name, name, "numpy" if name == "ours" else "torch", False) for name in wanted]
    runs += [(f"{name}, busy", name, "numpy", True) for name in wanted if name in ("ours", "demo")]
    times: dict[str, list[float]] = {label: [] for label, *_ in runs}
    step_times: list[float] = []
    workers = Workers(args.threads)
    try:
        for _, what, framework, _ in runs:  # compiles (Numba's cache, Inductor), not timed
            if what != "demo":
                workers.ask(framework, "epoch", what, min(args.n_train, 3 * BATCH), args.data)
        for round_ in range(args.repeats):
            shift = round_ % len(runs)
            for label, what, framework, busy in [*runs[shift:], *runs[:shift]]:
                if args.progress:
                    message = f"[{time.strftime('%H:%M:%S')}] epoch {round_ + 1}: {label}"
                    print(message, file=sys.stderr, flush=True)
                with competitor(busy):
                    if what == "demo":
                        times[label].append(_demo_seconds())
                        continue
                    reply = workers.ask(framework, "epoch", what, args.n_train, args.data)
                times[label].append(reply["seconds"])
                if label == "ours":
                    step_times.append(reply["step_seconds"])
    finally:
        workers.close()
    info = machine(args.threads)
    median = {label: statistics.median(t) for label, t in times.items()}
    lines = [
        f"One epoch of the paper's network (784-500-300-10, ReLU, batch {BATCH}, ADADELTA "
        f"rho=0.95 eps=1e-6, float32) on {data.x_train.shape[0]} {source} images, then the test "
        f"error on {data.x_test.shape[0]}; median of {args.repeats} epochs each, alternating; "
        "each framework in its own process; busy: with one competing CPU-bound process; demo: "
        "the wall time of `adadelta demo`",
        _machine_line(info),
        "",
        "| run | seconds |",
        "|---|---|",
        *[f"| {label} | {median[label]:.2f} |" for label in times],
        "",
    ]
    if step_times:
        step_median = statistics.median(step_times)
        lines += [
            f"ours: opt.step {step_median:.2f} s of the epoch "
            f"({100 * step_median / median['ours']:.0f}%, median over the epochs)",
            f"ours, busy / ours: {median['ours, busy'] / median['ours']:.2f}",
        ]
        for name in ("pytorch", "pytorch-compiled"):
            if name in median:
                lines += [f"{name} / ours: {median[name] / median['ours']:.2f}"]
    if "demo" in median:
        lines += [f"demo, busy / demo: {median['demo, busy'] / median['demo']:.2f}"]
    lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    record = {
        "what": "epoch",
        "machine": info,
        "source": source,
        "median_s": median,
        "times_s": times,
        "ours_step_s": step_times,
    }
    out = _write_outputs(Path(args.out), "epoch", text, record)
    print(f"wrote {out / 'epoch.md'}, {out / 'epoch.json'}")
    return 0


# --- real models' parameter lists inside torch's loop (``bench models``) ---

# torch's OpenMP threads and the drop-in's Numba threads share the models' process: threads that
# spin after a parallel loop would take the cores from the next step (on 2 cores they slowed
# PyTorch's step several times over, see benchmarks/torch_step.py), so they wait passively
MODELS_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE"}
BACKENDS = ("inductor", "aot_eager", "eager")  # torch.compile's, for --backend


def models_table(results: Sequence[tuple[str, bench_models.ModelTiming]]) -> str:
    """The markdown tables of :func:`run_models`: median step by optimizer with the drop-in's
    ratios to compiled torch, and bytes of state per parameter."""
    names = bench_models.OPTIMIZERS
    header = ["model (tensors, parameters)", *(f"{n} (ms)" for n in names)]
    header += [f"{bench_models.dropin(f)} vs {bench_models.COMPILED}" for f in bench_models.FORMATS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, timing in results:
        shapes = bench_models.MODELS[model]()
        n = sum(math.prod(s) for s in shapes)
        median = timing.median_s
        row = [f"{model} ({len(shapes)}, {n / 1e6:.1f}M)"]
        row += [f"{1e3 * median[name]:.2f}" for name in names]
        row += [f"{timing.ratio(f):.2f}x" for f in bench_models.FORMATS]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Bytes of optimizer state per parameter (step counters included):",
        "",
        "| model | " + " | ".join(names) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for model, timing in results:
        cells = [f"{timing.state_bytes_per_parameter[name]:.2f}" for name in names]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def memory_table(memory: dict[str, tuple[float, float]], device: str = "cpu") -> str:
    """The markdown table of the peak memory of a GPT-2-small step, by state format: the
    resident set on the CPU, PyTorch's allocated memory on a GPU."""
    peak = "peak RSS" if device == "cpu" else f"peak {device} memory"
    lines = [
        f"| GPT-2 small step | {peak}, parameters + gradients (GB) | {peak} after 2 steps "
        "(GB) | optimizer's share (GB) | vs float32 state (GB) |",
        "|---|---|---|---|---|",
    ]
    base = memory["float32"][1]
    for state_format, (before, after) in memory.items():
        lines.append(
            f"| {state_format} state | {before:.2f} | {after:.2f} | {after - before:.2f} "
            f"| {after - base:+.2f} |"
        )
    return "\n".join(lines)


def models_plot(
    results: Sequence[tuple[str, bench_models.ModelTiming]], backend: str, path: Path
) -> None:
    """Bars: the drop-in's speed-up over compiled torch per model and state format."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=120)
    ax = fig.add_subplot()
    width = 0.8 / len(bench_models.FORMATS)
    for i, state_format in enumerate(bench_models.FORMATS):
        ratios = [timing.ratio(state_format) for _, timing in results]
        where = [m + (i - (len(bench_models.FORMATS) - 1) / 2) * width for m in range(len(results))]
        bars = ax.bar(where, ratios, width, color=f"C{i}", label=f"{state_format} state")
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.axhline(
        1.0, color="black", linewidth=0.8, linestyle="--", label=f"torch.compile ({backend})"
    )
    ax.set_xticks(range(len(results)), [bench_models.TITLES[model] for model, _ in results])
    ax.set_ylabel("torch.compile's step / adadelta.torch's")
    ax.set_title("adadelta.torch on real models' parameter lists (> 1: faster)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png"))


def _gpu_name() -> str:
    """The name of CUDA device 0 (torch imported here, for the machine line)."""
    import torch

    return str(torch.cuda.get_device_name(0))


def run_models(args: argparse.Namespace) -> int:
    """``bench models``: each model's timing in one torch process, each state format's peak
    memory in a fresh one; the tables printed and written with the plot to ``--out``."""

    def progress(message: str) -> None:
        if args.progress:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    results: list[tuple[str, bench_models.ModelTiming]] = []
    workers = Workers(args.threads, MODELS_ENVIRONMENT)
    try:
        for model in args.models:
            progress(f"{model}: compiling, then {args.repeats} round(s) of every optimizer")
            results.append(
                (
                    model,
                    workers.ask("torch", "model", model, args.repeats, args.backend, args.device),
                )
            )
    finally:
        workers.close()
    memory: dict[str, tuple[float, float]] = {}
    for state_format in bench_models.FORMATS if args.memory else ():
        progress(f"peak memory of a GPT-2-small step, {state_format} state")
        fresh = Workers(args.threads, MODELS_ENVIRONMENT)  # the peak is the process's
        try:
            before, after = fresh.ask("torch", "peak", state_format, args.device)
        finally:
            fresh.close()
        memory[state_format] = (before, after)
    info = machine(args.threads)
    device_name = "the CPU"
    if args.device == "cuda":
        device_name = info["gpu"] = _gpu_name()
    info["OMP_WAIT_POLICY"] = os.environ.get(
        "OMP_WAIT_POLICY", MODELS_ENVIRONMENT["OMP_WAIT_POLICY"]
    )
    text = (
        "Real models' parameter lists (built from the architectures, no weights) inside torch's "
        f"loop on {device_name}: median of {args.repeats} step(s) of each optimizer, taking "
        "turns, each after a forward and backward pass of the paper's network "
        f"(batch {BATCH}); ratio = {bench_models.COMPILED}'s time / the drop-in's "
        "(> 1: the drop-in is faster); "
        f"torch.compile backend: {args.backend}; the drop-in's default policy "
        "(min_compact_size=4096); torch and the drop-in in one process\n"
        f"{_machine_line(info)}\n\n{models_table(results)}\n"
    )
    if memory:
        text += (
            f"\nPeak memory of a GPT-2-small step on {device_name} (a fresh process per state "
            "format: the parameters and gradients, then two steps):\n\n"
            + memory_table(memory, args.device)
            + "\n"
        )
    record = {
        "what": "models",
        "machine": info,
        "settings": _plain_args(args),
        "results": [
            {
                "model": model,
                "tensors": len(shapes),
                "parameters": sum(math.prod(s) for s in shapes),
                "median_s": timing.median_s,
                "times_s": timing.times_s,
                "ratio_vs_compiled": {f: timing.ratio(f) for f in bench_models.FORMATS},
                "state_bytes_per_parameter": timing.state_bytes_per_parameter,
            }
            for model, timing in results
            for shapes in [bench_models.MODELS[model]()]
        ],
        "peak_memory_gb": {
            f: {"parameters_and_gradients": before, "after_two_steps": after}
            for f, (before, after) in memory.items()
        },
    }
    out = _write_outputs(Path(args.out), "models", text, record)
    models_plot(results, args.backend, out / "models.png")
    print(f"wrote {out / 'models.md'}, {out / 'models.json'}, {out / 'models.png'}")
    return 0


# --- the command line (``adadelta bench``) ---

# Roughly the bytes per element that the implementations' processes hold at once (parameters,
# gradients and two state arrays per implementation, its framework's copies): the largest case
# must fit in the machine's memory this many times over.
BYTES_PER_ELEMENT = 100
MAX_MIN_TIME = 60.0  # seconds per timing
MNIST_TRAIN = 60_000
QUICK = {"sizes": (10**5, 10**6), "mix": 20, "mix_total": 10**6, "repeats": 3, "min_time": 0.05}
# the options of each mode (the others refuse them)
OPTIONS = {
    "step": ("sizes", "mix", "mix_total", "conditions", "min_time", "only"),
    "epoch": ("n_train", "data", "only"),
    "models": ("models", "memory", "backend", "device"),
}


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _count(text: str) -> int:
    """A positive whole number of elements, as 1e6 or 1000000."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number (1e6, 1000), got {text!r}"
        )
    return int(value)


def _sizes(text: str) -> tuple[int, ...]:
    parts = text.split(",")
    if not all(part.strip() for part in parts):
        raise argparse.ArgumentTypeError(
            f"expected sizes separated by commas (1e5,1e6), got {text!r}"
        )
    return tuple(_count(part) for part in parts)


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _threads(text: str) -> int:
    value, available = _positive(text), cores()
    if value > available:
        raise argparse.ArgumentTypeError(
            f"{value} threads, but this process may use {available} cores; choose 1..{available}"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_MIN_TIME:  # also refuses nan
        raise argparse.ArgumentTypeError(
            f"expected seconds above 0 and at most {MAX_MIN_TIME:g}, got {text!r}"
        )
    return value


def _n_train(text: str) -> int:
    value = _positive(text)
    if value > MNIST_TRAIN:
        raise argparse.ArgumentTypeError(f"MNIST has {MNIST_TRAIN} training images, got {text!r}")
    return value


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected names separated by commas, got {text!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"{', '.join(twice)} listed more than once")
    return names


def _conditions(text: str) -> tuple[str, ...]:
    names = _names(text)
    unknown = [n for n in names if n not in CONDITIONS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown condition(s) {', '.join(unknown)}; choose from {', '.join(CONDITIONS)}"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``adadelta bench [step|epoch]``. Options left out take the defaults of
    :func:`resolve` (``--quick`` changes some of them; options given explicitly win)."""
    parser.add_argument(
        "what",
        nargs="?",
        choices=list(OPTIONS),
        default="step",
        help="step: one optimizer step at several sizes; epoch: one epoch of the paper's "
        "network, ours against PyTorch; models: the PyTorch drop-in's step on real models' "
        "parameter lists against torch.compile (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        metavar="DIR",
        help="output directory: bench.md, .json, .png (step), epoch.md, .json (epoch) or "
        "models.md, .json, .png (models) (default: %(default)s)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        metavar="N,N,...",
        help=f"step: single-tensor sizes (default: {DEFAULT_SIZES})",
    )
    parser.add_argument(
        "--mix",
        type=_non_negative,
        metavar="N",
        help="step: tensors in the mixed case, 0 for none (default: 200)",
    )
    parser.add_argument(
        "--mix-total",
        type=_count,
        metavar="N",
        help="step: elements of the mixed case (default: 1e7)",
    )
    parser.add_argument(
        "--only",
        type=_names,
        metavar="NAME,...",
        help=f"step: implementations, of {', '.join(MAKERS)} (default: "
        f"{','.join(IMPLEMENTATIONS)}); epoch: runs, of {', '.join(EPOCH_RUNS)} (default: "
        f"{','.join(EPOCH_RUNS[:3])}; ours and demo also run busy)",
    )
    parser.add_argument(
        "--conditions",
        type=_conditions,
        metavar="NAME,...",
        help=f"step: of {', '.join(CONDITIONS)} (default: all)",
    )
    parser.add_argument(
        "--repeats",
        "--rounds",
        dest="repeats",
        type=_positive,
        metavar="N",
        help="rounds (default: 5 for step, 3 for epoch, 10 for models)",
    )
    parser.add_argument(
        "--min-time",
        type=_seconds,
        metavar="SECONDS",
        help=f"step: seconds per timing, at most {MAX_MIN_TIME:g} (default: 0.2)",
    )
    parser.add_argument(
        "--threads",
        type=_threads,
        default=cores(),
        metavar="N",
        help="threads for Numba and PyTorch, at most the cores (default: all, %(default)s here)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast check: step: sizes 1e5,1e6, a 20-tensor mix of 1e6, 3 rounds of 0.05 s; "
        "epoch: 10,000 images, 1 round; models: MobileNetV2, 3 rounds (options given "
        "explicitly win)",
    )
    parser.add_argument(
        "--n-train",
        type=_n_train,
        metavar="N",
        help=f"epoch: training images (default: {MNIST_TRAIN})",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="epoch: directory of the four MNIST .gz files (default: synthetic images)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        metavar="NAME",
        help=f"models: parameter lists, of {', '.join(bench_models.MODELS)} (default: all)",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        default=None,
        help="models: also the peak memory of a GPT-2-small step with each state format, a "
        "fresh process each (Linux)",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        help="models: the device of the parameters (default: cpu; cuda: the GPU's kernels)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="models: torch.compile's backend (default: inductor; eager skips Inductor's "
        "compilation, for quick checks)",
    )
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="hide the progress lines (default: shown when stderr is a terminal)",
    )


def check(args: argparse.Namespace) -> str | None:
    """What is wrong with the options together (None: nothing), before any work; fills in the
    defaults of the options left out."""
    step = args.what == "step"
    foreign = [
        name
        for what, names in OPTIONS.items()
        if what != args.what
        for name in names
        if name not in OPTIONS[args.what]
    ]
    given = [
        f"--{n.replace('_', '-')}" for n in dict.fromkeys(foreign) if getattr(args, n) is not None
    ]
    if given:
        problem = f"{', '.join(given)}: not an option of bench {args.what}"
        if args.models and args.models[-1] in OPTIONS:  # --models took the mode as a name
            problem += f"; name the mode first: adadelta bench {args.models[-1]} --models ..."
        return problem
    if args.what == "models":
        return _check_models(args)
    quick = args.quick
    if step:
        defaults: dict[str, Any] = {
            "sizes": tuple(_sizes(DEFAULT_SIZES)), "mix": 200, "mix_total": 10**7,
            "repeats": 5, "min_time": 0.2, "conditions": CONDITIONS,
        }  # fmt: skip
        if quick:
            defaults.update(QUICK)
    else:
        defaults = {"repeats": 1 if quick else 3, "n_train": 10_000 if quick else MNIST_TRAIN}
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    known = MAKERS if step else EPOCH_RUNS
    unknown = [n for n in args.only or () if n not in known]
    if unknown:
        what = "implementation" if step else "run"
        return f"--only: unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}"
    if step:
        if args.mix > args.mix_total:
            return (
                f"--mix {args.mix} tensors of at least one element need --mix-total >= {args.mix}"
            )
        largest = max([*args.sizes, args.mix_total if args.mix else 0])
        memory = _memory_bytes()
        if memory is not None and largest * BYTES_PER_ELEMENT > memory:
            most = memory // BYTES_PER_ELEMENT
            return (
                f"{largest:.3g} elements need about {largest * BYTES_PER_ELEMENT / 1e9:.3g} GB "
                f"({BYTES_PER_ELEMENT} bytes per element across the implementations' processes) "
                f"and this machine has {memory / 1e9:.3g} GB; choose --sizes and --mix-total of "
                f"at most {most:.2g}"
            )
        names, _ = available(args.only or IMPLEMENTATIONS)
        if not names:
            return "--only: none of these can run here (their frameworks are not installed)"
    elif args.data is not None:
        from adadelta.app.datasets import FILES

        missing = [name for name in FILES.values() if not (args.data / name).is_file()]
        if missing:
            return (
                f"--data {args.data}: MNIST files missing: {', '.join(missing)}; put the four "
                "MNIST .gz files there, or leave --data out to time on synthetic images"
            )
    return None


def _check_models(args: argparse.Namespace) -> str | None:
    defaults: dict[str, Any] = {
        "models": ["mobilenet_v2"] if args.quick else list(bench_models.MODELS),
        "repeats": 3 if args.quick else 10,
        "memory": False,
        "backend": "inductor",
        "device": "cpu",
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    unknown = [n for n in args.models if n not in bench_models.MODELS]
    if unknown:
        return (
            f"--models: unknown model(s) {', '.join(unknown)}; choose from "
            f"{', '.join(bench_models.MODELS)}"
        )
    twice = sorted({n for n in args.models if args.models.count(n) > 1})
    if twice:
        return f"--models: {', '.join(twice)} listed more than once"
    if not importlib.util.find_spec("torch"):  # not imported here: the models' process does
        return (
            "bench models steps the PyTorch drop-in, which needs the torch extra: "
            "pip install 'adadelta[torch]'"
        )
    if args.memory and args.device == "cpu" and not Path("/proc/self/status").is_file():
        return "--memory reads the peak resident set from /proc (Linux); leave --memory out"
    if args.device == "cuda":
        import torch  # (only for --device cuda: a second or two)

        if not torch.cuda.is_available():
            return "--device cuda: PyTorch sees no CUDA device here; leave --device out (cpu)"
        if not importlib.util.find_spec("triton"):
            return "--device cuda steps the drop-in's Triton kernels: pip install triton"
    return None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def output_files(args: argparse.Namespace) -> tuple[str, ...]:
    """The files a run writes in ``--out``."""
    if args.what == "epoch":
        return ("epoch.md", "epoch.json")
    if args.what == "models":
        return ("models.md", "models.json", "models.png")
    return ("bench.md", "bench.json", "bench.png")


def run(args: argparse.Namespace) -> int:
    """Run ``adadelta bench`` with the options of :func:`add_arguments`, checked by
    :func:`check`."""
    runs = {"step": run_steps, "epoch": run_epoch, "models": run_models}
    return runs[args.what](args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m adadelta.app.bench ARGS``: ``adadelta bench ARGS``."""
    from adadelta.app.cli import main as cli_main

    return cli_main(["bench", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
