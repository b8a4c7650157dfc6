"""Time one optimizer step of adadelta.torch.Adadelta against torch.optim.Adadelta on the CPU.

Two layouts of the same number of float32 parameters (default 1e7): one tensor, and 200 tensors
of varied sizes. The optimizers take turns, one step each per round (so drifts in the machine's
load hit all of them alike), and the table shows each one's median step time and the ratio to
``torch.optim.Adadelta(foreach=True)``.

    python benchmarks/torch_step.py                   # 1e7 parameters, 30 rounds
    python benchmarks/torch_step.py --n 1000000 --rounds 50
    OMP_WAIT_POLICY=ACTIVE python benchmarks/torch_step.py   # spinning threads, for comparison

PyTorch and Numba each run their own OpenMP threads, which by default spin for a while after a
parallel loop and take the cores from whichever implementation runs next (here, on 2 cores, that
slowed PyTorch's step several times over, which would flatter the speed-up). So this sets
``OMP_WAIT_POLICY=PASSIVE`` unless it is already set; the machine line records the setting.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

# before any OpenMP runtime starts (both read it once, when they start)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba
import torch

from adadelta.torch import Adadelta

Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]

OPTIMIZERS: dict[str, Factory] = {
    "torch foreach=True": lambda ps: torch.optim.Adadelta(ps, foreach=True),
    "torch foreach=False": lambda ps: torch.optim.Adadelta(ps, foreach=False),
    "adadelta.torch": lambda ps: Adadelta(ps),
}
BASELINE = "torch foreach=True"


def layout_sizes(n: int, tensors: int) -> list[int]:
    """``tensors`` sizes summing to ``n``, from small (biases) to large (weight matrices)."""
    weights = [1 + (k * 37) % 97 for k in range(tensors)]
    sizes = [n * w // sum(weights) for w in weights]
    sizes[-1] += n - sum(sizes)
    return sizes


def median_step_times(sizes: list[int], rounds: int) -> dict[str, float]:
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(s, generator=gen) for s in sizes]  # shared: no optimizer writes them
    optimizers = {}
    for name, make in OPTIMIZERS.items():
        params = [torch.randn(s, generator=gen).requires_grad_() for s in sizes]
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        optimizers[name] = make(params)
        for _ in range(2):  # create the state, compile the kernels
            optimizers[name].step()
    times: dict[str, list[float]] = {name: [] for name in optimizers}
    for _ in range(rounds):
        for name, opt in optimizers.items():
            start = time.perf_counter()
            opt.step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    layer = numba.threading_layer()  # type: ignore[attr-defined]  # (after a parallel loop ran)
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), numba {numba.__version__} "
        f"({numba.get_num_threads()} threads, {layer} layer), "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
        f"Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="parameters in all (1e7)")
    parser.add_argument("--tensors", type=int, default=200, help="tensors in layout 2 (200)")
    parser.add_argument("--rounds", type=int, default=30, help="steps timed per optimizer")
    args = parser.parse_args(argv)
    if args.n < args.tensors or args.tensors < 1 or args.rounds < 1:
        parser.error("need --n >= --tensors >= 1 and --rounds >= 1")

    names = list(OPTIMIZERS)
    rows = [
        "| float32 parameters | " + " | ".join(f"{n} (ms)" for n in names) + " | speed-up |",
        "|---" * (len(names) + 2) + "|",
    ]
    for label, sizes in [
        (f"1 tensor of {args.n:.0e}", [args.n]),
        (f"{args.tensors} tensors, {args.n:.0e} in all", layout_sizes(args.n, args.tensors)),
    ]:
        medians = median_step_times(sizes, args.rounds)
        cells = " | ".join(f"{1e3 * medians[n]:.2f}" for n in names)
        ratio = medians[BASELINE] / medians["adadelta.torch"]
        rows.append(f"| {label} | {cells} | {ratio:.2f}x |")
    print(f"Machine: {machine()}\n")
    print("\n".join(rows))
    print(f"\nMedian of {args.rounds} interleaved steps; speed-up = {BASELINE} / adadelta.torch.")


if __name__ == "__main__":
    main()
