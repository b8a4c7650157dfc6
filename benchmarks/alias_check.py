"""The cost of the kernel batch's gradient aliasing check (issue 12 review), back to back: one
float32 ADADELTA step with the check on and with it off (the batch's spans emptied), in one
process, alternating, median of 7 timings of REPS steps each.

Run from the repository root: PYTHONPATH=src python benchmarks/alias_check.py
"""

from __future__ import annotations

import os
import time

import numpy as np

from adadelta import Adadelta


def step_us(n_arrays: int, size: int, reps: int, check: bool) -> float:
    params = [np.zeros(size, np.float32) for _ in range(n_arrays)]
    grads = [np.full(size, 1e-3, np.float32) for _ in range(n_arrays)]
    opt = Adadelta(params)
    for _ in range(50):
        opt.step(grads)
    if not check:
        plan = opt._plan
        assert plan is not None and len(plan.batches) == 1
        batch = plan.batches[0].batch
        batch.span, batch.vectorized = (0, 0), None  # every gradient passes the first test
    times = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(reps):
            opt.step(grads)
        times.append((time.perf_counter() - start) / reps * 1e6)
    return float(np.median(times))


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| arrays x elements | checked | unchecked |")
    print("|---|---|---|")
    for n, size, reps in [(1, 100_000, 3000), (10, 10_000, 3000), (100, 1000, 2000)]:
        rounds = [(step_us(n, size, reps, True), step_us(n, size, reps, False)) for _ in range(2)]
        on = min(r[0] for r in rounds)
        off = min(r[1] for r in rounds)
        print(f"| {n} x {size} | {on:.1f} us | {off:.1f} us |")


if __name__ == "__main__":
    main()
