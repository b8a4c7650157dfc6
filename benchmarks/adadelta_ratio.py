"""Where the time of a small ADADELTA step goes: the arithmetic of the ratio, the finiteness
scan, and the Python around the kernel.

Loops that differ only in how they compute RMS[dx]_{t-1} / RMS[g]_t (the same chunked
``prange`` over one float32 array as the fused kernel, lr=1, rho=0.9, eps=1e-6, on as many
threads as the kernel runs on: one below ``adadelta.kernels.PARALLEL_MIN`` elements):

- ``two roots``: ``sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps)``, as the rule, PyTorch and optax;
- ``one root``: ``sqrt((E[dx^2] + eps) / (E[g^2] + eps))``, as ``adadelta.kernels``;
- ``two roots, fast-math``: the first with LLVM's ``afn``/``arcp`` flags, which let it replace
  the division by a square root with a reciprocal-square-root estimate and a Newton step;
- ``the same, guarded``: with the rule's 0 where E[g^2] + eps is infinite (the estimate gives
  NaN there), as a select after the ratio;
- ``the estimate corrected and guarded``: the estimate of ``1 / sqrt(E[g^2] + eps)`` alone (the
  flags on that division only), one more Newton step to make it accurate, and the guards that
  give the exact division's values at 0, infinity and subnormals: the divide unit is freed,
  but the vector units then have as much to do;
- ``no root``: ``E[dx^2] * g`` in place of the step: the same memory traffic, no division or
  square root, a floor for the others;

and how accurate each ratio is (one step from x = 0 with rho = 0, against the same step in
float64 from the same float32 accumulators; and two cases at the edge of float32: a gradient
whose square overflows, and a subnormal eps). Then the real thing, layer by layer: the kernel
call alone (without and with its finiteness scan), ``Batch.step`` (the table of addresses, the
hyperparameters, the step count), and ``Adadelta.step`` (the checks of the gradients and the
hyperparameters). Each row is timed in every round, the order rotating; the table shows the
median over rounds of the mean time.

    python benchmarks/adadelta_ratio.py                  # 1e5 elements, 15 rounds
    python benchmarks/adadelta_ratio.py > benchmarks/results/adadelta_ratio.md
    python benchmarks/adadelta_ratio.py --n 10000000 --rounds 7
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

import adadelta
from adadelta import kernels
from adadelta.app import bench

CHUNK = kernels.CHUNK


def _loop(ratio: Callable[[Any, Any], Any], fastmath: Any = False) -> Any:
    """A parallel ADADELTA loop over one array whose ratio of RMS values is ``ratio(A, B)``."""

    @numba.njit(parallel=True, error_model="numpy", fastmath=fastmath)
    def step(x: Any, g: Any, E_g2: Any, E_dx2: Any, rho: Any, one_minus_rho: Any, eps: Any) -> None:
        for k in numba.prange((x.size + CHUNK - 1) // CHUNK):
            start, end = k * CHUNK, min((k + 1) * CHUNK, x.size)
            xs, gs, a, b = x[start:end], g[start:end], E_g2[start:end], E_dx2[start:end]
            for i in range(end - start):
                gi = gs[i]
                Eg = rho * a[i] + one_minus_rho * gi * gi
                Edx = b[i]
                dx = -ratio(Edx + eps, Eg + eps) * gi
                a[i] = Eg
                b[i] = rho * Edx + one_minus_rho * dx * dx
                xs[i] = xs[i] + dx

    return step


@numba.njit(inline="always")
def _two_roots(a: Any, b: Any) -> Any:
    return np.sqrt(a) / np.sqrt(b)


@numba.njit(inline="always")
def _one_root(a: Any, b: Any) -> Any:
    return np.sqrt(a / b)


@numba.njit(inline="always")
def _two_roots_guarded(a: Any, b: Any) -> Any:
    """The fast-math ratio, with 0 where E[g^2] + eps is infinite (the rule's value there)."""
    ratio = np.sqrt(a) / np.sqrt(b)
    return ratio if b != np.inf else a * 0


@intrinsic
def _corrected_estimate(typingctx: Any, a: Any, b: Any) -> Any:
    """``sqrt(a) / sqrt(b)`` as ``sqrt(a) * y`` with ``y`` LLVM's estimate of ``1 / sqrt(b)`` (the
    ``afn``/``arcp`` flags on this division only) corrected by one more Newton step with fused
    multiply-adds, and ``b`` guarded: scaled by 2^64 below 2^-64 (the estimate flushes subnormals
    to zero), y = inf at b = 0 and y = 0 at b = inf, as the exact division gives there."""
    signature = a(a, b)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        a, b = args
        constant = functools.partial(ir.Constant, a.type)
        sqrt = builder.module.declare_intrinsic("llvm.sqrt", [a.type])
        small = builder.fcmp_ordered("<", b, constant(2.0**-64))
        b_scaled = builder.select(small, builder.fmul(b, constant(2.0**64)), b)
        root = builder.call(sqrt, [b_scaled], fastmath=("afn",))
        y = builder.fdiv(constant(1.0), root, flags=("afn", "arcp"))
        residual = builder.fma(builder.fneg(builder.fmul(b_scaled, y)), y, constant(1.0))
        y = builder.fma(builder.fmul(y, constant(0.5)), residual, y)
        y = builder.select(small, builder.fmul(y, constant(2.0**32)), y)
        y = builder.select(builder.fcmp_ordered("==", b, constant(0.0)), constant(np.inf), y)
        y = builder.select(builder.fcmp_ordered("==", b, constant(np.inf)), constant(0.0), y)
        return builder.fmul(builder.call(sqrt, [a]), y)

    return signature, codegen


@numba.njit(inline="always")
def _estimated(a: Any, b: Any) -> Any:
    return _corrected_estimate(a, b)  # type: ignore[call-arg]


@numba.njit(inline="always")
def _no_root(a: Any, b: Any) -> Any:
    return a


LOOPS = {
    "two roots": _loop(_two_roots),
    "one root": _loop(_one_root),
    # LLVM's reciprocal square root estimate and a Newton step (not IEEE: see the module doc)
    "two roots, fast-math afn/arcp": _loop(_two_roots, fastmath={"afn", "arcp"}),
    "the same, guarded (0 where E[g^2] = inf)": _loop(_two_roots_guarded, fastmath={"afn", "arcp"}),
    "two roots, the estimate corrected and guarded": _loop(_estimated),
    "no root": _loop(_no_root),
}


def steps(n: int) -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(0)
    g = rng.standard_normal(n, dtype=np.float32)
    rho, eps = np.float32(0.9), np.float32(1e-6)
    out: dict[str, Callable[[], object]] = {}
    for name, loop in LOOPS.items():
        arrays = (rng.standard_normal(n, dtype=np.float32), g, np.zeros(n, np.float32))
        x, _, E_g2 = arrays
        E_dx2 = np.zeros(n, np.float32)
        out[f"loop, {name}"] = functools.partial(loop, x, g, E_g2, E_dx2, rho, 1 - rho, eps)
    opt = adadelta.Adadelta(rng.standard_normal(n, dtype=np.float32), lr=1.0, rho=0.9, eps=1e-6)
    opt.step(g)  # makes the batch
    assert opt._plan is not None
    batch, group = opt._plan.batches[0].batch, opt.param_groups[0]
    for check in (False, True):
        label = "with" if check else "without"
        out[f"kernel call, {label} scan"] = functools.partial(batch.call, check)
    out["Batch.step, with scan"] = lambda: batch.step(group, [g], True)
    out["Adadelta.step (the default)"] = lambda: opt.step(g)
    return out


def _one_step(loop: Any, g: Any, E_dx2: Any, eps: float) -> Any:
    """The step from x = 0 with rho = 0 (so E[g^2] = g^2): x afterwards."""
    x, zero = np.zeros_like(g), np.float32(0)
    loop(x, g, np.zeros_like(g), E_dx2.copy(), zero, np.float32(1), np.float32(eps))
    return x


def accuracy() -> list[str]:
    """Markdown rows: each ratio's largest error, and its step at the two edge cases."""
    rng = np.random.default_rng(1)
    n, eps = 1_000_000, np.float32(1e-6)
    g = (rng.choice([-1, 1], n) * 10 ** rng.uniform(-4, 4, n)).astype(np.float32)
    E_dx2 = (10 ** rng.uniform(-10, 2, n)).astype(np.float32)
    A, B = (E_dx2 + eps).astype(np.float64), (g * g + eps).astype(np.float64)  # float32 sums
    exact = -np.sqrt(A / B) * g.astype(np.float64)
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    overflow, zero = np.array([3e19], np.float32), np.zeros(1, np.float32)
    rows = []
    for name, loop in LOOPS.items():
        if name == "no root":
            continue
        worst = np.max(np.abs(_one_step(loop, g, E_dx2, float(eps)) - exact) / ulp)
        inf_step = _one_step(loop, overflow, zero, float(eps))[0]
        subnormal = _one_step(loop, np.array([1e-30], np.float32), zero, 1e-40)[0]
        rows.append(f"| {name} | {worst:.2f} | {inf_step:g} | {subnormal:g} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=float, default=1e5, help="elements (default 1e5)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds (default 15)")
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per timing")
    args = parser.parse_args()
    n = int(args.n)
    cases = steps(n)  # its first step starts Numba's pool as the kernels do
    if n < kernels.PARALLEL_MIN:
        numba.set_num_threads(1)  # the loops on as many threads as the kernel runs on
    counts = {}
    for name, step in cases.items():
        step()  # compiles
        start = time.perf_counter()
        step()
        counts[name] = max(1, int(args.min_time / max(time.perf_counter() - start, 1e-7)))
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(args.rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            for _ in range(counts[name]):
                cases[name]()
            times[name].append((time.perf_counter() - start) / counts[name])
    info = bench.machine(numba.get_num_threads())
    print(
        f"ADADELTA step, {n:.0e} float32 elements; median of {args.rounds} rounds\n"
        f"{bench._machine_line(info)}"
    )
    print("\n| what | time per step |\n|---|---|")
    for name in names:
        print(f"| {name} | {statistics.median(times[name]) * 1e6:.1f} us |")
    print(
        "\n| ratio | largest error of a step (ulps) | step for g = 3e19 (E[g^2] = inf) "
        "| step for g = 1e-30, eps = 1e-40 |\n|---|---|---|---|"
    )
    print("\n".join(accuracy()))
    print("(the exact values of the last two columns: 0 and -1e-30)")
    command = " ".join(["python benchmarks/adadelta_ratio.py", *sys.argv[1:]])
    print(f"\ncommand: `{command}`")


if __name__ == "__main__":
    main()
