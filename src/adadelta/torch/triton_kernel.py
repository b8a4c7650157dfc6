"""The fused ADADELTA step on the GPU: one Triton kernel launch for all tensors of a dtype.

Imported only when a CUDA tensor is stepped (or by the tests, which run it on the CPU with
Triton's interpreter, ``TRITON_INTERPRET=1``), so ``import adadelta.torch`` never loads Triton.

The launch reads a table of addresses (parameter, gradient, ``square_avg``, ``acc_delta`` of
each tensor, as PyTorch's fused optimizers and :mod:`adadelta.kernels` do on the CPU) and the
tensors' sizes; the grid is 2-D: tensor ``t`` by block ``b`` of :data:`BLOCK` elements, the
blocks past a tensor's end returning at once. The arithmetic is float32 whatever the storage
(float32, bfloat16, float16; complex tensors as their real views; float64 in float64), and it
is PyTorch's: RMS[dx]_{t-1} / RMS[g]_t as two square roots divided, so that it never leaves
the dtype's range where PyTorch's does not, each rounded to nearest as PyTorch's CUDA code
rounds them (``tl.sqrt_rn``, ``tl.div_rn``: Triton's plain ``sqrt`` and ``/`` approximate).

``lr`` may be a tensor (read by the kernel, no synchronisation); a grad scaler's ``grad_scale``
(the gradients are divided by it) and ``found_inf`` (a non-zero value skips the step, writing
nothing) are read by the kernel too, as by PyTorch's fused Adam.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

BLOCK = 1024  # elements per program

_ELEMENT = {
    torch.float32: tl.float32,
    torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16,
    torch.float64: tl.float64,
}


@triton.jit  # type: ignore[untyped-decorator]
def _narrow(x, ELEMENT: tl.constexpr):  # type: ignore[no-untyped-def]
    """``x`` (the compute dtype) as ``ELEMENT``, rounded to nearest even. For bfloat16 the
    rounding is spelled out on the float32 bits (Triton's interpreter truncates), after which
    the conversion is exact; NaN stays NaN."""
    if ELEMENT == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return tl.where(x != x, x, bits.to(tl.float32, bitcast=True)).to(tl.bfloat16)
    else:
        return x.to(ELEMENT)


@triton.jit  # type: ignore[untyped-decorator]
def _adadelta_kernel(  # type: ignore[no-untyped-def]
    table,  # int64 [4, tensors]: addresses of x, g, E[g^2], E[dx^2]
    sizes,  # int64 [tensors]: elements of each (complex: twice the complex count)
    tensors,
    lr_value,
    lr_pointer,
    rho,
    eps,
    weight_decay,
    scale_pointer,
    inf_pointer,
    ELEMENT: tl.constexpr,
    COMPUTE: tl.constexpr,
    LR_TENSOR: tl.constexpr,
    SCALED: tl.constexpr,
    CHECK_INF: tl.constexpr,
    MAXIMIZE: tl.constexpr,
    WEIGHT_DECAY: tl.constexpr,
    BLOCK: tl.constexpr,
):
    t = tl.program_id(0)
    start = tl.program_id(1).to(tl.int64) * BLOCK
    size = tl.load(sizes + t)
    if start >= size:
        return
    if CHECK_INF:
        if tl.load(inf_pointer) != 0:
            return
    pointer = tl.pointer_type(ELEMENT)
    x_ptr = tl.load(table + t).to(pointer)
    g_ptr = tl.load(table + tensors + t).to(pointer)
    v_ptr = tl.load(table + 2 * tensors + t).to(pointer)
    u_ptr = tl.load(table + 3 * tensors + t).to(pointer)
    offsets = start + tl.arange(0, BLOCK)
    mask = offsets < size
    x = tl.load(x_ptr + offsets, mask=mask).to(COMPUTE)
    g = tl.load(g_ptr + offsets, mask=mask).to(COMPUTE)
    v = tl.load(v_ptr + offsets, mask=mask).to(COMPUTE)
    u = tl.load(u_ptr + offsets, mask=mask).to(COMPUTE)
    if SCALED:
        g = g / tl.load(scale_pointer).to(COMPUTE)
    if MAXIMIZE:
        g = -g
    if WEIGHT_DECAY:
        g = g + weight_decay * x
    if LR_TENSOR:
        lr = tl.load(lr_pointer).to(COMPUTE)
    else:
        lr = lr_value
    v = rho * v + (1 - rho) * g * g
    if COMPUTE == tl.float32:  # IEEE-rounded root and quotient (tl.sqrt and / approximate)
        dx = tl.div_rn(tl.sqrt_rn(u + eps), tl.sqrt_rn(v + eps)) * g
    else:
        dx = tl.sqrt(u + eps) / tl.sqrt(v + eps) * g
    u = rho * u + (1 - rho) * dx * dx
    x = x - lr * dx
    tl.store(v_ptr + offsets, _narrow(v, ELEMENT), mask=mask)
    tl.store(u_ptr + offsets, _narrow(u, ELEMENT), mask=mask)
    tl.store(x_ptr + offsets, _narrow(x, ELEMENT), mask=mask)


# device tables of addresses and sizes, by (device, addresses, sizes); the oldest dropped first
_TABLES: dict[
    tuple[torch.device, tuple[int, ...], tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]
] = {}
_KEPT = 8


def _real(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def step(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    square_avgs: Sequence[torch.Tensor],
    acc_deltas: Sequence[torch.Tensor],
    *,
    lr: float | torch.Tensor,
    rho: float,
    eps: float,
    weight_decay: float,
    maximize: bool,
    grad_scale: torch.Tensor | None = None,
    found_inf: torch.Tensor | None = None,
) -> None:
    """One ADADELTA step, in place, for contiguous tensors of one dtype on one device (not the
    step counts: the caller adds those), by one kernel launch.

    The caller checks that every tensor is contiguous, of ``params[0]``'s dtype (float32,
    float64, bfloat16, float16 or complex), device and number of elements; this makes the
    table of their addresses (or finds it made)."""
    if not params:
        return
    device = params[0].device
    real = [[_real(t) for t in ts] for ts in (params, grads, square_avgs, acc_deltas)]
    element = real[0][0].dtype
    addresses = tuple(t.data_ptr() for ts in real for t in ts)
    counts = [t.numel() for t in real[0]]
    key = (device, addresses, tuple(counts))
    cached = _TABLES.get(key)
    if cached is None:
        # made once for these addresses, so that a step captured in a CUDA graph (capturable)
        # copies nothing from the host; a few kept, for optimizers that take turns
        table = torch.tensor(addresses, dtype=torch.int64).view(4, len(params)).to(device)
        sizes = torch.tensor(counts, dtype=torch.int64).to(device)
        if len(_TABLES) >= _KEPT:
            del _TABLES[next(iter(_TABLES))]
        cached = _TABLES[key] = (table, sizes)
    table, sizes = cached
    dummy = table  # an unread pointer for the arguments that a flag turns off
    lr_tensor = isinstance(lr, torch.Tensor)
    lr_pointer = lr.to(device) if isinstance(lr, torch.Tensor) else dummy
    grid = (len(params), triton.cdiv(max(counts), BLOCK))
    _adadelta_kernel[grid](
        table,
        sizes,
        len(params),
        0.0 if lr_tensor else float(lr),
        lr_pointer,
        float(rho),
        float(eps),
        float(weight_decay),
        grad_scale if grad_scale is not None else dummy,
        found_inf if found_inf is not None else dummy,
        ELEMENT=_ELEMENT[element],
        COMPUTE=tl.float64 if element == torch.float64 else tl.float32,
        LR_TENSOR=lr_tensor,
        SCALED=grad_scale is not None,
        CHECK_INF=found_inf is not None,
        MAXIMIZE=bool(maximize),
        WEIGHT_DECAY=weight_decay != 0,
        BLOCK=BLOCK,
    )
