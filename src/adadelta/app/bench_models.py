"""Real models' parameter lists inside torch's loop (``adadelta bench models``): the shapes, the
timing of one step per optimizer, bytes of state per parameter, peak memory of a GPT-2 step.

The parameter lists are built from the architectures, with no weights: ResNet-50 (161 tensors,
25,557,032 parameters), GPT-2 small (148 tensors, 124,439,808; output tied to the token
embedding) and MobileNetV2 (158 tensors, 3,504,872: many small tensors). The shapes are plain
Python; PyTorch (the ``torch`` extra) is imported only by the functions that step them, which
:mod:`adadelta.app.bench` runs in a process of their own.

All optimizers step the same parameters and gradients (each keeps its own state), taking turns,
one step each per round: every state format of :class:`adadelta.torch.Adadelta`, and
``torch.optim.Adadelta`` compiled (``torch.compile`` of its for-loop step) and eager
(``foreach``). Before each timed step a batch of 100 of the paper's network (784-500-300-10,
PyTorch's ``nn.Linear`` layers) runs forward and backward, as a training loop would between
two steps.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

Shapes = list[tuple[int, ...]]
Step = Callable[[], object]


def _bn(c: int) -> Shapes:
    return [(c,), (c,)]


def resnet50() -> Shapes:
    """ResNet-50's parameters (torchvision's ``resnet50``: convolutions without biases, each
    followed by a batch norm's weight and bias; bottleneck blocks [3, 4, 6, 3]).

    >>> import math
    >>> shapes = resnet50()
    >>> len(shapes), sum(math.prod(s) for s in shapes)
    (161, 25557032)
    """
    shapes: Shapes = [(64, 3, 7, 7), *_bn(64)]
    inplanes = 64
    for width, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True):
        for b in range(blocks):
            shapes += [(width, inplanes, 1, 1), *_bn(width), (width, width, 3, 3), *_bn(width)]
            shapes += [(4 * width, width, 1, 1), *_bn(4 * width)]
            if b == 0:  # the projection of the shortcut
                shapes += [(4 * width, inplanes, 1, 1), *_bn(4 * width)]
            inplanes = 4 * width
    return [*shapes, (1000, 2048), (1000,)]


def gpt2_small() -> Shapes:
    """GPT-2 small's parameters (Hugging Face's ``GPT2LMHeadModel``, the output layer tied to
    the token embedding): 12 blocks of width 768, 50257 tokens, 1024 positions.

    >>> import math
    >>> shapes = gpt2_small()
    >>> len(shapes), sum(math.prod(s) for s in shapes)
    (148, 124439808)
    """
    d = 768
    shapes: Shapes = [(50257, d), (1024, d)]
    for _ in range(12):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,)]  # ln_1, attention
        shapes += [(d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]  # ln_2, MLP
    return [*shapes, (d,), (d,)]


def mobilenet_v2() -> Shapes:
    """MobileNetV2's parameters (torchvision's ``mobilenet_v2``: inverted residual blocks of
    depthwise convolutions, each convolution followed by a batch norm).

    >>> import math
    >>> shapes = mobilenet_v2()
    >>> len(shapes), sum(math.prod(s) for s in shapes)
    (158, 3504872)
    """
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


MODELS: dict[str, Callable[[], Shapes]] = {
    "resnet50": resnet50,
    "gpt2": gpt2_small,
    "mobilenet_v2": mobilenet_v2,
}
TITLES = {"resnet50": "ResNet-50", "gpt2": "GPT-2 small", "mobilenet_v2": "MobileNetV2"}
FORMATS: tuple[str, ...] = ("float32", "bfloat16", "float8")  # the drop-in's state formats
COMPILED, FOREACH = "torch.compile", "torch foreach"


def dropin(state_format: str) -> str:
    """The name of the drop-in with state in ``state_format``, as the tables write it."""
    return f"adadelta.torch {state_format} state"


OPTIMIZERS = (FOREACH, COMPILED, *map(dropin, FORMATS))


@dataclass(frozen=True)
class ModelTiming:
    """One model's measurements: seconds of each timed step, and bytes of optimizer state per
    parameter (step counters included), by optimizer (:data:`OPTIMIZERS`)."""

    times_s: dict[str, list[float]]
    state_bytes_per_parameter: dict[str, float]

    @property
    def median_s(self) -> dict[str, float]:
        return {name: statistics.median(t) for name, t in self.times_s.items()}

    def ratio(self, state_format: str) -> float:
        """Compiled torch's median step over the drop-in's (> 1: the drop-in is faster)."""
        median = self.median_s
        return median[COMPILED] / median[dropin(state_format)]


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer's state tensors (step counters included)."""
    import torch

    return sum(
        t.numel() * t.element_size()
        for s in opt.state.values()
        for t in s.values()
        if isinstance(t, torch.Tensor)
    )


