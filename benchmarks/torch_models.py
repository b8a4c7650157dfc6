"""Step real models' parameter lists inside torch's loop: every state format of the drop-in
against ``torch.compile``d ``torch.optim.Adadelta``, its ``foreach`` step, and the float32
drop-in; bytes of state per parameter under the precision policy; peak memory of a GPT-2-small
step with each state format.

The parameter lists are built from the architectures, with no weights (``model_shapes``):
ResNet-50 (161 tensors, 25.6M parameters), GPT-2 small (148 tensors, 124.4M; tied output
embedding) and MobileNetV2 (158 tensors, 3.5M: many small tensors). All optimizers step the
same parameters and gradients (each keeps its own state), taking turns, one step each per
round; before each timed step a batch of 100 of the paper's network (784-500-300-10, PyTorch's
``nn.Linear`` layers) runs forward and backward, as a training loop would between two steps.
The table gives each one's median step and the drop-in's speed-up against compiled torch.

    python benchmarks/torch_models.py                     # every model, 10 rounds
    python benchmarks/torch_models.py --models resnet50 --rounds 20
    python benchmarks/torch_models.py --memory-only       # bytes per parameter, peak memory

Peak memory: for each state format a fresh process builds GPT-2 small's parameters and
gradients, steps twice, and reports its peak resident set (``VmHWM``) and that of the
parameters and gradients alone; the difference is what the optimizer's state and step cost.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as benchmarks/torch_step.py, and why

import torch

from adadelta.torch import Adadelta

Shapes = list[tuple[int, ...]]
Step = Callable[[], object]


def _bn(c: int) -> Shapes:
    return [(c,), (c,)]


def resnet50() -> Shapes:
    """ResNet-50's parameters (torchvision's layout): 161 tensors, 25,557,032 parameters."""
    shapes: Shapes = [(64, 3, 7, 7), *_bn(64)]
    inplanes = 64
    for width, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True):
        for b in range(blocks):
            shapes += [(width, inplanes, 1, 1), *_bn(width), (width, width, 3, 3), *_bn(width)]
            shapes += [(4 * width, width, 1, 1), *_bn(4 * width)]
            if b == 0:
                shapes += [(4 * width, inplanes, 1, 1), *_bn(4 * width)]
            inplanes = 4 * width
    return [*shapes, (1000, 2048), (1000,)]


def gpt2_small() -> Shapes:
    """GPT-2 small's parameters (Hugging Face's layout, output tied to the token embedding):
    148 tensors, 124,439,808 parameters."""
    d = 768
    shapes: Shapes = [(50257, d), (1024, d)]
    for _ in range(12):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,)]
        shapes += [(d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    return [*shapes, (d,), (d,)]


def mobilenet_v2() -> Shapes:
    """MobileNetV2's parameters (torchvision's layout): 158 tensors, 3,504,872 parameters."""
    shapes: Shapes = [(32, 3, 3, 3), *_bn(32)]
    inp = 32
    for t, c, n, _ in [
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
        (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ]:  # fmt: skip
        for _ in range(n):
            hidden = inp * t
            if t != 1:
                shapes += [(hidden, inp, 1, 1), *_bn(hidden)]
            shapes += [(hidden, 1, 3, 3), *_bn(hidden), (c, hidden, 1, 1), *_bn(c)]
            inp = c
    return [*shapes, (1280, 320, 1, 1), *_bn(1280), (1000, 1280), (1000,)]


MODELS = {"resnet50": resnet50, "gpt2": gpt2_small, "mobilenet_v2": mobilenet_v2}
FORMATS: list[str | None] = [None, "bfloat16", "float8"]
COMPILED, FOREACH = "torch.compile", "torch foreach"


def _name(fmt: str | None) -> str:
    return f"adadelta.torch {fmt or 'float32'} state"


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer's state tensors (step counters included)."""
    return sum(
        t.numel() * t.element_size()
        for s in opt.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor)
    )


def paper_network() -> Step:
    """One forward and backward pass of the paper's network on a batch of 100."""
    gen = torch.Generator().manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 500), torch.nn.Tanh(), torch.nn.Linear(500, 300), torch.nn.Tanh(),
        torch.nn.Linear(300, 10),
    )  # fmt: skip
    x, y = torch.randn(100, 784, generator=gen), torch.randint(0, 10, (100,), generator=gen)

    def forward_backward() -> None:
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()  # type: ignore[no-untyped-call]

    return forward_backward


