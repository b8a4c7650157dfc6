"""The GPU kernel of adadelta.torch (Triton), run on the CPU by Triton's interpreter
(``TRITON_INTERPRET=1``, CPU tensors) against ``torch.optim.Adadelta``: directly, and through
the optimizer with the CPU routed to it. (On a GPU the same kernel is compiled.)"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("triton")

import torch

from adadelta.torch import Adadelta, triton_kernel
from adadelta.torch import cpu as torch_cpu
from adadelta.torch import gpu as torch_gpu

# Triton decides when it decorates the kernel (at import) whether to interpret it: the module
# is imported again with TRITON_INTERPRET=1 if something imported it before (the setting is
# then put back, so that nothing else in this process is interpreted).
if type(triton_kernel._adadelta_kernel).__name__ != "InterpretedFunction":
    _before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        importlib.reload(triton_kernel)
    finally:
        if _before is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = _before


def test_the_kernel_is_interpreted() -> None:
    assert type(triton_kernel._adadelta_kernel).__name__ == "InterpretedFunction"


SHAPES = [(33, 37), (5,), (), (1500,)]  # blocks partly filled, one of several blocks


def make(dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """float64 and float32: to rounding (PyTorch fuses some multiply-adds)."""
    if dtype in (torch.float64, torch.complex128):
        return {"rtol": 1e-12, "atol": 1e-14}
    return {"rtol": 1e-5, "atol": 1e-6}


def assert_close_to(
    ours: torch.Tensor, theirs: torch.Tensor, exact: torch.Tensor | None = None
) -> None:
    """float32/float64: ``ours`` is ``theirs`` to rounding. bfloat16/float16: ``ours`` is no
    further from ``exact`` (the same steps in float64) than PyTorch's result ``theirs`` is, to
    within an ulp of the largest value: PyTorch rounds to 16 bits after each operation of the
    step, the kernel once per stored value, so the two differ by more than a few ulps where a
    result is much smaller than the values it came from."""
    if exact is None:
        torch.testing.assert_close(ours, theirs, **tolerance(ours.dtype))
        return
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    ours_error = (ours.double() - exact).abs().max().item()
    theirs_error = (theirs.double() - exact).abs().max().item()
    ulp = torch.finfo(ours.dtype).eps * exact.abs().max().item()
    assert ours_error <= max(theirs_error, ulp), (ours_error, theirs_error)


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.bfloat16, torch.float16, torch.complex64, torch.float64]
)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.5, "weight_decay": 0.1},
        {"lr": torch.tensor(0.25), "maximize": True, "rho": 0.5, "eps": 1e-3},
    ],
    ids=["weight_decay", "tensor-lr-maximize"],
)
def test_kernel_steps_like_torch(dtype: torch.dtype, kwargs: dict[str, object]) -> None:
    ours, theirs = make(dtype), make(dtype)
    reference = torch.optim.Adadelta(theirs, **kwargs)  # type: ignore[arg-type]
    half = dtype in (torch.bfloat16, torch.float16)
    exact = [p.double() for p in theirs] if half else []
    exact_reference = torch.optim.Adadelta(exact, **kwargs) if half else None  # type: ignore[arg-type]
    square_avgs = [torch.zeros_like(p) for p in ours]
    acc_deltas = [torch.zeros_like(p) for p in ours]
    hyper = {"rho": 0.9, "eps": 1e-6, "weight_decay": 0.0, "maximize": False, **kwargs}
    for step in range(3):
        grads = make(dtype, seed=10 + step)
        for p, q, g in zip(theirs, exact or theirs, grads, strict=True):
            p.grad, q.grad = g.clone(), g.double() if half else g.clone()
        reference.step()
        if exact_reference is not None:
            exact_reference.step()
        triton_kernel.step(ours, grads, square_avgs, acc_deltas, **hyper)  # type: ignore[arg-type]
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_close_to(a, b, exact[i] if half else None)
    for i, (a, v, u) in enumerate(zip(theirs, square_avgs, acc_deltas, strict=True)):
        state = reference.state[a]
        exact_state = exact_reference.state[exact[i]] if exact_reference is not None else {}
        assert_close_to(v, state["square_avg"], exact_state.get("square_avg"))
        assert_close_to(u, state["acc_delta"], exact_state.get("acc_delta"))


def test_kernel_takes_the_grad_scalers_scale_and_inf_flag() -> None:
    ours, theirs = make(torch.float32), make(torch.float32)
    reference = torch.optim.Adadelta(theirs)
    v = [torch.zeros_like(p) for p in ours]
    u = [torch.zeros_like(p) for p in ours]
    before = [p.clone() for p in ours]
    grads = make(torch.float32, seed=3)
    hyper = {"lr": 1.0, "rho": 0.9, "eps": 1e-6, "weight_decay": 0.0, "maximize": False}
    # an inf found: nothing is written
    triton_kernel.step(ours, grads, v, u, **hyper, found_inf=torch.ones(()))  # type: ignore[arg-type]
    for a, b in zip(ours, before, strict=True):
        assert torch.equal(a, b)
    assert all(not t.any() for t in v + u)
    # scaled gradients: divided by the scale first
    scaled = [g * 1024 for g in grads]
    scale = torch.full((), 1024.0)
    triton_kernel.step(ours, scaled, v, u, **hyper, grad_scale=scale, found_inf=torch.zeros(()))  # type: ignore[arg-type]
    for p, g in zip(theirs, grads, strict=True):
        p.grad = g
    reference.step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.fixture
def cpu_to_triton(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The optimizer sends CPU tensors to the Triton kernel (its CPU kernels off); the list
    collects the number of tensors of each launch."""
    launches: list[int] = []
    original = triton_kernel.step

    def counting(params: list[torch.Tensor], *args: object, **kwargs: object) -> None:
        launches.append(len(params))
        original(params, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch_gpu, "_TRITON_DEVICES", ("cpu",))
    monkeypatch.setattr(torch_cpu, "_fused_kernel", lambda: None)
    monkeypatch.setattr(triton_kernel, "step", counting)
    return launches


