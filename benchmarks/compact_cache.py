"""The arithmetic of ADADELTA's compact state: one step of 1e5 float32 parameters (all arrays
in the caches), one thread, back to back, in nanoseconds per parameter; with stochastic rounding
and without it (rounding to nearest: no random bits to hash), against float32 state. What the
step costs beyond its memory traffic; ``benchmarks/compact_speed.py`` times it as in training.

    python benchmarks/compact_cache.py
    python benchmarks/compact_cache.py --n 20000 --rounds 2000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numba
import numpy as np

from adadelta import Adadelta


def stepper(n: int, state_dtype: str | None, stochastic: bool) -> Callable[[], None]:
    """One unchecked step of ``n`` parameters, compiled and with its state created."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32) * np.float32(1e-3)
    opt = Adadelta(x, state_dtype=state_dtype, check_finite=False)
    if opt._compact is not None:
        opt._compact.stochastic = stochastic  # the tests' hook: round to nearest
    opt.step(g)
    return lambda: opt.step(g)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="parameters (1e5)")
    parser.add_argument("--rounds", type=int, default=3000, help="steps timed per row (3000)")
    args = parser.parse_args(argv)
    numba.set_num_threads(1)
    rows = [
        ("float32 state", None, True),
        ("bfloat16 state", "bfloat16", True),
        ("bfloat16 state, rounded to nearest", "bfloat16", False),
        ("float8 state", "float8", True),
        ("float8 state, rounded to nearest", "float8", False),
    ]
    print(
        f"ADADELTA step, {args.n:.0e} float32 parameters in the caches, one thread, unchecked; "
        f"median of {args.rounds} steps\nmachine: {os.cpu_count()} CPUs, numba "
        f"{numba.__version__}\n"
    )
    print("| state | ns / parameter |")
    print("|---|---|")
    steps = {
        name: stepper(args.n, state_dtype, stochastic) for name, state_dtype, stochastic in rows
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(10):  # ten turns of the rows, so that a slow moment hits them all
        for name, step in steps.items():
            for _ in range(args.rounds // 10):  # back to back: the arrays stay in the caches
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    for name, ts in times.items():
        print(f"| {name} | {1e9 * statistics.median(ts) / args.n:.3f} |")
    given = sys.argv[1:] if argv is None else argv
    print("\ncommand: " + " ".join(["python benchmarks/compact_cache.py", *given]))


if __name__ == "__main__":
    main()