def make_peers(shapes: Shapes) -> tuple[dict[str, Step], dict[str, torch.optim.Optimizer]]:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    opts: dict[str, torch.optim.Optimizer] = {
        FOREACH: torch.optim.Adadelta(params, foreach=True),
        COMPILED: torch.optim.Adadelta(params, foreach=False),
        **{_name(fmt): Adadelta(params, state_dtype=fmt) for fmt in FORMATS},
    }
    steps: dict[str, Step] = {name: opt.step for name, opt in opts.items()}
    steps[COMPILED] = torch.compile(opts[COMPILED].step, dynamic=False)
    return steps, opts


def time_model(shapes: Shapes, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median step times (s) and bytes of state per parameter, by optimizer."""
    steps, opts = make_peers(shapes)
    between = paper_network()
    for step in steps.values():
        for _ in range(2):  # state created, compiled
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            between()
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    n = sum(p.numel() for p in opts[FOREACH].param_groups[0]["params"])
    per_param = {name: state_bytes(opt) / n for name, opt in opts.items()}
    return {name: statistics.median(ts) for name, ts in times.items()}, per_param


def peak_memory(fmt: str | None) -> tuple[float, float]:
    """In this process: GPT-2 small's parameters and gradients, then two steps with ``fmt``
    state; the peak resident set (GB) after the tensors and after the steps."""
    params = [torch.zeros(s, requires_grad=True) for s in gpt2_small()]
    for p in params:
        p.grad = torch.full(p.shape, 1e-3)
    before = _peak_rss()
    opt = Adadelta(params, state_dtype=fmt)
    for _ in range(2):
        opt.step()
    return before, _peak_rss()


def _peak_rss() -> float:
    """This process's peak resident set in GB (``VmHWM``: unlike ``ru_maxrss``, not inherited
    from the parent that forked it)."""
    with open("/proc/self/status") as f:
        kilobytes = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kilobytes * 1024 / 1e9


def memory_table() -> list[str]:
    rows = [
        "| GPT-2 small step | peak RSS, parameters + gradients (GB) | peak RSS after 2 steps "
        "(GB) | optimizer's share (GB) | vs float32 state (GB) |",
        "|---|---|---|---|---|",
    ]
    base = None
    for fmt in FORMATS:
        out = subprocess.run(
            [sys.executable, __file__, "--peak", str(fmt)],
            check=True, capture_output=True, text=True, env={**os.environ},
        ).stdout.split()  # fmt: skip
        before, after = float(out[0]), float(out[1])
        base = after if base is None else base
        rows.append(
            f"| {fmt or 'float32'} state | {before:.2f} | {after:.2f} | {after - before:.2f} "
            f"| {after - base:+.2f} |"
        )
        print(rows[-1], flush=True)
    return rows


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, load average {load} (1, 5, 15 min) at the end, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--rounds", type=int, default=10, help="steps timed per optimizer")
    parser.add_argument("--memory-only", action="store_true", help="only the memory table")
    parser.add_argument("--peak", help=argparse.SUPPRESS)  # a child of the memory table
    args = parser.parse_args(argv)
    if args.peak is not None:
        before, after = peak_memory(None if args.peak == "None" else args.peak)
        print(before, after)
        return
    names = [FOREACH, COMPILED, *map(_name, FORMATS)]
    rows = [
        "| model (tensors, parameters) | " + " | ".join(f"{n} (ms)" for n in names) + " | "
        + " | ".join(f"{_name(f)} vs {COMPILED}" for f in FORMATS) + " |",
        "|---" * (len(names) + len(FORMATS) + 1) + "|",
    ]  # fmt: skip
    bytes_rows = ["| model | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    if not args.memory_only:
        for model in args.models:
            shapes = MODELS[model]()
            n = sum(torch.Size(s).numel() for s in shapes)
            medians, per_param = time_model(shapes, args.rounds)
            cells = " | ".join(f"{1e3 * medians[name]:.2f}" for name in names)
            ratios = " | ".join(f"{medians[COMPILED] / medians[_name(f)]:.2f}x" for f in FORMATS)
            rows.append(f"| {model} ({len(shapes)}, {n / 1e6:.1f}M) | {cells} | {ratios} |")
            print(rows[-1], flush=True)
            bytes_cells = " | ".join(f"{per_param[name]:.2f}" for name in names)
            bytes_rows.append(f"| {model} | {bytes_cells} |")
    memory = memory_table()
    print(f"\nMachine: {machine()}\n")
    if not args.memory_only:
        print("\n".join(rows))
        print(
            f"\nMedian of {args.rounds} interleaved steps each, after a forward and backward "
            "pass of the paper's network; ratio = compiled torch's time / the drop-in's "
            "(> 1: the drop-in is faster). Policy: the defaults (min_compact_size=4096).\n"
        )
        print("Bytes of optimizer state per parameter (step counters included):\n")
        print("\n".join(bytes_rows))
        print()
    print("\n".join(memory))


if __name__ == "__main__":
    main()