def paper_network(device: str = "cpu") -> Step:
    """One forward and backward pass of the paper's network on a batch of 100, on ``device``."""
    import torch

    gen = torch.Generator().manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Linear(784, 500), torch.nn.Tanh(), torch.nn.Linear(500, 300), torch.nn.Tanh(),
        torch.nn.Linear(300, 10),
    ).to(device)  # fmt: skip
    x = torch.randn(100, 784, generator=gen).to(device)
    y = torch.randint(0, 10, (100,), generator=gen).to(device)

    def forward_backward() -> None:
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()  # type: ignore[no-untyped-call]

    return forward_backward


def make_peers(
    shapes: Shapes, backend: str = "inductor", device: str = "cpu"
) -> tuple[dict[str, Step], dict[str, torch.optim.Optimizer]]:
    """Every optimizer of :data:`OPTIMIZERS` over the same parameters on ``device`` (seeded
    normal values, gradients 1e-2 times as large): their steps, ``torch.compile``'s with
    ``backend``, and the optimizers."""
    import torch

    from adadelta.torch import Adadelta

    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).to(device).requires_grad_() for s in shapes]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen) * 1e-2).to(device)
    opts: dict[str, torch.optim.Optimizer] = {
        FOREACH: torch.optim.Adadelta(params, foreach=True),
        COMPILED: torch.optim.Adadelta(params, foreach=False),
        **{
            dropin(fmt): Adadelta(params, state_dtype=None if fmt == "float32" else fmt)
            for fmt in FORMATS
        },
    }
    steps: dict[str, Step] = {name: opt.step for name, opt in opts.items()}
    steps[COMPILED] = torch.compile(opts[COMPILED].step, dynamic=False, backend=backend)
    return steps, opts


def time_model(
    model: str, rounds: int, backend: str = "inductor", device: str = "cpu"
) -> ModelTiming:
    """``rounds`` timed steps of every optimizer on ``model``'s parameters (:data:`MODELS`) on
    ``device``, taking turns, each after a forward and backward pass of :func:`paper_network`
    (not timed); two untimed steps each first (the state created, the compiled step compiled).
    On a GPU the device is synchronized before and after each timed step."""
    import torch

    shapes = MODELS[model]()
    steps, opts = make_peers(shapes, backend, device)
    between = paper_network(device)
    sync: Step = torch.cuda.synchronize if device == "cuda" else lambda: None
    for step in steps.values():
        for _ in range(2):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            between()
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    n = sum(p.numel() for p in opts[FOREACH].param_groups[0]["params"])
    per_parameter = {name: state_bytes(opt) / n for name, opt in opts.items()}
    return ModelTiming(times, per_parameter)


def peak_memory(state_format: str, device: str = "cpu") -> tuple[float, float]:
    """In this process: GPT-2 small's parameters and gradients on ``device``, then two steps of
    the drop-in with state in ``state_format``; the peak memory (GB) after the tensors and after
    the steps: the resident set on the CPU, the memory PyTorch allocated on a GPU. Run it in a
    fresh process: the peak is the process's."""
    import torch

    from adadelta.torch import Adadelta

    params = [torch.zeros(s, requires_grad=True, device=device) for s in gpt2_small()]
    for p in params:
        p.grad = torch.full(p.shape, 1e-3, device=device)

    def peak() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 1e9
        return peak_rss()

    before = peak()
    opt = Adadelta(params, state_dtype=None if state_format == "float32" else state_format)
    for _ in range(2):
        opt.step()
    return before, peak()


def peak_rss() -> float:
    """This process's peak resident set in GB (``VmHWM`` of ``/proc/self/status``: unlike
    ``ru_maxrss``, not inherited from the parent that forked it)."""
    with open("/proc/self/status", encoding="utf-8") as f:
        kilobytes = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kilobytes * 1024 / 1e9
