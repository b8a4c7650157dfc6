"""The fused ADADELTA step on the GPU: one Triton kernel launch for all tensors of a dtype.

Imported only when a CUDA tensor is stepped (or by the tests, which run it on the CPU with
Triton's interpreter, ``TRITON_INTERPRET=1``), so ``import adadelta.torch`` never loads Triton.

The launch reads a table of addresses (parameter, gradient, ``square_avg``, ``acc_delta`` of
each tensor, as PyTorch's fused optimizers and :mod:`adadelta.kernels` do on the CPU) and the
tensors' sizes; the grid is 1-D, one program per block of :data:`BLOCK` elements of a tensor,
each program finding its tensor in a table made once for these addresses (:func:`_tables`), so
that hundreds of tensors of mixed sizes launch no idle programs and no grid dimension limits
a tensor's size. The arithmetic is float32 whatever the storage
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
from typing import Any

import numpy as np
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
    owners,  # int32 [programs]: the tensor of each program
    firsts,  # int32 [tensors]: the first program of each tensor
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
    program = tl.program_id(0)
    t = tl.load(owners + program)
    start = (program - tl.load(firsts + t)).to(tl.int64) * BLOCK
    size = tl.load(sizes + t)
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


# --- compact state: the same bits as adadelta.kernels.compact's CPU loops ---

SCALE_BLOCK = 256  # float8's elements per scale (adadelta.kernels.compact.BLOCK)
ROWS = 2  # scale blocks per program of the compact kernel
WARPS = 4  # its warps per program
_WEYL, _LOWBIAS1 = 0x9E3779B9, 0x7FEB352D  # adadelta.kernels.compact's hash


@triton.jit
def _maximum(a, b):  # type: ignore[no-untyped-def]
    """(``tl.max``, a function of Triton's library, is not interpreted in a process that
    imported Triton before the tests set ``TRITON_INTERPRET``.)"""
    return tl.maximum(a, b)


@triton.jit
def _decode8(codes, scales):  # type: ignore[no-untyped-def]
    """float8 codes (uint8, [rows, SCALE_BLOCK]) times their blocks' scales ([rows, 1])."""
    c = codes.to(tl.uint32)
    normal = ((c + 768) << 20).to(tl.float32, bitcast=True)
    value = tl.where(c >= 8, normal, c.to(tl.int32).to(tl.float32) * 1.1641532182693481e-10)
    return scales * value


@triton.jit
def _encode8(q, r):  # type: ignore[no-untyped-def]
    """The float8 code of ``q`` (a value over its block's scale), rounded up with the
    probability ``r / 2**16`` of the way to the next code (``r``: 16 random bits, uint32)."""
    u = q.to(tl.uint32, bitcast=True)
    normal = tl.minimum((u + (r << 4)) >> 20, 1023) - 768
    scaled = q * 8589934592.0 + r.to(tl.int32).to(tl.float32) * 1.52587890625e-05
    subnormal = scaled.to(tl.int32).to(tl.uint32, bitcast=True)
    return tl.where(u >= (97 << 23), normal, subnormal).to(tl.uint8)


