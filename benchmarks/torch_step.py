"""Time one optimizer step of adadelta.torch.Adadelta against torch.optim.Adadelta, eager and
under torch.compile, on the CPU or a CUDA GPU.

For each size (default 1e5 and 1e7 float32 parameters; on CUDA also 1e8) two layouts: one
tensor, and 200 tensors of varied sizes; then 200 tensors of 500 (``--small``: many biases and
norms, where a step's work per tensor is what counts). The peers, each with its own parameters
and the same gradients:

- ``torch foreach``: ``torch.optim.Adadelta(foreach=True)``, eager;
- ``torch.compile``: ``torch.optim.Adadelta`` whose ``step`` runs under
  ``torch.compile`` (PyTorch's documented way to fuse an optimizer step; backend inductor,
  static shapes: each layout compiled for its sizes);
- ``adadelta.torch``: the drop-in, as a user calls it (``opt.step()``), with float32 state,
  and with bfloat16 and float8 state (``state_dtype``, the default ``min_compact_size``; on a
  GPU the Triton kernels).

The optimizers take turns, one step each per round (so drifts in the machine's load hit all of
them alike), and before each timed step a matrix product runs, as a forward and backward pass
would between two steps (it takes the caches and, on the CPU, the cores). The table shows each
one's median step time, the drop-in's speed-up against the other two and, for the drop-in, the
memory bandwidth its float32-state step reaches (28 bytes per float32 element: reads x, g,
E[g^2], E[dx^2], writes x, E[g^2], E[dx^2]).

    python benchmarks/torch_step.py                            # CPU: 1e5 and 1e7
    python benchmarks/torch_step.py --n 1e5 --rounds 300
    python benchmarks/torch_step.py --device cuda              # 1e5, 1e7 and 1e8 on the GPU
    python benchmarks/torch_step.py --n 1e5 1e6 1e7 --busy     # beside a competing busy process
    OMP_WAIT_POLICY=ACTIVE python benchmarks/torch_step.py     # spinning threads, for comparison

On the CPU, PyTorch and Numba each run their own OpenMP threads, which by default spin for a
while after a parallel loop and take the cores from whichever implementation runs next (here,
on 2 cores, that slowed PyTorch's step several times over, which would flatter the speed-up).
So this sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is already set; the machine line records it.
The first compiled step of each layout compiles (inductor caches the code on disk, so a second
run starts sooner); it is not timed.
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

from adadelta.app.bench import competitor
from adadelta.torch import Adadelta

Step = Callable[[], object]
OURS, FOREACH, COMPILED = "adadelta.torch", "torch foreach", "torch.compile"
BF16, F8 = "adadelta.torch bfloat16 state", "adadelta.torch float8 state"
STATE_DTYPES = {OURS: None, BF16: "bfloat16", F8: "float8"}
BYTES_PER_ELEMENT = 28  # float32: 4 arrays read, 3 written


def layout_sizes(n: int, tensors: int) -> list[int]:
    """``tensors`` sizes summing to ``n``, from small (biases) to large (weight matrices)."""
    weights = [1 + (k * 37) % 97 for k in range(tensors)]
    sizes = [n * w // sum(weights) for w in weights]
    sizes[-1] += n - sum(sizes)
    return sizes


def make_steps(
    sizes: list[int], device: torch.device, backend: str
) -> tuple[dict[str, Step], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(s, generator=gen).to(device) for s in sizes]  # no optimizer writes them
    steps: dict[str, Step] = {}
    for name in (FOREACH, COMPILED, OURS, BF16, F8):
        params = [torch.randn(s, generator=gen).to(device).requires_grad_() for s in sizes]
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        if name in STATE_DTYPES:  # the drop-in's default policy (min_compact_size)
            steps[name] = Adadelta(params, state_dtype=STATE_DTYPES[name]).step
        elif name == FOREACH:
            steps[name] = torch.optim.Adadelta(params, foreach=True).step
        else:
            steps[name] = torch.compile(
                torch.optim.Adadelta(params).step, backend=backend, dynamic=False
            )
    return steps, grads


def median_step_times(
    sizes: list[int], rounds: int, device: torch.device, backend: str
) -> dict[str, float]:
    steps, _ = make_steps(sizes, device, backend)
    sync: Callable[[], None] = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    a = torch.randn(256, 256, device=device)  # the "forward and backward" between two steps
    for step in steps.values():
        for _ in range(3):  # create the state, compile
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            (a @ a).sum()
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
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
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--n", type=float, nargs="+", help="parameters in all (CPU: 1e5 1e7; CUDA: 1e5 1e7 1e8)"
    )
    parser.add_argument("--tensors", type=int, default=200, help="tensors in layout 2 (200)")
    parser.add_argument(
        "--rounds", type=int, help="steps timed per optimizer (300 below 1e6 parameters, else 30)"
    )
    parser.add_argument("--backend", default="inductor", help="torch.compile's (inductor)")
    parser.add_argument(
        "--small",
        type=int,
        default=500,
        help="elements of each of --tensors tensors in a last layout (500; 0: none)",
    )
    parser.add_argument(
        "--busy", action="store_true", help="with a competing busy process (a Python loop)"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    default_n = [1e5, 1e7, 1e8] if device.type == "cuda" else [1e5, 1e7]
    sizes_n = [int(n) for n in (args.n or default_n)]
    if min(sizes_n) < args.tensors or args.tensors < 1 or (args.rounds or 1) < 1:
        parser.error("need --n >= --tensors >= 1 and --rounds >= 1")

    ours = (OURS, BF16, F8)
    rows = [
        f"| float32 parameters | {FOREACH} (ms) | {COMPILED} (ms) | "
        + " | ".join(f"{name} (ms)" for name in ours)
        + " | "
        + " | ".join(f"{name} vs {COMPILED}" for name in ours)
        + f" | {OURS} vs {FOREACH} | {OURS} GB/s |",
        "|---" * 11 + "|",
    ]
    # each size's two layouts, then the small tensors
    layouts = [
        case
        for n in sizes_n
        for case in (
            (n, f"1 tensor of {n:.0e}", [n]),
            (n, f"{args.tensors} tensors, {n:.0e} in all", layout_sizes(n, args.tensors)),
        )
    ]
    if args.small > 0:
        small = [args.small] * args.tensors
        layouts.append((sum(small), f"{args.tensors} tensors of {args.small}", small))
    with competitor(args.busy):
        for n, label, sizes in layouts:
            rounds = args.rounds or (300 if n < 1_000_000 else 30)
            medians = median_step_times(sizes, rounds, device, args.backend)
            times = " | ".join(f"{1e3 * medians[name]:.3f}" for name in (FOREACH, COMPILED, *ours))
            ratios = " | ".join(f"{medians[COMPILED] / medians[name]:.2f}x" for name in ours)
            mine = medians[OURS]
            rows.append(
                f"| {label} | {times} | {ratios} | {medians[FOREACH] / mine:.2f}x "
                f"| {BYTES_PER_ELEMENT * n / mine / 1e9:.1f} |"
            )
            print(rows[-1], flush=True)
        load = os.getloadavg()
    print(f"\nMachine: {machine(device)}")
    print(
        f"Load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} (1, 5, 15 min); "
        f"{'with' if args.busy else 'without'} a competing busy process\n"
    )
    print("\n".join(rows))
    print(
        f"\nMedian of interleaved steps (300 rounds below 1e6 parameters, 30 above, unless "
        f"--rounds); speed-up = the peer's time / {OURS}'s; torch.compile backend: {args.backend}."
    )


if __name__ == "__main__":
    main()
