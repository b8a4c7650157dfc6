r"""Compact ADADELTA state: E[g^2] and E[dx^2] kept in 16 or 8 bits per value instead of 32.

Two formats (``Adadelta(params, state_dtype=...)``), both for float32 parameters; the arithmetic
is float32, as with float32 state, and only the stored state is narrower:

- ``"bfloat16"``: each value as a bfloat16, the top half of its float32 bits (a ``uint16``
  array, since NumPy has no bfloat16). 4 bytes of state per parameter instead of 8.
- ``"float8"``: each value as an unsigned 8-bit float with 5 exponent and 3 mantissa bits (a
  ``uint8`` code), times a float32 scale per block of :data:`BLOCK` elements (the block's
  largest value over 1.875, the largest code). Code ``c`` is ``(1 + m/8) 2^(e-31)`` for
  ``e = c >> 3 >= 1``, ``m = c & 7``, and ``m/8 2^-30`` for ``e = 0`` (0 included): every code
  is within 12.5% of its neighbours over 9 decades below the block's largest value, which is
  what E[dx^2] needs (it spans many orders of magnitude inside one tensor, down to the eps
  scale). 2.03 bytes of state per parameter. ``benchmarks/compact_error.py`` measures this
  code against linear codes, a linear code of the square root and bitsandbytes' dynamic map
  on the paper's network; the guide "Compact state" says why it was chosen.

Writing a value back rounds it **stochastically**: up with probability equal to its distance
from the code below, in units of the gap to the code above, so that the stored value is
unbiased. (Round-to-nearest would freeze a running average whose increments are smaller than
half a code's gap: with rho = 0.99 an E[g^2] moves by at most 1% a step, less than half of
bfloat16's 0.8%-to-0.4% gaps.) The 16 random bits for each stored value come from a
counter-based hash of the parameter's ``seed`` (in its state), its ``step`` and the element's
index: a 32-bit key from (seed, step) by splitmix64's finalizer, then per element a 32-bit
integer hash (``lowbias32``) of the key and the index, 16 bits for each state. Runs are
reproducible, each element's bits are independent of how the work is split over threads, and a
run resumed from a state dict draws the same bits. (Indices wrap at 2**32.)

The reference (``fused = False`` and arrays that are not contiguous) is :func:`reference_step`:
:func:`adadelta.rules.adadelta` applied to the dequantized state, the result written back with
:func:`quantize`. The fused loops (:func:`_adadelta_bfloat16`, :func:`_adadelta_float8`) do the
same in one pass over the arrays, with no temporaries beyond a block's 2 x 256 values (float8);
asked to check the gradients for NaN and infinity, they first sum every gradient in the same
call (:func:`_scan`), and write nothing if one is not finite. Like the float32 kernel they take
RMS[dx]_{t-1} / RMS[g]_t as ``sqrt((E[dx^2] + eps) / (E[g^2] + eps))``; an element whose
quotient is not a normal float32 (infinite, 0, subnormal or NaN: one RMS exceeds the other by
about 1e19) takes the rule's two roots ``sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps)`` instead,
element by element: the first pass leaves it as it was and marks it, a second pass (only where
one is marked) steps it, with the same random bits.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from adadelta import rules
from adadelta.kernels.parallel import (
    CHUNK,
    ELEMENT_COST,
    _address,
    _all_finite,
    _chunk,
    _chunks,
    _launch,
    _part,
    _threads,
    first_non_finite,
)

FloatArray = rules.FloatArray
StateDict = dict[str, Any]

FORMATS = ("bfloat16", "float8")
BLOCK = 256  # elements per scale of the float8 format
FLOAT8_MAX = 1.875  # the largest float8 code's value: (1 + 7/8) 2^0
_CODES: dict[str, np.dtype[Any]] = {"bfloat16": np.dtype(np.uint16), "float8": np.dtype(np.uint8)}
_SCALES = {"E_g2": "E_g2_scale", "E_dx2": "E_dx2_scale"}  # float8's per-block scales
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
NEAREST = 0x8000  # the rounding bits of round-to-nearest: half a gap

# --- the random bits: a 32-bit hash of (key, element index), the key from (seed, step) ---


def _mix(z: int) -> int:
    z &= _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def parameter_seed(seed: int, position: int) -> int:
    """The seed that parameter ``position`` of an optimizer built with ``seed`` keeps in its
    state (63 bits, so that it is a non-negative int64)."""
    return _mix(_mix(seed * _GOLDEN + 1) + position) >> 1


_WEYL, _LOWBIAS1, _LOWBIAS2 = 0x9E3779B9, 0x7FEB352D, 0x846CA68B


def stream_key(seed: int, step: int) -> int:
    """The 32-bit key of the random bits that the step after ``step`` steps of a parameter
    draws."""
    return _mix(seed ^ _mix((step + 1) * _GOLDEN)) >> 32


_U64 = np.uint64


@numba.njit(cache=True)
def _mix64(z: Any) -> Any:  # pragma: no cover (compiled)
    z = (z ^ (z >> _U64(30))) * _U64(_MIX1)
    z = (z ^ (z >> _U64(27))) * _U64(_MIX2)
    return z ^ (z >> _U64(31))


@numba.njit(cache=True)
def _stream_key64(seed: Any, step: Any) -> Any:  # pragma: no cover (compiled)
    """:func:`stream_key` compiled (``seed`` and ``step`` as uint64)."""
    return _mix64(seed ^ _mix64((step + _U64(1)) * _U64(_GOLDEN))) >> _U64(32)


def random_bits(key: int, n: int) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """32 random bits for each of the elements ``0..n-1`` under ``key``: bits 0-15 round the
    element's E[g^2], bits 16-31 its E[dx^2]."""
    z = np.uint32(key) ^ (np.arange(n, dtype=np.uint32) * np.uint32(_WEYL))
    z = (z ^ (z >> np.uint32(16))) * np.uint32(_LOWBIAS1)
    bits: np.ndarray[Any, np.dtype[np.uint64]] = (z ^ (z >> np.uint32(15))).astype(np.uint64)
    return bits


# --- the formats in NumPy: the reference ---


