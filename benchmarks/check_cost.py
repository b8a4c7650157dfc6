"""Two small timings of this branch's checks and kernels, one thread, median of 15 rounds of
20 steps: a float64 ADADELTA step (1e5 and 1e6 parameters, unchecked), and a checked compact
step of 200 tensors of 1000 float32 parameters (where per-tensor checks cost the most). Run it
on two checkouts to compare them:

    python benchmarks/check_cost.py
"""

from __future__ import annotations

import statistics
import time

import numba
import numpy as np

from adadelta import Adadelta


def median_time(opt: Adadelta, grads: object, rounds: int = 15, steps: int = 20) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            opt.step(grads)
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def main() -> None:
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    for n in (100_000, 1_000_000):
        x = rng.standard_normal(n)
        g = rng.standard_normal(n) * 1e-3
        opt = Adadelta(x, check_finite=False)
        opt.step(g)
        ns = median_time(opt, g) / n * 1e9
        print(f"float64, {n:.0e} parameters, one thread: {ns:.3f} ns / parameter")
    for fmt in ("bfloat16", "float8"):
        params = [rng.standard_normal(1000).astype(np.float32) for _ in range(200)]
        grads = [rng.standard_normal(1000).astype(np.float32) * np.float32(1e-3) for _ in params]
        opt = Adadelta(params, state_dtype=fmt)
        opt.step(grads)
        us = median_time(opt, grads) * 1e6
        print(f"{fmt} state, 200 tensors of 1000 float32, checked step, one thread: {us:.0f} us")


if __name__ == "__main__":
    main()