def test_optimizer_launches_once_per_dtype(cpu_to_triton: list[int]) -> None:
    params = make(torch.float32) + make(torch.bfloat16)
    twins = [p.clone() for p in params]
    ours = Adadelta([p.requires_grad_() for p in params], lr=torch.tensor(0.5), weight_decay=0.1)
    theirs = torch.optim.Adadelta(
        [p.requires_grad_() for p in twins], lr=torch.tensor(0.5), weight_decay=0.1
    )
    for step in range(2):
        grads = make(torch.float32, seed=20 + step) + make(torch.bfloat16, seed=20 + step)
        for p, q, g in zip(params, twins, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    assert cpu_to_triton == [len(SHAPES), len(SHAPES)] * 2  # float32 and bfloat16, each step
    for a, b in zip(params, twins, strict=True):
        if a.dtype == torch.float32:
            torch.testing.assert_close(a, b, **tolerance(a.dtype))
        else:  # rounded once per value, not per operation: a few bfloat16 ulps from PyTorch's
            torch.testing.assert_close(a, b, rtol=0.05, atol=1e-2)
        assert ours.state[a]["step"].item() == theirs.state[b]["step"].item() == 2


def test_foreach_and_fused_false_take_torchs_path(cpu_to_triton: list[int]) -> None:
    for kwargs in ({"foreach": True}, {"fused": False}):
        params = [p.requires_grad_() for p in make(torch.float32)]
        opt = Adadelta(params, **kwargs)  # type: ignore[arg-type]
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
    assert cpu_to_triton == []
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        Adadelta(params, fused=True, foreach=True)
    with pytest.raises(RuntimeError, match="`fused` does not support `differentiable`"):
        Adadelta(params, fused=True, differentiable=True)


def test_grad_scaler_hands_its_scale_to_the_kernel(cpu_to_triton: list[int]) -> None:
    """With every parameter on the kernel's device, the optimizer says it takes a grad
    scaler's scale and inf flag (as PyTorch's fused Adam does); a scaler step then skips on
    inf and unscales otherwise, without the scaler unscaling the gradients itself."""
    params = [p.requires_grad_() for p in make(torch.float32)]
    twins = [p.detach().clone().requires_grad_() for p in params]
    ours, theirs = Adadelta(params), torch.optim.Adadelta(twins)
    assert ours._step_supports_amp_scaling
    scaler = torch.amp.GradScaler("cpu", init_scale=256.0)
    scaler.scale(torch.ones(()))  # as scaler.scale(loss) would: makes the scale
    for step in range(3):
        grads = make(torch.float32, seed=30 + step)
        if step == 1:
            grads[0][0] = float("inf")
        for p, q, g in zip(params, twins, grads, strict=True):
            p.grad, q.grad = g * scaler.get_scale(), g.clone()
        scaler.step(ours)
        scaler.update()
        if step != 1:
            theirs.step()
    for a, b in zip(params, twins, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert ours.state[a]["step"].item() == theirs.state[b]["step"].item() == 2


# --- compact state: the Triton kernel gives the CPU kernel's bits ---

COMPACT_SHAPES = [(33, 37), (5,), (3000,), (1024,), (2, 2055)]  # rows and programs partly filled


def mixed(shape: tuple[int, ...], seed: int, dtype: torch.dtype) -> torch.Tensor:
    """Finite values spanning 20 decades inside each block (float8's subnormal codes; quotients
    out of float32's range with a tiny eps); 10 decades in float16."""
    gen = torch.Generator().manual_seed(seed)
    low, high = (-6, 4) if dtype == torch.float16 else (-15, 5)
    magnitude = 10 ** (torch.rand(shape, generator=gen, dtype=torch.float64) * (high - low) + low)
    return (torch.randn(shape, generator=gen, dtype=torch.float64) * magnitude).to(dtype)


def triton_compact_step(
    state_dtype: str, params: list[torch.Tensor], grads: list[torch.Tensor], states: list[dict],
    group: dict,
) -> None:  # fmt: skip
    """The Triton kernel's step of ``params``, with the keys and counts the optimizer keeps."""
    import numpy as np

    from adadelta.kernels import compact

    keys = torch.tensor(
        [compact.stream_key(s["seed"], int(s["step"])) for s in states], dtype=torch.int64
    )
    rho = group["rho"]
    row = [group["lr"], rho, 1 - rho, group["eps"], group["weight_decay"]]
    hyper = [float(v) for v in np.array(row, np.float32)]
    triton_kernel.compact_step(
        state_dtype, params, grads, states, keys, hyper, maximize=group["maximize"]
    )
    for s in states:
        s["step"] += 1


def huge_quotient(state: dict, state_dtype: str) -> None:  # type: ignore[type-arg]
    """E[dx^2] = 1e30 and E[g^2] = 0 in the first 4 elements: with a gradient of 1e-7 and eps
    = 1e-30, (E[dx^2] + eps) / (E[g^2] + eps) overflows float32, and the kernels take the
    rule's two roots for them."""
    state["square_avg"].view(-1)[:4] = 0
    if state_dtype == "bfloat16":
        state["acc_delta"].view(-1)[:4] = int(torch.tensor(1e30).view(torch.int32)) >> 16
    else:
        state["acc_delta_scale"][0] = 1e30 / 1.875
        state["acc_delta"].view(-1)[:4] = 255


# the flags with float32 parameters only: each flagged version of the CPU kernel for 16-bit
# parameters is a compilation of its own (half a minute each), and the Triton kernel's flags
# act on the float32 arithmetic, whatever the parameters' dtype
COMPACT_CASES = [
    *((dtype, {"eps": 1e-30}) for dtype in (torch.float32, torch.bfloat16, torch.float16)),
    (torch.float32, {"lr": 0.5, "rho": 0.5, "eps": 1e-3, "weight_decay": 0.1, "maximize": True}),
]


@pytest.mark.parametrize("state_dtype", ["bfloat16", "float8"])
@pytest.mark.parametrize(
    ("dtype", "kwargs"),
    COMPACT_CASES,
    ids=["tiny-eps-float32", "tiny-eps-bfloat16", "tiny-eps-float16", "weight-decay-maximize"],
)
def test_compact_kernel_gives_the_cpu_kernels_bits(
    state_dtype: str, dtype: torch.dtype, kwargs: dict[str, object]
) -> None:
    params = [mixed(s, i, dtype) for i, s in enumerate(COMPACT_SHAPES)]
    opt = Adadelta(params, state_dtype=state_dtype, min_compact_size=0, seed=11, **kwargs)  # type: ignore[arg-type]
    for step in range(4):
        grads = [mixed(s, 100 * step + i, dtype) for i, s in enumerate(COMPACT_SHAPES)]
        if step == 2:
            for p, g in zip(params, grads, strict=True):
                g.view(-1)[::3] = 0
                if kwargs.get("eps") == 1e-30:  # quotients beyond float32: the two roots
                    huge_quotient(opt.state[p], state_dtype)
                    g.view(-1)[:4] = 1e-7
        if step > 0:  # from the CPU kernel's state: the same step on copies, by Triton
            twins = [p.clone() for p in params]
            states = [{k: v.clone() if isinstance(v, torch.Tensor) else v
                       for k, v in opt.state[p].items()} for p in params]  # fmt: skip
            triton_compact_step(state_dtype, twins, grads, states, opt.param_groups[0])
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        if dtype != torch.float16:  # (one root: infinite steps; in float16 two overflow too)
            assert all(torch.isfinite(p).all() for p in params)
        if step > 0:
            for p, twin, state in zip(params, twins, states, strict=True):
                assert torch.equal(p.view(-1).view(torch.uint8), twin.view(-1).view(torch.uint8))
                for name, value in opt.state[p].items():
                    if isinstance(value, torch.Tensor):
                        assert torch.equal(value, state[name]), name
                    else:
                        assert value == state[name]


def counted(kernel: Any, launches: list[int]) -> Any:
    """``kernel`` (``compact_step``), appending the number of tensors of each launch."""

    def launch(*args: Any, **kwargs: Any) -> None:
        launches.append(len(args[1]))
        kernel(*args, **kwargs)

    return launch


@pytest.mark.parametrize("state_dtype", ["bfloat16", "float8"])
def test_optimizer_steps_compact_state_by_triton_with_the_cpu_bits(
    state_dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the optimizer: compact state on the CPU routed to the Triton kernel, against the
    CPU kernel; a state dict of the CPU's loaded half way (as a checkpoint moves between
    devices) continues with the same bits; small tensors keep float32 state (the float32
    kernel's)."""
    shapes = [(40, 130), (7,), (3000,)]  # the second below min_compact_size=64

    def make_params() -> list[torch.Tensor]:
        return [mixed(s, i, torch.float32).requires_grad_() for i, s in enumerate(shapes)]

    cpu_params, triton_params = make_params(), make_params()
    options = {"state_dtype": state_dtype, "min_compact_size": 64, "seed": 5, "eps": 1e-30}
    on_cpu = Adadelta(cpu_params, **options)  # type: ignore[arg-type]
    for step in range(4):
        grads = [mixed(s, 50 + 10 * step + i, torch.float32) for i, s in enumerate(shapes)]
        for p, g in zip(cpu_params, grads, strict=True):
            p.grad = g.clone()
        on_cpu.step()
        if step == 1:  # the CPU's state, loaded by an optimizer whose tensors go to Triton
            monkeypatch.setattr(torch_gpu, "_TRITON_DEVICES", ("cpu",))
            with torch.no_grad():
                for p, q in zip(triton_params, cpu_params, strict=True):
                    p.copy_(q)
            on_triton = Adadelta(triton_params, **options)  # type: ignore[arg-type]
            on_triton.load_state_dict(on_cpu.state_dict())
            monkeypatch.undo()
        elif step > 1:
            monkeypatch.setattr(torch_gpu, "_TRITON_DEVICES", ("cpu",))
            launches: list[int] = []
            monkeypatch.setattr(
                triton_kernel, "compact_step", counted(triton_kernel.compact_step, launches)
            )
            for p, g in zip(triton_params, grads, strict=True):
                p.grad = g.clone()
            on_triton.step()
            monkeypatch.undo()
            assert launches == [2]  # one launch for the two compact tensors
            for p, q in zip(triton_params, cpu_params, strict=True):
                state, expected = on_triton.state[p], on_cpu.state[q]
                if "seed" in state:
                    assert torch.equal(p, q)
                    for name in ("square_avg", "acc_delta", "step"):
                        assert torch.equal(state[name], expected[name]), name
                else:  # float32 state: the float32 kernels, to rounding
                    torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
                    assert state["square_avg"].dtype == torch.float32


def test_sharded_compact_state_by_triton_has_the_cpu_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    """DTensor parameters (a world of one) with compact state: their local shards routed to the
    Triton kernel step with the CPU kernel's bits, and a state dict saved by one loads into the
    other."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("a",))
        for fmt in ("bfloat16", "float8"):
            runs = {}
            launches: list[int] = []
            for routed in (False, True):
                if routed:
                    monkeypatch.setattr(torch_gpu, "_TRITON_DEVICES", ("cpu",))
                    monkeypatch.setattr(
                        triton_kernel, "compact_step", counted(triton_kernel.compact_step, launches)
                    )
                start = mixed((40, 70), 1, torch.float32)
                w = torch.nn.Parameter(distribute_tensor(start, mesh, [Shard(0)]))
                opt = Adadelta([w], state_dtype=fmt, min_compact_size=0, seed=2)
                for step in range(3):
                    w.grad = distribute_tensor(mixed((40, 70), 9 + step, torch.float32), mesh,
                                               [Shard(0)])  # fmt: skip
                    opt.step()
                runs[routed] = (w.detach().full_tensor(), opt.state_dict())
                monkeypatch.undo()
            (ours, saved), (theirs, expected) = runs[True], runs[False]
            assert launches == [1, 1, 1]
            assert torch.equal(ours, theirs)
            for name in ("square_avg", "acc_delta"):  # saved decoded, as float32 DTensors
                a, b = saved["state"][0][name], expected["state"][0][name]
                assert torch.equal(a.full_tensor(), b.full_tensor()), name
    finally:
        dist.destroy_process_group()