def _float8_value(codes: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    c = codes.astype(np.uint32)
    normal = ((c + 768) << 20).view(np.float32)  # exponent field e + 96, mantissa m
    return np.where(c >= 8, normal, c.astype(np.float32) * np.float32(2.0**-33))


FLOAT8_VALUES = _float8_value(np.arange(256, dtype=np.uint8))  # code -> value


def dequantize(state: Mapping[str, Any], key: str, state_dtype: str) -> FloatArray:
    """The float32 values of state array ``key`` (``"E_g2"`` or ``"E_dx2"``)."""
    codes = np.asarray(state[key])
    if state_dtype == "bfloat16":
        values = (codes.ravel().astype(np.uint32) << np.uint32(16)).view(np.float32)
    else:
        scales = np.repeat(state[_SCALES[key]], BLOCK)[: codes.size]
        values = scales * _float8_value(codes.ravel())
    return values.reshape(codes.shape)  # type: ignore[no-any-return]


def quantize(
    values: FloatArray, bits: np.ndarray[Any, Any] | int, state_dtype: str
) -> dict[str, np.ndarray[Any, Any]]:
    """Codes (and float8's scales) of the float32 ``values``, rounded up with the probability
    ``bits / 2**16`` of the way to the next code (``bits``: 16-bit integers, one per element,
    or :data:`NEAREST` for round-to-nearest): ``{"codes": ..., "scales": ...}``."""
    shape = np.shape(values)  # kept: 0-d values give 0-d codes
    v = np.ascontiguousarray(values, np.float32).ravel()
    r = np.asarray(bits, np.uint64).ravel() & np.uint64(0xFFFF)
    u = v.view(np.uint32).astype(np.uint64)
    if state_dtype == "bfloat16":
        return {"codes": ((u + r) >> np.uint64(16)).astype(np.uint16).reshape(shape)}
    flat, n = v, v.size
    blocks = -(-n // BLOCK)
    padded = np.zeros(blocks * BLOCK, np.float32)
    padded[:n] = flat
    scales = padded.reshape(blocks, BLOCK).max(axis=1) / np.float32(FLOAT8_MAX)
    inverse = np.zeros_like(scales)
    np.divide(np.float32(1), scales, out=inverse, where=scales > 0)
    q = (padded.reshape(blocks, BLOCK) * inverse[:, None]).ravel()[:n]
    return {"codes": _encode_float8(q, r).reshape(shape), "scales": scales}


def _encode_float8(q: Any, r: Any) -> Any:
    u = q.view(np.uint32).astype(np.uint64)
    normal = np.minimum((u + (r << np.uint64(4))) >> np.uint64(20), 1023) - 768
    subnormal = q * np.float32(2.0**33) + r.astype(np.float32) * np.float32(2.0**-16)
    return np.where(u < (97 << 23), subnormal.astype(np.int64), normal).astype(np.uint8)


def _store(state: StateDict, key: str, values: FloatArray, bits: Any, state_dtype: str) -> None:
    stored = quantize(values, bits, state_dtype)
    state[key] = stored["codes"]
    if state_dtype == "float8":
        state[_SCALES[key]] = stored["scales"]


def reference_step(
    x: FloatArray,
    g: FloatArray,
    state: StateDict,
    state_dtype: str,
    hyper: Mapping[str, Any],
    *,
    stochastic: bool = True,
) -> None:
    """One step in place: :func:`adadelta.rules.adadelta` on the dequantized state, the new
    state written back rounded once (stochastically, or to nearest without ``stochastic``)."""
    record = rules.AdadeltaState(
        state["step"],
        dequantize(state, "E_g2", state_dtype),
        dequantize(state, "E_dx2", state_dtype),
    )
    new_x, new = rules.adadelta(x, g, record, **hyper)
    x[...] = new_x
    if stochastic:
        bits = random_bits(stream_key(state["seed"], state["step"]), x.size)
        bits_g, bits_dx = bits & np.uint64(0xFFFF), bits >> np.uint64(16)
    else:
        bits_g = bits_dx = np.full(x.size, NEAREST, np.uint64)
    assert new.E_g2 is not None and new.E_dx2 is not None
    _store(state, "E_g2", new.E_g2, bits_g.reshape(x.shape), state_dtype)
    _store(state, "E_dx2", new.E_dx2, bits_dx.reshape(x.shape), state_dtype)
    state["step"] += 1


def empty_state(x: FloatArray, state_dtype: str) -> dict[str, np.ndarray[Any, Any]]:
    """Zero E[g^2] and E[dx^2] of parameter ``x`` in ``state_dtype``."""
    arrays: dict[str, np.ndarray[Any, Any]] = {
        key: np.zeros(x.shape, _CODES[state_dtype]) for key in ("E_g2", "E_dx2")
    }
    if state_dtype == "float8":
        for key in ("E_g2", "E_dx2"):
            arrays[_SCALES[key]] = np.zeros(-(-x.size // BLOCK), np.float32)
    return arrays


def layout(x: FloatArray, state_dtype: str) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
    """The arrays of parameter ``x``'s state in ``state_dtype``: name -> (shape, dtype)."""
    arrays: dict[str, tuple[tuple[int, ...], np.dtype[Any]]] = {
        key: (x.shape, _CODES[state_dtype]) for key in ("E_g2", "E_dx2")
    }
    if state_dtype == "float8":
        for key in _SCALES.values():
            arrays[key] = ((-(-x.size // BLOCK),), np.dtype(np.float32))
    return arrays


# --- state dicts: which format, checks, conversion ---


def format_of(saved: Any) -> str | None:
    """The format of one parameter's saved state: ``"bfloat16"``, ``"float8"``, or None (float
    arrays, no arrays yet, or something that the checks will refuse)."""
    if not isinstance(saved, Mapping):
        return None
    value = saved.get("E_g2", saved.get("E_dx2"))
    if not isinstance(value, np.ndarray):
        return None
    for name, dtype in _CODES.items():
        if value.dtype == dtype:
            return name
    return None


def _finite_values(state: Mapping[str, Any], key: str) -> bool:
    """Whether float8 state array ``key`` times its scales stays within float32's range."""
    with np.errstate(over="ignore"):
        return bool(np.isfinite(dequantize(state, key, "float8")).all())


def checked_state(
    where: str, saved: Mapping[str, Any], p: FloatArray, state_dtype: str
) -> StateDict:
    """A copy of one parameter's saved compact state, after checking every entry."""
    arrays = ["E_g2", "E_dx2", *(_SCALES.values() if state_dtype == "float8" else ())]
    expected = {"step", "seed", *arrays}
    if set(saved) not in (expected, {"step"}):
        raise ValueError(f"{where}: has keys {sorted(saved)}, expected {sorted(expected)}")
    state: StateDict = {}
    for key in ("step", "seed"):
        if key not in saved:
            continue
        value = saved[key]
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value.item()
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or not 0 <= value < 1 << 63
        ):
            raise ValueError(f"{where}: {key!r} must be a non-negative integer, got {value!r}")
        state[key] = int(value)
    for key in arrays:
        if key not in saved:
            continue
        value = saved[key]
        scales = key in _SCALES.values()
        shape = (-(-p.size // BLOCK),) if scales else p.shape
        dtype = np.dtype(np.float32) if scales else _CODES[state_dtype]
        if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != dtype:
            raise ValueError(
                f"{where}: {key!r} must be a {dtype} array of shape {shape} for "
                f"state_dtype={state_dtype!r}, got "
                f"{type(value).__name__ if not isinstance(value, np.ndarray) else value.dtype} "
                f"{getattr(value, 'shape', '')}"
            )
        if scales and not (np.isfinite(value).all() and (value >= 0).all()):
            raise ValueError(f"{where}: {key!r} must hold finite, non-negative scales")
        if state_dtype == "bfloat16" and not scales and (value >= 0x7F80).any():
            raise ValueError(f"{where}: {key!r} holds NaN, infinity or negative values")
        state[key] = value.copy()
    for key, scale in _SCALES.items() if state_dtype == "float8" else ():
        # finite scales can still decode beyond float32 (a scale above 3.4e38 / 1.875): the
        # step would make the state infinite, and the next state dict would be refused
        if key in state and scale in state and not _finite_values(state, key):
            raise ValueError(
                f"{where}: {key!r} times {scale!r} gives values beyond float32's range"
            )
    return state


def convert_state(
    state_dict: Mapping[str, Any], state_dtype: str | None, *, seed: int = 0
) -> dict[str, Any]:
    """The conversion of :func:`adadelta.convert_state`, on a state dict that it has checked
    (here nothing is checked): a new dict in ``state_dtype``, values rounded once, to nearest."""
    if state_dtype is not None and state_dtype not in FORMATS:
        raise ValueError(
            f"Invalid state_dtype value: {state_dtype!r} (must be None or one of {list(FORMATS)})"
        )
    if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
        raise ValueError("state dict: expected a dict with exactly 'state' and 'param_groups'")
    converted: dict[int, StateDict] = {}
    for i, saved in state_dict["state"].items():
        source = format_of(saved)
        state: StateDict = {"step": int(saved["step"])}
        if "E_g2" in saved:
            values = {
                key: saved[key].astype(np.float32)
                if source is None
                else dequantize(saved, key, source)
                for key in ("E_g2", "E_dx2")
            }
            if state_dtype is None:
                state.update(values)
            else:
                for key, value in values.items():
                    _store(state, key, value, NEAREST, state_dtype)
        if state_dtype is not None:
            state["seed"] = int(saved.get("seed", parameter_seed(seed, i)))
        converted[i] = state
    groups = [dict(group) for group in state_dict["param_groups"]]
    return {"state": converted, "param_groups": groups}


# --- the fused loops ---


@intrinsic
def _bits(typingctx: Any, value: Any) -> Any:
    """The bits of a float32 as an unsigned 32-bit integer."""
    signature = types.uint32(types.float32)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(32))

    return signature, codegen


@intrinsic
def _float(typingctx: Any, bits: Any) -> Any:
    """The float32 whose bits are an unsigned 32-bit integer."""
    signature = types.float32(types.uint32)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.FloatType())

    return signature, codegen


# The integer work of the loops, written in LLVM's 32-bit integers: Numba would widen every
# integer operation to 64 bits, and LLVM then vectorizes 8 lanes to a register instead of 16
# (and multiplies 64-bit lanes, three times the cost).
_I32 = ir.IntType(32)


def _i32(builder: Any, value: Any, typ: Any) -> Any:
    """An integer argument as an LLVM i32."""
    width = typ.bitwidth
    if width == 32:
        return value
    if width > 32:
        return builder.trunc(value, _I32)
    return builder.zext(value, _I32)


def _constant(value: int) -> Any:
    return ir.Constant(_I32, value)


@intrinsic
def _weyl(typingctx: Any, index: Any) -> Any:
    """``index`` times the Weyl constant of :func:`random_bits`, modulo 2**32 (a uint32): the
    loops start from it and step it with :func:`_next_weyl`, an addition per element where
    ``(start + i) * _WEYL`` would be a multiplication."""
    signature = types.uint32(index)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.mul(_i32(builder, args[0], sig.args[0]), _constant(_WEYL))

    return signature, codegen


@intrinsic
def _next_weyl(typingctx: Any, w: Any) -> Any:
    """The next element's :func:`_weyl`: ``w + _WEYL`` modulo 2**32."""
    signature = types.uint32(w)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.add(_i32(builder, args[0], sig.args[0]), _constant(_WEYL))

    return signature, codegen


@intrinsic
def _random(typingctx: Any, key: Any, w: Any) -> Any:
    """:func:`random_bits` of the element whose :func:`_weyl` is ``w``, under ``key``, as a
    uint32."""
    signature = types.uint32(key, w)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        z = builder.xor(_i32(builder, args[0], sig.args[0]), _i32(builder, args[1], sig.args[1]))
        z = builder.mul(builder.xor(z, builder.lshr(z, _constant(16))), _constant(_LOWBIAS1))
        return builder.xor(z, builder.lshr(z, _constant(15)))

    return signature, codegen


@intrinsic
def _half(typingctx: Any, bits: Any, high: Any) -> Any:
    """The low (``high`` False) or high 16 bits of a uint32, as a uint32."""
    signature = types.uint32(bits, high)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        z = _i32(builder, args[0], sig.args[0])
        low, high_bits = builder.and_(z, _constant(0xFFFF)), builder.lshr(z, _constant(16))
        return builder.select(args[1], high_bits, low)

    return signature, codegen


@intrinsic
def _to_bfloat16(typingctx: Any, value: Any, r: Any) -> Any:
    """A float32 rounded to bfloat16 bits (uint16), up with the probability ``r / 2**16`` of the
    way to the next bfloat16 (``r``: 16 bits)."""
    signature = types.uint16(types.float32, r)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        u = builder.bitcast(args[0], _I32)
        rounded = builder.lshr(builder.add(u, _i32(builder, args[1], sig.args[1])), _constant(16))
        return builder.trunc(rounded, ir.IntType(16))

    return signature, codegen


@intrinsic
def _from_bfloat16(typingctx: Any, code: Any) -> Any:
    """The float32 of bfloat16 bits."""
    signature = types.float32(code)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        u = builder.shl(_i32(builder, args[0], sig.args[0]), _constant(16))
        return builder.bitcast(u, ir.FloatType())

    return signature, codegen


@intrinsic
def _decode8(typingctx: Any, code: Any, normal: Any) -> Any:
    """The value of a float8 code (before its block's scale). ``normal`` (a constant in the
    loops) says that the code is one of the normal ones (8 and up), which LLVM then decodes
    without the other case."""
    signature = types.float32(code, types.boolean)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        c = _i32(builder, args[0], sig.args[0])
        normal = builder.bitcast(
            builder.shl(builder.add(c, _constant(768)), _constant(20)), ir.FloatType()
        )
        subnormal = builder.fmul(
            builder.sitofp(c, ir.FloatType()), ir.Constant(ir.FloatType(), 2.0**-33)
        )
        is_normal = builder.or_(args[1], builder.icmp_unsigned(">=", c, _constant(8)))
        return builder.select(is_normal, normal, subnormal)

    return signature, codegen


@intrinsic
def _encode8(typingctx: Any, q: Any, r: Any, normal: Any) -> Any:
    """The float8 code (uint8) of ``q``, a value over its block's scale, rounded up with the
    probability ``r / 2**16`` of the way to the next code (``r``: 16 bits). ``normal`` (a
    constant in the loops) says that ``q`` is at least 2**-30, the smallest normal code."""
    signature = types.uint8(types.float32, r, types.boolean)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        f32 = ir.FloatType()
        q, bits = args[0], _i32(builder, args[1], sig.args[1])
        u = builder.bitcast(q, _I32)
        shifted = builder.lshr(builder.add(u, builder.shl(bits, _constant(4))), _constant(20))
        over = builder.icmp_unsigned(">", shifted, _constant(1023))
        normal = builder.sub(builder.select(over, _constant(1023), shifted), _constant(768))
        fraction = builder.fmul(builder.sitofp(bits, f32), ir.Constant(f32, 2.0**-16))
        scaled = builder.fadd(builder.fmul(q, ir.Constant(f32, 2.0**33)), fraction)
        subnormal = builder.fptosi(scaled, _I32)
        is_normal = builder.or_(args[2], builder.icmp_unsigned(">=", u, _constant(97 << 23)))
        code = builder.select(is_normal, normal, subnormal)
        return builder.trunc(code, ir.IntType(8))

    return signature, codegen


_F8_MAX, _ONE, _ZERO = np.float32(FLOAT8_MAX), np.float32(1), np.float32(0)
_SMALLEST_NORMAL32 = np.finfo(np.float32).smallest_normal
_LARGEST32 = np.finfo(np.float32).max


@intrinsic
def _half_to_float(typingctx: Any, bits: Any) -> Any:
    """float16 bits to float32 (exact)."""
    signature = types.float32(types.uint16)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return signature, codegen


@intrinsic
def _float_to_half(typingctx: Any, value: Any) -> Any:
    """float32 to float16 bits, rounded to nearest even (overflow to infinity, NaN kept)."""
    signature = types.uint16(types.float32)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return signature, codegen


@numba.njit(cache=True, error_model="numpy", inline="always")
def _widen(bits: Any, bf16: bool) -> Any:
    """bfloat16 (``bf16``) or float16 bits as a float32 (exact)."""
    if bf16:
        return _float(np.uint32(bits) << np.uint32(16))  # type: ignore[call-arg]
    return _half_to_float(bits)  # type: ignore[call-arg]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _narrow(value: Any, bf16: bool) -> Any:
    """A float32 as bfloat16 (``bf16``) or float16 bits, rounded to nearest, ties to even."""
    if bf16:
        u = np.int64(_bits(value))  # type: ignore[call-arg]
        if (u & 0x7FFFFFFF) > 0x7F800000:  # NaN: kept quiet (its top mantissa bit set)
            return np.uint16((u >> 16) | 0x40)
        return np.uint16((u + 0x7FFF + ((u >> 16) & 1)) >> 16)  # to nearest, ties to even
    return _float_to_half(value)  # type: ignore[call-arg]


# The compact loops' parameters and gradients: float32, or (``half``) 16-bit floats read as
# float32 and rounded to nearest when the parameter is written (the arithmetic is float32's).
# ``half`` and ``bf16`` are constants of each compiled version: a float32 loop is unchanged.


@numba.njit(cache=True, error_model="numpy", inline="always")
def _widened(value: Any, half: bool, bf16: bool) -> Any:
    if half:
        return _widen(value, bf16)
    return value


@numba.njit(cache=True, error_model="numpy", inline="always")
def _narrowed(value: Any, half: bool, bf16: bool) -> Any:
    if half:
        return _narrow(value, bf16)
    return value


_NEAREST2 = np.uint32(NEAREST | NEAREST << 16)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _update(
    xi: Any,
    gi: Any,
    Eg_old: Any,
    Edx: Any,
    lr: Any,
    rho: Any,
    one_minus_rho: Any,
    eps: Any,
    wd: Any,
    maximize: bool,
    weight_decay: bool,
    decoupled: bool,
    two_roots: bool,
) -> tuple[Any, Any, Any, Any]:
    """The float32 kernel's arithmetic (``adadelta.kernels.loops``): new x, E[g^2], E[dx^2],
    and whether the one root of the quotient was good, i.e. whether the quotient
    (E[dx^2] + eps) / (E[g^2] + eps) is a normal float32 (not NaN, infinite, 0 or subnormal).
    ``two_roots`` (a constant in the loops): the rule's two roots instead, always good."""
    if maximize:
        gi = -gi
    if weight_decay:
        if decoupled:
            xi = xi - xi * wd * lr
        else:
            gi = gi + wd * xi
    Eg = rho * Eg_old + one_minus_rho * gi * gi
    if two_roots:
        dx = -(np.sqrt(Edx + eps) / np.sqrt(Eg + eps)) * gi
        good = True
    else:
        q = (Edx + eps) / (Eg + eps)
        dx = -np.sqrt(q) * gi
        good = (q >= _SMALLEST_NORMAL32) & (q <= _LARGEST32)
    return xi + lr * dx, Eg, rho * Edx + one_minus_rho * dx * dx, good


# The loops read the hyperparameters into locals before they start (read from ``c`` inside the
# loop, they would be read again for every element: a store to ``x`` might change them, as far
# as LLVM knows), and take ``stochastic`` as a constant of an inlined loop, so that LLVM
# compiles the rounding of each without a branch per element.


@numba.njit(cache=True, error_model="numpy", inline="always")
def _bfloat16_loop(
    x: Any,
    g: Any,
    E_g2: Any,
    E_dx2: Any,
    c: Any,
    t: int,
    key: Any,
    start: int,
    stochastic: bool,
    flags: tuple[bool, bool, bool, bool, bool],
    redo: Any,
) -> None:
    # One pass with the quotient's one root; an element whose quotient is not a normal
    # float32 keeps its old x and codes (a select, not a branch: the loop stays vectorized)
    # and is marked in ``redo``; only if one is, a second pass steps the marked elements
    # again with the rule's two roots, from those old values and with the same random bits.
    lr, rho, one_minus_rho, eps, wd = c[t, 0], c[t, 1], c[t, 2], c[t, 3], c[t, 4]
    maximize, weight_decay, decoupled, half, bf16 = flags
    w = _weyl(start)  # type: ignore[call-arg, var-annotated]
    bad = False
    for i in range(x.size):
        raw, code_g, code_dx = x[i], E_g2[i], E_dx2[i]
        new_x, Eg, Edx, good = _update(
            _widened(raw, half, bf16), _widened(g[i], half, bf16), _from_bfloat16(code_g),
            _from_bfloat16(code_dx), lr, rho, one_minus_rho, eps, wd,
            maximize, weight_decay, decoupled, False,
        )  # fmt: skip
        r = _random(key, w) if stochastic else _NEAREST2
        w = _next_weyl(w)
        x[i] = _narrowed(new_x, half, bf16) if good else raw
        E_g2[i] = _to_bfloat16(Eg, _half(r, False)) if good else code_g
        E_dx2[i] = _to_bfloat16(Edx, _half(r, True)) if good else code_dx
        redo[i] = not good
        bad |= not good
    if bad:
        for i in range(x.size):
            if redo[i]:
                new_x, Eg, Edx, _ = _update(
                    _widened(x[i], half, bf16), _widened(g[i], half, bf16),
                    _from_bfloat16(E_g2[i]), _from_bfloat16(E_dx2[i]), lr, rho,
                    one_minus_rho, eps, wd, maximize, weight_decay, decoupled, True,
                )  # fmt: skip
                r = _random(key, _weyl(start + i)) if stochastic else _NEAREST2
                x[i] = _narrowed(new_x, half, bf16)
                E_g2[i] = _to_bfloat16(Eg, _half(r, False))
                E_dx2[i] = _to_bfloat16(Edx, _half(r, True))


@numba.njit(cache=True, error_model="numpy", inline="always")
def _ends(chunks: Any) -> Any:
    """The running total of the chunks' lengths (in their units): chunk ``k`` holds units
    ``ends[k] - length .. ends[k]`` of all the chunks end to end."""
    ends = np.empty(chunks.shape[0], np.intp)
    total = 0
    for k in range(chunks.shape[0]):
        total += chunks[k, 2] - chunks[k, 1]
        ends[k] = total
    return ends


@numba.njit(cache=True, error_model="numpy", inline="always")
def _pieces(chunks: Any, ends: Any, parts: int, p: int) -> Any:
    """Part ``p`` of ``parts`` equal shares of the chunks' units end to end, as rows (array,
    start, end) that cut the chunks where a share begins or ends. The chunks of a float8
    batch are up to :data:`~adadelta.kernels.parallel.CHUNK` blocks (a million elements) and
    an array smaller than that is one chunk of its own, so that shares by the number of chunks,
    as ``prange`` over the chunks gives them, differ in work several times over (ResNet-50's
    parameters); equal shares of the units do not. Each element's random bits and its block are
    the same however the chunks are cut."""
    total = ends[-1] if ends.size else 0
    low, high = p * total // parts, (p + 1) * total // parts
    k = np.searchsorted(ends, low, side="right")
    count = 0
    while (
        k + count < ends.size
        and ends[k + count] - (chunks[k + count, 2] - chunks[k + count, 1]) < high
    ):
        count += 1
    pieces = np.empty((count, 3), np.intp)
    for j in range(count):
        t, start, end = chunks[k + j, 0], chunks[k + j, 1], chunks[k + j, 2]
        first = ends[k + j] - (end - start)  # the chunk's first unit, end to end
        pieces[j, 0] = t
        pieces[j, 1] = start + max(low - first, 0)
        pieces[j, 2] = end - max(ends[k + j] - high, 0)
    return pieces


@numba.njit(cache=True, error_model="numpy", inline="always")
def _scan(addresses: Any, chunks: Any, sizes: Any, block: int, parts: int, like: Any) -> int:
    """The first array of row 1 of ``addresses`` (the gradients) that holds NaN or infinity,
    or -1; each of ``parts`` threads sums its chunks (in units of ``block`` elements), the
    consecutive chunks of one array in one sum, and the region ends before the kernel that
    inlines this writes anything."""
    count = 0
    for p in numba.prange(parts):
        first, last = _part(chunks, parts, p)
        finite = True
        k = first
        while k < last:
            t, start = chunks[k, 0], chunks[k, 1] * block
            while k + 1 < last and chunks[k + 1, 0] == t:
                k += 1
            end = min(chunks[k, 2] * block, sizes[t])
            finite &= _all_finite(_chunk(addresses, 1, t, start, end, like))
            k += 1
        count += not finite
    if count > 0:
        for t in range(sizes.size):
            if not _all_finite(_chunk(addresses, 1, t, 0, sizes[t], like)):
                return t
    return -1


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _adadelta_bfloat16(
    addresses: Any,
    chunks: Any,
    sizes: Any,
    check: bool,
    parts: int,
    c: Any,
    keys: Any,
    stochastic: bool,
    codes: Any,
    values: Any,
    maximize: bool,
    weight_decay: bool,
    decoupled: bool,
    half: bool,
    bf16: bool,
) -> int:
    # addresses rows: x, g, E[g^2], E[dx^2] (bfloat16 bits); c columns: lr, rho, 1 - rho, eps,
    # weight_decay; keys[t]: the key of array t's random bits this step. With check, first the
    # gradients: the index of one that is not finite, and nothing written, or -1
    if check:
        bad = _scan(addresses, chunks, sizes, 1, parts, values)
        if bad >= 0:
            return bad
    ends = _ends(chunks)
    for p in numba.prange(parts):
        pieces = _pieces(chunks, ends, parts, p)
        redo = np.empty(CHUNK, np.bool_)
        for k in range(pieces.shape[0]):
            t, start, end = pieces[k, 0], pieces[k, 1], pieces[k, 2]
            x = _chunk(addresses, 0, t, start, end, values)
            g = _chunk(addresses, 1, t, start, end, values)
            E_g2 = _chunk(addresses, 2, t, start, end, codes)
            E_dx2 = _chunk(addresses, 3, t, start, end, codes)
            key, flags = keys[t], (maximize, weight_decay, decoupled, half, bf16)
            marks = redo[: end - start]
            if stochastic:
                _bfloat16_loop(x, g, E_g2, E_dx2, c, t, key, start, True, flags, marks)
            else:
                _bfloat16_loop(x, g, E_g2, E_dx2, c, t, key, start, False, flags, marks)
    return -1


@numba.njit(cache=True, error_model="numpy", inline="always")
def _float8_update(
    x: Any,
    g: Any,
    codes_g: Any,
    codes_dx: Any,
    sg: Any,
    sdx: Any,
    new_g: Any,
    new_dx: Any,
    hyper: tuple[Any, Any, Any, Any, Any],
    flags: tuple[bool, bool, bool, bool, bool],
    normal: bool,
    redo: Any,
) -> tuple[Any, Any, Any, Any, bool]:
    """The first pass over a block: x updated, the new E[g^2] and E[dx^2] into ``new_g`` and
    ``new_dx``, and their smallest and largest values, as bits (the order of non-negative
    floats' bits is theirs). ``normal``: every code of the block is a normal one. An element
    whose quotient is not a normal float32 keeps its old x and is marked in ``redo`` (then the
    last value returned is True: see :func:`_float8_redo`)."""
    lr, rho, one_minus_rho, eps, wd = hyper
    maximize, weight_decay, decoupled, half, bf16 = flags
    min_g, min_dx = np.uint32(0xFFFFFFFF), np.uint32(0xFFFFFFFF)
    max_g, max_dx = np.uint32(0), np.uint32(0)
    bad = False
    for i in range(x.size):
        Eg_old = sg * _decode8(codes_g[i], normal)  # type: ignore[call-arg]
        Edx = sdx * _decode8(codes_dx[i], normal)
        raw = x[i]
        new_x, Eg, Edx, good = _update(
            _widened(raw, half, bf16), _widened(g[i], half, bf16), Eg_old, Edx, lr, rho,
            one_minus_rho, eps, wd, maximize, weight_decay, decoupled, False,
        )  # fmt: skip
        x[i] = _narrowed(new_x, half, bf16) if good else raw
        redo[i] = not good
        bad |= not good
        new_g[i], new_dx[i] = Eg, Edx
        min_g, max_g = min(min_g, _bits(Eg)), max(max_g, _bits(Eg))
        min_dx, max_dx = min(min_dx, _bits(Edx)), max(max_dx, _bits(Edx))
    return min_g, max_g, min_dx, max_dx, bad


@numba.njit(cache=True, error_model="numpy", inline="always")
def _float8_redo(
    x: Any,
    g: Any,
    codes_g: Any,
    codes_dx: Any,
    sg: Any,
    sdx: Any,
    new_g: Any,
    new_dx: Any,
    hyper: tuple[Any, Any, Any, Any, Any],
    flags: tuple[bool, bool, bool, bool, bool],
    redo: Any,
) -> tuple[Any, Any, Any, Any]:
    """The elements of a block marked in ``redo`` stepped again with the rule's two roots,
    from their old x and codes (not written yet); the block's extremes found anew."""
    lr, rho, one_minus_rho, eps, wd = hyper
    maximize, weight_decay, decoupled, half, bf16 = flags
    min_g, min_dx = np.uint32(0xFFFFFFFF), np.uint32(0xFFFFFFFF)
    max_g, max_dx = np.uint32(0), np.uint32(0)
    for i in range(x.size):
        if redo[i]:
            Eg_old = sg * _decode8(codes_g[i], False)  # type: ignore[call-arg]
            Edx = sdx * _decode8(codes_dx[i], False)
            new_x, new_g[i], new_dx[i], _ = _update(
                _widened(x[i], half, bf16), _widened(g[i], half, bf16), Eg_old, Edx, lr, rho,
                one_minus_rho, eps, wd, maximize, weight_decay, decoupled, True,
            )  # fmt: skip
            x[i] = _narrowed(new_x, half, bf16)
        Eg, Edx = new_g[i], new_dx[i]
        min_g, max_g = min(min_g, _bits(Eg)), max(max_g, _bits(Eg))  # type: ignore[call-arg]
        min_dx, max_dx = min(min_dx, _bits(Edx)), max(max_dx, _bits(Edx))
    return min_g, max_g, min_dx, max_dx


@numba.njit(cache=True, error_model="numpy", inline="always")
def _float8_encode(
    codes_g: Any,
    codes_dx: Any,
    new: tuple[Any, Any],
    inverses: tuple[Any, Any],
    key: Any,
    w: Any,
    stochastic: bool,
    normal: bool,
) -> Any:
    """The second pass over a block: the new values' codes; returns the next element's
    :func:`_weyl`. ``normal``: every new value over its scale is at least 2**-30."""
    (new_g, new_dx), (inv_g, inv_dx) = new, inverses
    for i in range(codes_g.size):
        r = _random(key, w) if stochastic else _NEAREST2  # type: ignore[call-arg]
        w = _next_weyl(w)  # type: ignore[call-arg]
        codes_g[i] = _encode8(new_g[i] * inv_g, _half(r, False), normal)
        codes_dx[i] = _encode8(new_dx[i] * inv_dx, _half(r, True), normal)
    return w


# a block's smallest value over its scale that is a normal code, as float32 bits
_SMALLEST_NORMAL8 = np.uint32(97 << 23)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _float8_loop(
    x: Any,
    g: Any,
    E_g2: Any,
    E_dx2: Any,
    scales: tuple[Any, Any],
    c: Any,
    t: int,
    key: Any,
    start: int,
    stochastic: bool,
    flags: tuple[bool, bool, bool, bool, bool],
) -> None:
    # Each block twice: decoded, updated and its largest values found; then encoded with the new
    # scales. Where every code (first pass) or every new value (second pass) of a block is a
    # normal one, as in most blocks, the pass is the normal codes' alone: no subnormal case,
    # which costs as much again, and the same codes.
    hyper = (c[t, 0], c[t, 1], c[t, 2], c[t, 3], c[t, 4])
    scale_g, scale_dx = scales
    new_g = np.empty(BLOCK, np.float32)  # a block's new values, before its new scale is known
    new_dx = np.empty(BLOCK, np.float32)
    redo = np.empty(BLOCK, np.bool_)  # the elements to step again with two roots
    w = _weyl(start)  # type: ignore[call-arg, var-annotated]
    for b in range(scale_g.size):
        lo = b * BLOCK
        n = min(BLOCK, x.size - lo)
        xb, gb = x[lo : lo + n], g[lo : lo + n]
        codes_g, codes_dx = E_g2[lo : lo + n], E_dx2[lo : lo + n]
        new_gb, new_dxb = new_g[:n], new_dx[:n]
        sg, sdx = scale_g[b], scale_dx[b]
        smallest = np.uint8(255)
        for i in range(n):
            smallest = min(smallest, min(codes_g[i], codes_dx[i]))
        redo_b = redo[:n]
        if smallest >= 8:
            min_g, max_g, min_dx, max_dx, bad = _float8_update(
                xb, gb, codes_g, codes_dx, sg, sdx, new_gb, new_dxb, hyper, flags, True, redo_b
            )
        else:
            min_g, max_g, min_dx, max_dx, bad = _float8_update(
                xb, gb, codes_g, codes_dx, sg, sdx, new_gb, new_dxb, hyper, flags, False, redo_b
            )
        if bad:
            min_g, max_g, min_dx, max_dx = _float8_redo(
                xb, gb, codes_g, codes_dx, sg, sdx, new_gb, new_dxb, hyper, flags, redo_b
            )
        sg = _float(max_g) / _F8_MAX
        sdx = _float(max_dx) / _F8_MAX
        scale_g[b], scale_dx[b] = sg, sdx
        inv_g = _ONE / sg if sg > _ZERO else _ZERO
        inv_dx = _ONE / sdx if sdx > _ZERO else _ZERO
        normal = (
            _bits(_float(min_g) * inv_g) >= _SMALLEST_NORMAL8
            and _bits(_float(min_dx) * inv_dx) >= _SMALLEST_NORMAL8
        )
        new, inverses = (new_gb, new_dxb), (inv_g, inv_dx)
        if stochastic and normal:
            w = _float8_encode(codes_g, codes_dx, new, inverses, key, w, True, True)
        elif stochastic:
            w = _float8_encode(codes_g, codes_dx, new, inverses, key, w, True, False)
        elif normal:
            w = _float8_encode(codes_g, codes_dx, new, inverses, key, w, False, True)
        else:
            w = _float8_encode(codes_g, codes_dx, new, inverses, key, w, False, False)


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _adadelta_float8(
    addresses: Any,
    chunks: Any,
    sizes: Any,
    check: bool,
    parts: int,
    c: Any,
    keys: Any,
    stochastic: bool,
    codes: Any,
    values: Any,
    maximize: bool,
    weight_decay: bool,
    decoupled: bool,
    half: bool,
    bf16: bool,
) -> int:
    # addresses rows: x, g, E[g^2], E[dx^2] (float8 codes), their scales; chunks in blocks
    if check:
        bad = _scan(addresses, chunks, sizes, BLOCK, parts, values)
        if bad >= 0:
            return bad
    ends = _ends(chunks)
    for p in numba.prange(parts):
        pieces = _pieces(chunks, ends, parts, p)
        for k in range(pieces.shape[0]):
            t, first, last = pieces[k, 0], pieces[k, 1], pieces[k, 2]
            start, end = first * BLOCK, min(last * BLOCK, sizes[t])
            x = _chunk(addresses, 0, t, start, end, values)
            g = _chunk(addresses, 1, t, start, end, values)
            E_g2 = _chunk(addresses, 2, t, start, end, codes)
            E_dx2 = _chunk(addresses, 3, t, start, end, codes)
            scale_g = _chunk(addresses, 4, t, first, last, c)
            scale_dx = _chunk(addresses, 5, t, first, last, c)
            scales, key = (scale_g, scale_dx), keys[t]
            flags = (maximize, weight_decay, decoupled, half, bf16)
            if stochastic:
                _float8_loop(x, g, E_g2, E_dx2, scales, c, t, key, start, True, flags)
            else:
                _float8_loop(x, g, E_g2, E_dx2, scales, c, t, key, start, False, flags)
    return -1


# --- the optimizer's side ---

_CODE_LIKE = {name: np.zeros(1, dtype) for name, dtype in _CODES.items()}
_FLOAT32_LIKE = np.zeros(1, np.float32)


def _fusable(x: FloatArray, state: Mapping[str, Any]) -> bool:
    """Whether the compiled loop can step ``x`` and its state in place (they are addressed as
    contiguous arrays); others go through :func:`reference_step`."""
    return x.dtype == np.float32 and all(
        flags.c_contiguous and flags.aligned and flags.writeable
        for flags in [x.flags, *(v.flags for v in state.values() if isinstance(v, np.ndarray))]
    )


class _Batch:
    """The arrays of one group that one compiled call updates: their address table and chunks,
    kept while the states hold the same arrays."""

    def __init__(self, state_dtype: str, params: Sequence[FloatArray], states: Sequence[StateDict]):
        self.params, self.states = list(params), list(states)
        keys = ["E_g2", "E_dx2"] + (list(_SCALES.values()) if state_dtype == "float8" else [])
        self.watched = [(s, key, s[key]) for s in states for key in keys]
        self.lengths = [len(s) for s in states]  # a key added or removed: not current
        arrays = [*self.params, *(a for _, _, a in self.watched)]
        # each array as the table describes it: not reshaped, retyped or made read-only since
        self.layouts = [(a, a.shape, a.dtype, a.flags.num) for a in arrays]
        self.addresses = np.array(
            [[_address(x) for x in params], [0] * len(params)]
            + [[_address(s[key]) for s in states] for key in keys],
            np.intp,
        )
        self.sizes = np.array([x.size for x in params], np.intp)
        self.elements = int(self.sizes.sum())
        units = self.sizes if state_dtype == "bfloat16" else -(-self.sizes // BLOCK)
        self.chunks = _chunks(units, _threads(self.elements))

    def current(self, params: Sequence[FloatArray], states: Sequence[StateDict]) -> bool:
        """Whether the table still describes ``params`` and ``states``: the same objects, the
        same arrays in the states, each of the same shape, dtype and flags, the same keys, and
        counts that are ints in [0, 2**63)."""
        if len(params) != len(self.params) or len(states) != len(self.states):
            return False
        if not all(map(operator.is_, params, self.params)):
            return False
        if not all(map(operator.is_, states, self.states)):
            return False
        for s, key, a in self.watched:
            if s.get(key) is not a:
                return False
        for s, length in zip(states, self.lengths, strict=True):
            step, seed = s.get("step"), s.get("seed")
            if len(s) != length or type(step) is not int or type(seed) is not int:
                return False
            if not (0 <= step < 1 << 63 and 0 <= seed < 1 << 63):
                return False
        for a, shape, dtype, flags in self.layouts:
            if a.shape != shape or a.dtype is not dtype or a.flags.num != flags:
                return False
        return True


_VERSIONS: dict[tuple[Any, bool, bool, bool], Any] = {}


def _version(
    kernel: Any,
    arguments: tuple[Any, ...],
    flags: tuple[bool, ...],
    widths: tuple[bool, bool] = (False, False),
) -> Any:
    """``kernel``'s entry point for a call with these ``arguments``, ``flags`` (maximize,
    weight decay, decoupled) and ``widths`` (half: 16-bit parameters and gradients; bf16:
    bfloat16 ones, else float16), its last arguments. Where no flag is set, as in the paper's
    ADADELTA, a version compiled with the flags as constants (False): LLVM leaves their cases
    out of the loop, where they cost a branch each per element (between matrix products, a
    bfloat16 step of 1e7 parameters took 12.1 ms with them, 11.5 without:
    ``benchmarks/results/compact_speed.md``). Otherwise one version that reads them at run
    time. ``widths`` are always constants. So at most two versions of each kernel are compiled
    for each parameter dtype (and cached on disk). The other arguments' types are the same on
    every call (:meth:`Stepper._fused_step` and the PyTorch drop-in make them so)."""
    plain = not any(flags)
    key = (kernel, plain, *widths)
    version = _VERSIONS.get(key)
    if version is None:
        signature = tuple(numba.typeof(a) for a in arguments)  # type: ignore[no-untyped-call]
        if plain:
            signature += tuple(types.literal(False) for _ in flags)  # type: ignore[no-untyped-call]
        else:
            signature += (types.boolean,) * len(flags)
        signature += tuple(types.literal(w) for w in widths)  # type: ignore[no-untyped-call]
        kernel.compile(signature)
        version = _VERSIONS[key] = kernel.overloads[signature].entry_point
        ELEMENT_COST[version] = ELEMENT_COST[kernel]
    return version


# an element's cost relative to the float32 kernel's (see adadelta.kernels.parallel's
# ELEMENT_COST), measured by ``python benchmarks/element_cost.py``
ELEMENT_COST.update({_adadelta_bfloat16: 0.57 / 0.45, _adadelta_float8: 0.84 / 0.45})


class Stepper:
    """Steps an :class:`adadelta.Adadelta`'s parameters whose state is compact: one compiled
    call per group for the contiguous float32 arrays, :func:`reference_step` for the others
    (and for all with ``fused = False``). ``stochastic = False`` rounds to nearest instead (a
    hook for the tests)."""

    def __init__(self, state_dtype: str, seed: int) -> None:
        self.state_dtype, self.seed = state_dtype, seed
        self.stochastic = True
        self._batches: dict[int, _Batch] = {}  # group index -> its batch

    def __getstate__(self) -> dict[str, Any]:
        # copies (copy.deepcopy, pickle) leave the address tables behind: they hold the
        # original's addresses, and the copy builds its own on its first step
        return {k: v for k, v in self.__dict__.items() if k != "_batches"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._batches = {}

    def kept(
        self, leaves: Sequence[Sequence[FloatArray]], states: Sequence[StateDict], fused: bool
    ) -> bool:
        """Whether every parameter is in a batch that is still :meth:`_Batch.current` (its
        arrays need no new check): not on the first step, with ``fused = False``, or with
        arrays that the compiled loop cannot take."""
        if not fused or len(self._batches) != len(leaves):
            return False
        position = 0
        for g, params in enumerate(leaves):
            batch = self._batches.get(g)
            group_states = states[position : position + len(params)]
            if batch is None or not batch.current(params, group_states):
                return False
            position += len(params)
        return True

    def step(
        self,
        groups: Sequence[Mapping[str, Any]],
        leaves: Sequence[Sequence[FloatArray]],
        states: Sequence[StateDict],
        grads: Sequence[Sequence[FloatArray]],
        fused: bool,
        check: bool = False,
    ) -> int:
        """One step of every parameter; -1. With ``check``, the gradients are checked first:
        if one holds NaN or infinity, its position (over all groups) and nothing changed. One
        group of contiguous arrays whose states exist (every step after the first) is checked in
        the kernel's call, before it writes; others by one pass of
        :func:`adadelta.kernels.first_non_finite`."""
        folded = (
            check
            and fused
            and len(leaves) == 1
            and all("E_g2" in s for s in states)
            and all(_fusable(x, s) for x, s in zip(leaves[0], states, strict=True))
        )
        if check and not folded:
            bad = first_non_finite([gr for group_grads in grads for gr in group_grads])
            if bad >= 0:
                return bad
        position = 0
        for g, (group, params) in enumerate(zip(groups, leaves, strict=True)):
            hyper = {k: group[k] for k in ("lr", "rho", "eps", "weight_decay")}
            hyper.update(
                decoupled_weight_decay=group["decoupled_weight_decay"], maximize=group["maximize"]
            )
            group_states = states[position : position + len(params)]
            for i, state in enumerate(group_states):
                if "E_g2" not in state:
                    state.update(empty_state(params[i], self.state_dtype))
                state.setdefault("seed", parameter_seed(self.seed, position + i))
            position += len(params)
            fusable = [i for i, x in enumerate(params) if fused and _fusable(x, group_states[i])]
            if not fusable:
                self._batches.pop(g, None)
            for i in range(len(params)):
                if i not in fusable:
                    reference_step(
                        params[i],
                        grads[g][i],
                        group_states[i],
                        self.state_dtype,
                        hyper,
                        stochastic=self.stochastic,
                    )
            if fusable:
                bad = self._fused_step(
                    g,
                    hyper,
                    [params[i] for i in fusable],
                    [group_states[i] for i in fusable],
                    [grads[g][i] for i in fusable],
                    folded,
                )
                if bad >= 0:  # folded: one group, every array fused
                    return bad
        return -1

    def _fused_step(
        self,
        g: int,
        hyper: Mapping[str, Any],
        params: list[FloatArray],
        states: list[StateDict],
        grads: list[FloatArray],
        check: bool,
    ) -> int:
        batch = self._batches.get(g)
        if batch is None or not batch.current(params, states):
            batch = self._batches[g] = _Batch(self.state_dtype, params, states)
        contiguous = [np.ascontiguousarray(gr) for gr in grads]  # held until the call ends
        batch.addresses[1] = [_address(gr) for gr in contiguous]
        rho, wd = hyper["rho"], hyper["weight_decay"]
        row = [hyper["lr"], rho, 1 - rho, hyper["eps"], wd]
        c = np.array([row] * len(params), np.float32)
        keys = np.array([stream_key(s["seed"], s["step"]) for s in states], np.uint64)
        flags = (bool(hyper["maximize"]), bool(wd != 0), bool(hyper["decoupled_weight_decay"]))
        like = _CODE_LIKE[self.state_dtype]
        kernel = _adadelta_bfloat16 if self.state_dtype == "bfloat16" else _adadelta_float8
        parts = min(_threads(batch.elements), batch.chunks.shape[0])
        arguments: tuple[Any, ...] = (batch.addresses, batch.chunks, batch.sizes, bool(check))
        arguments += (int(parts), c, keys, bool(self.stochastic), like, _FLOAT32_LIKE)
        version = _version(kernel, arguments, flags)
        bad = int(_launch(version, batch.elements, *arguments, *flags, False, False))
        if bad < 0:
            for s in states:
                s["step"] += 1
        return bad