@triton.jit  # type: ignore[untyped-decorator]
def _compact_kernel(  # type: ignore[no-untyped-def]
    table,  # int64 [rows, tensors]: x, g, E[g^2], E[dx^2] codes (float8: their scales too)
    sizes,  # int64 [tensors]
    owners,  # int32 [programs]
    firsts,  # int32 [tensors]
    keys,  # int64 [tensors]: the 32-bit key of each tensor's random bits this step
    tensors,
    lr,
    rho,
    one_minus_rho,
    eps,
    weight_decay,
    ELEMENT: tl.constexpr,
    FLOAT8: tl.constexpr,
    MAXIMIZE: tl.constexpr,
    WEIGHT_DECAY: tl.constexpr,
    ROWS: tl.constexpr,
    SCALE_BLOCK: tl.constexpr,
):
    # A program steps ROWS x SCALE_BLOCK elements of one tensor, as ROWS rows of one scale
    # block each: float8's new scale of a block is its row's largest value over 1.875.
    program = tl.program_id(0)
    t = tl.load(owners + program)
    first_row = (program - tl.load(firsts + t)).to(tl.int64) * ROWS
    size = tl.load(sizes + t)
    rows = first_row + tl.arange(0, ROWS)
    offsets = rows[:, None] * SCALE_BLOCK + tl.arange(0, SCALE_BLOCK)[None, :]
    mask = offsets < size
    pointer = tl.pointer_type(ELEMENT)
    code = tl.pointer_type(tl.uint8 if FLOAT8 else tl.uint16)
    x_ptr = tl.load(table + t).to(pointer)
    g_ptr = tl.load(table + tensors + t).to(pointer)
    v_ptr = tl.load(table + 2 * tensors + t).to(code)
    u_ptr = tl.load(table + 3 * tensors + t).to(code)
    x = tl.load(x_ptr + offsets, mask=mask, other=0).to(tl.float32)
    g = tl.load(g_ptr + offsets, mask=mask, other=0).to(tl.float32)
    v_codes = tl.load(v_ptr + offsets, mask=mask, other=0)
    u_codes = tl.load(u_ptr + offsets, mask=mask, other=0)
    if FLOAT8:
        v_scale_ptr = tl.load(table + 4 * tensors + t).to(tl.pointer_type(tl.float32))
        u_scale_ptr = tl.load(table + 5 * tensors + t).to(tl.pointer_type(tl.float32))
        row_mask = rows * SCALE_BLOCK < size
        v_scales = tl.load(v_scale_ptr + rows, mask=row_mask, other=0)
        u_scales = tl.load(u_scale_ptr + rows, mask=row_mask, other=0)
        v = _decode8(v_codes, v_scales[:, None])
        u = _decode8(u_codes, u_scales[:, None])
    else:
        v = (v_codes.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
        u = (u_codes.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    # the float32 kernel's arithmetic, operation for operation (adadelta.kernels.compact._update;
    # launched without multiply-add fusion): the quotient's one root where it is a normal
    # float32, else the rule's two roots
    if MAXIMIZE:
        g = -g
    if WEIGHT_DECAY:
        g = g + weight_decay * x
    v = rho * v + one_minus_rho * g * g
    q = tl.div_rn(u + eps, v + eps)
    dx = -tl.sqrt_rn(q) * g
    bad = ((q < 1.1754943508222875e-38) | (q > 3.4028234663852886e38) | (q != q)).to(tl.int32)
    if tl.reduce(bad, None, _maximum) != 0:  # rare: the roots only where a program needs them
        two_roots = tl.div_rn(tl.sqrt_rn(u + eps), tl.sqrt_rn(v + eps))
        dx = tl.where(bad != 0, -two_roots * g, dx)
    x = x + lr * dx
    u = rho * u + one_minus_rho * dx * dx
    # the random bits of each element: a hash of the key and the element's index
    z = tl.load(keys + t).to(tl.uint32) ^ (offsets.to(tl.uint32) * 0x9E3779B9)
    z = (z ^ (z >> 16)) * 0x7FEB352D
    z = z ^ (z >> 15)
    r_v, r_u = z & 0xFFFF, z >> 16
    if FLOAT8:
        # (the largest bits are the largest value: E[g^2] and E[dx^2] are not negative)
        v_max = tl.reduce(tl.where(mask, v.to(tl.uint32, bitcast=True), 0), 1, _maximum)
        u_max = tl.reduce(tl.where(mask, u.to(tl.uint32, bitcast=True), 0), 1, _maximum)
        v_scales = tl.div_rn(v_max.to(tl.float32, bitcast=True), 1.875)
        u_scales = tl.div_rn(u_max.to(tl.float32, bitcast=True), 1.875)
        one = tl.full([ROWS], 1.0, tl.float32)
        v_inverse = tl.where(v_scales > 0, tl.div_rn(one, v_scales), 0.0)
        u_inverse = tl.where(u_scales > 0, tl.div_rn(one, u_scales), 0.0)
        v_codes = _encode8(v * v_inverse[:, None], r_v)
        u_codes = _encode8(u * u_inverse[:, None], r_u)
        tl.store(v_scale_ptr + rows, v_scales, mask=row_mask)
        tl.store(u_scale_ptr + rows, u_scales, mask=row_mask)
    else:
        v_codes = ((v.to(tl.uint32, bitcast=True) + r_v) >> 16).to(tl.uint16)
        u_codes = ((u.to(tl.uint32, bitcast=True) + r_u) >> 16).to(tl.uint16)
    tl.store(v_ptr + offsets, v_codes, mask=mask)
    tl.store(u_ptr + offsets, u_codes, mask=mask)
    tl.store(x_ptr + offsets, _narrow(x, ELEMENT), mask=mask)


_CODES = {"bfloat16": torch.uint16, "float8": torch.uint8}


def compact_step(
    state_dtype: str,
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    states: Sequence[dict[str, Any]],
    keys: torch.Tensor,
    hyper: Sequence[float],
    *,
    maximize: bool,
) -> None:
    """One step of compact state (``"bfloat16"`` or ``"float8"``), in place, for contiguous
    parameters of one dtype (float32, bfloat16 or float16) on one device, with the same bits
    as :mod:`adadelta.kernels.compact`'s CPU loops: ``keys`` (int64, on the device) holds the
    key of each parameter's random bits this step (:func:`adadelta.kernels.compact.stream_key`)
    and ``hyper`` the float32 values of lr, rho, 1 - rho, eps and weight_decay. The caller
    checks every tensor and counts the steps."""
    if not params:
        return
    device = params[0].device
    names = ["square_avg", "acc_delta"]
    if state_dtype == "float8":
        names += ["square_avg_scale", "acc_delta_scale"]
    addresses = [t.data_ptr() for ts in (params, grads) for t in ts]
    addresses += [s[name].data_ptr() for name in names for s in states]
    block = ROWS * SCALE_BLOCK
    table, sizes, owners, firsts = _tables(device, addresses, [p.numel() for p in params], block)
    lr, rho, one_minus_rho, eps, weight_decay = (float(v) for v in hyper)
    _compact_kernel[(owners.numel(),)](
        table, sizes, owners, firsts, keys, len(params),
        lr, rho, one_minus_rho, eps, weight_decay,
        ELEMENT=_ELEMENT[params[0].dtype], FLOAT8=state_dtype == "float8",
        MAXIMIZE=bool(maximize), WEIGHT_DECAY=weight_decay != 0,
        ROWS=ROWS, SCALE_BLOCK=SCALE_BLOCK, enable_fp_fusion=False, num_warps=WARPS,
    )  # fmt: skip


# device tables, by (device, addresses, sizes, block): made once, so that a step captured in a
# CUDA graph (capturable) copies nothing from the host; a few kept, for optimizers that take
# turns, the oldest dropped first
_TABLES: dict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
_KEPT = 8


def _tables(
    device: torch.device, addresses: list[int], counts: list[int], block: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """On ``device``: the addresses as a table (a row for each kind of tensor, a column for
    each tensor), the tensors' sizes, the tensor of each program (one per ``block`` elements;
    an empty tensor takes one, which writes nothing) and the first program of each tensor."""
    key = (device, tuple(addresses), tuple(counts), block)
    cached = _TABLES.get(key)
    if cached is None:
        tensors = len(counts)
        programs = [max(1, -(-n // block)) for n in counts]
        firsts = np.cumsum([0, *programs[:-1]])
        owners = np.repeat(np.arange(tensors), programs)
        made = (
            torch.tensor(addresses, dtype=torch.int64).view(-1, tensors),
            torch.tensor(counts, dtype=torch.int64),
            torch.from_numpy(owners.astype(np.int32)),
            torch.from_numpy(firsts.astype(np.int32)),
        )
        if len(_TABLES) >= _KEPT:
            del _TABLES[next(iter(_TABLES))]
        on_device = [t.to(device) for t in made]
        cached = _TABLES[key] = (on_device[0], on_device[1], on_device[2], on_device[3])
    return cached


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
    addresses = [t.data_ptr() for ts in real for t in ts]
    table, sizes, owners, firsts = _tables(device, addresses, [t.numel() for t in real[0]], BLOCK)
    dummy = table  # an unread pointer for the arguments that a flag turns off
    lr_tensor = isinstance(lr, torch.Tensor)
    lr_pointer = lr.to(device) if isinstance(lr, torch.Tensor) else dummy
    _adadelta_kernel[(owners.numel(),)](
        table,
        sizes,
        owners,
        firsts,
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
