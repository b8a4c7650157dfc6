"""Speed and memory of ADADELTA's compact state: one step of 1e7 float32 parameters, between the
matrix products of a training step, against float32 state and ``torch.compile``d PyTorch; for
``adadelta.Adadelta`` (which checks the gradients for NaN and infinity first, unless
``check_finite=False``) and for the PyTorch drop-in ``adadelta.torch.Adadelta`` (which, like
``torch.optim.Adadelta``, does not).

Each round runs, for every optimizer in turn, the matrix products of a forward and backward pass
(1024 x 2048 by 2048 x 2048: 48 MB of operands, which evict the optimizer's arrays from the
caches as training does) and then times one optimizer step alone. The table shows each one's
median step time over the rounds, its state's bytes per parameter, and the ratios.

    python benchmarks/compact_speed.py                   # 1e7 parameters, 30 rounds
    python benchmarks/compact_speed.py --n 1000000 --rounds 50
    python benchmarks/compact_speed.py --busy             # with a competing CPU-bound process

NumPy asks Linux for transparent huge pages for its large arrays; PyTorch's allocator does so
only with ``THP_MEM_ALLOC_ENABLE=1`` in the environment (``THP_MEM_ALLOC_ENABLE=1 python
benchmarks/compact_speed.py`` gives every tensor huge pages too).

PyTorch and Numba each run their own OpenMP threads; this sets ``OMP_WAIT_POLICY=PASSIVE``
unless it is set, so that neither's spinning threads take the cores from the other (see
``benchmarks/torch_step.py``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before any OpenMP runtime starts

import numba
import numpy as np
import torch

import adadelta.torch
from adadelta import Adadelta
from adadelta.app import bench

Step = Callable[[], None]


def ours(n: int, state_dtype: str | None, check_finite: bool = True) -> tuple[Step, float]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    opt = Adadelta(x, state_dtype=state_dtype, check_finite=check_finite)
    opt.step(g)  # compiles, creates the state
    state_bytes = sum(v.nbytes for v in opt.state[0].values() if isinstance(v, np.ndarray))
    return (lambda: opt.step(g)), state_bytes / n


def drop_in(n: int, state_dtype: str | None) -> tuple[Step, float]:
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(n, generator=gen).requires_grad_()
    p.grad = torch.randn(n, generator=gen)
    opt = adadelta.torch.Adadelta([p], state_dtype=state_dtype)
    opt.step()  # compiles, creates the state
    state = opt.state[p]
    state_bytes = sum(v.nbytes for v in state.values() if isinstance(v, torch.Tensor) and v.ndim)
    return opt.step, state_bytes / n


def torch_adadelta(n: int, compiled: bool) -> tuple[Step, float]:
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(n, generator=gen).requires_grad_()
    p.grad = torch.randn(n, generator=gen)
    opt = torch.optim.Adadelta([p], foreach=True)
    step: Step = opt.step
    if compiled:
        step = torch.compile(opt.step)
    for _ in range(2):  # compiles, creates the state
        step()
    state = opt.state[p]
    state_bytes = sum(v.nbytes for v in state.values() if isinstance(v, torch.Tensor) and v.ndim)
    return step, state_bytes / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="parameters (1e7)")
    parser.add_argument("--rounds", type=int, default=30, help="steps timed per optimizer (30)")
    parser.add_argument(
        "--busy", action="store_true", help="time with one competing CPU-bound process running"
    )
    args = parser.parse_args(argv)

    makers: dict[str, Callable[[], tuple[Step, float]]] = {
        "float32 state": lambda: ours(args.n, None),
        "bfloat16 state": lambda: ours(args.n, "bfloat16"),
        "float8 state": lambda: ours(args.n, "float8"),
        "float32 state, unchecked": lambda: ours(args.n, None, check_finite=False),
        "bfloat16 state, unchecked": lambda: ours(args.n, "bfloat16", check_finite=False),
        "float8 state, unchecked": lambda: ours(args.n, "float8", check_finite=False),
        "adadelta.torch.Adadelta, float32 state": lambda: drop_in(args.n, None),
        "adadelta.torch.Adadelta, bfloat16 state": lambda: drop_in(args.n, "bfloat16"),
        "adadelta.torch.Adadelta, float8 state": lambda: drop_in(args.n, "float8"),
        "torch.compile(torch.optim.Adadelta)": lambda: torch_adadelta(args.n, compiled=True),
        "torch.optim.Adadelta(foreach=True)": lambda: torch_adadelta(args.n, compiled=False),
    }
    steps, state_bytes = {}, {}
    for name, make in makers.items():
        steps[name], state_bytes[name] = make()
    rng = np.random.default_rng(1)
    a = rng.standard_normal((1024, 2048), dtype=np.float32)
    w = rng.standard_normal((2048, 2048), dtype=np.float32)

    def training_products() -> Any:
        out = a @ w  # forward
        return a.T @ out, out @ w.T  # backward: the weight's and the input's gradients

    times: dict[str, list[float]] = {name: [] for name in steps}
    with bench.competitor(args.busy):
        for _ in range(args.rounds):
            for name, step in steps.items():
                training_products()
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    base, peer = median["float32 state"], median["torch.compile(torch.optim.Adadelta)"]
    print(
        f"ADADELTA step, {args.n:.0e} float32 parameters, between training matrix products"
        f"{', with a competing CPU-bound process' if args.busy else ''}; "
        f"median of {args.rounds} rounds\nmachine: {os.cpu_count()} CPUs, numba "
        f"{numba.__version__} ({numba.get_num_threads()} threads), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"THP_MEM_ALLOC_ENABLE={os.environ.get('THP_MEM_ALLOC_ENABLE', '(unset)')}\n"
    )
    print(
        "| optimizer | step (ms) | state bytes / parameter | float32 state / it | "
        "torch.compile / it |"
    )
    print("|---|---|---|---|---|")
    for name, t in median.items():
        print(
            f"| {name} | {1e3 * t:.2f} | {state_bytes[name]:.3f} | {base / t:.2f}x | "
            f"{peer / t:.2f}x |"
        )
    given = sys.argv[1:] if argv is None else argv
    print("\ncommand: " + " ".join(["python benchmarks/compact_speed.py", *given]))


if __name__ == "__main__":
    main()
