"""The cost of one element of a step of the drop-in's kernels on one thread, with the arrays in
the cache: float32, bfloat16 and float8 state (``adadelta.kernels.parallel.ELEMENT_COST`` holds
the ratios, which decide from how many elements a compact step runs on all threads).

Each kernel steps one tensor of ``--n`` elements (default 3e4 and 1e5: the arrays fit a core's
L2 cache), called directly (no Python around it but the call), on one Numba thread; the table
gives the best of 7 repeats of 100 calls, per element.

    python benchmarks/element_cost.py
"""

from __future__ import annotations

import argparse
import os
import timeit
from collections.abc import Callable

import numba
import torch

from adadelta.torch import Adadelta

FORMATS: list[str | None] = [None, "bfloat16", "float8"]


def kernel_call(n: int, state_dtype: str | None) -> Callable[[], object]:
    """The compiled call of a drop-in's step of one tensor of ``n`` elements (after 5 steps)."""
    p = torch.randn(n).requires_grad_()
    p.grad = torch.randn(n)
    opt = Adadelta([p], state_dtype=state_dtype)
    for _ in range(5):
        opt.step()
    plan = next(iter(opt._plans.values()))  # its tables hold addresses: opt is kept alive
    if plan.batches:
        batch = plan.batches[0][0]
        return lambda: (opt, batch.call(False))
    compact_batch, grads = plan.compact_batches[0][0], [p.grad]
    return lambda: (opt, compact_batch.step(grads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, nargs="+", default=[3e4, 1e5])
    args = parser.parse_args()
    numba.set_num_threads(1)
    print("| elements | " + " | ".join(f"{f or 'float32'} state (ns)" for f in FORMATS) + " |")
    print("|---" * (len(FORMATS) + 1) + "|")
    for n in map(int, args.n):
        cells = []
        for fmt in FORMATS:
            call = kernel_call(n, fmt)
            best = min(timeit.repeat(call, number=100, repeat=7)) / 100
            cells.append(f"{best / n * 1e9:.3f}")
        print(f"| {n:.0e} | " + " | ".join(cells) + " |", flush=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nOne thread; load average {load} (1, 5, 15 min) at the end.")


if __name__ == "__main__":
    main()
