r"""ADADELTA as an optax transformation that descends by default, with compact state.

>>> import jax, jax.numpy as jnp, optax
>>> from adadelta.optax import adadelta
>>> loss = lambda x: jnp.sum(x**2)
>>> x = jnp.array([3.0, -2.0])
>>> opt = adadelta()                      # the paper's rho=0.95, eps=1e-6, no learning rate
>>> state, update = opt.init(x), jax.jit(opt.update)
>>> for _ in range(200):
...     updates, state = update(jax.grad(loss)(x), state, x)
...     x = optax.apply_updates(x, updates)
>>> print(f"{float(loss(x)):.3f}")        # from 13.000: it went down
5.736

:func:`adadelta` returns an :class:`optax.GradientTransformationExtraArgs` whose updates are
descent directions, to be added with :func:`optax.apply_updates`; :func:`scale_by_adadelta`
is the building block for :func:`optax.chain` (the step before any learning rate, with the
gradient's sign, like ``optax.scale_by_adadelta``). The arithmetic is the fused kernels' of
:mod:`adadelta.kernels` (one square root of the quotient), in float32, or in float64 for
float64 gradients:

.. math::

    E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) g_t^2, \quad
    \Delta x_t = -\sqrt{\frac{E[\Delta x^2]_{t-1} + \epsilon}{E[g^2]_t + \epsilon}}\, g_t, \quad
    E[\Delta x^2]_t = \rho E[\Delta x^2]_{t-1} + (1-\rho) \Delta x_t^2

and the update is ``learning_rate * dx`` (the learning rate may be an optax schedule of the
step count).

State (:class:`AdadeltaState`: the step count, E[g^2] and E[dx^2] as pytrees like the
parameters) in one of these formats, for both accumulators (``state_dtype="bfloat16"``) or for
each (``state_dtype={"E_g2": "float32", "E_dx2": "float8"}``):

- ``None``: the parameters' dtype (rounded to nearest where that is narrower than float32);
- ``"float32"``: float32, whatever the parameters' dtype (e.g. for bfloat16 parameters);
- ``"bfloat16"``: ``jnp.bfloat16`` arrays, 2 bytes a value, written with stochastic rounding
  whose random bits are those of :mod:`adadelta.kernels.compact`;
- ``"float8"``: :class:`Float8` leaves, the library's blockwise format (a uint8 code per value,
  a float32 scale per block of 256 values of the flattened array, 2.03 bytes a value), also
  stochastically rounded with those bits.

For float32 parameters on the CPU, the parameters and the state after each step have the same
bits as :class:`adadelta.Adadelta`'s with the same ``state_dtype`` (None, ``"bfloat16"`` or
``"float8"``) and ``seed``, parameter ``i`` being the ``i``-th leaf of
``jax.tree.leaves(params)`` (``dict`` leaves in sorted key order).

Non-finite gradients: by default (``check_finite=False``) they propagate into the update and
the state, as in ``optax.adadelta`` (and as in the PyTorch drop-in, which follows
``torch.optim.Adadelta``). With ``check_finite=True`` a step whose gradients hold NaN or
infinity is refused, as :class:`adadelta.Adadelta` refuses it: the update is all zeros and the
returned state is the one given (the count included), for every leaf if any gradient holds one.
Under ``jax.jit`` nothing can raise; test ``state.count`` to notice. The check is off by default
because XLA makes it costly with many leaves (a reduction and selects on each; with 200 tensors
it slowed the step and its compilation many times over in ``benchmarks/jax_step.py``).

Errors: invalid hyperparameters, presets and state dtypes raise ``ValueError`` at
construction; a state of another structure, shape or dtype than ``init`` makes raises
``ValueError`` in ``update`` (when it is traced), naming the leaf.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

try:
    import jax
    import jax.numpy as jnp
    import optax
except ModuleNotFoundError as error:  # pragma: no cover - exercised in a subprocess
    if error.name not in ("jax", "jaxlib", "optax"):
        raise
    raise ImportError(
        "adadelta.optax needs JAX and optax, which are not installed; "
        'install the extra with: pip install "adadelta[jax]"'
    ) from error

import numpy as np
from jax import lax

from adadelta.kernels import compact
from adadelta.optimizers import non_negative, positive, unit_interval
from adadelta.presets import PRESETS

__all__ = [
    "FORMATS",
    "AdadeltaState",
    "Float8",
    "adadelta",
    "scale_by_adadelta",
    "state_bytes",
]

FORMATS = (None, "float32", "bfloat16", "float8")
ACCUMULATORS = ("E_g2", "E_dx2")
Schedule = Callable[[jax.Array], jax.Array]


class Float8(NamedTuple):
    """One array in the float8 format of :mod:`adadelta.kernels.compact`: ``codes`` (uint8,
    the array's shape) and ``scales`` (float32, one per block of 256 values of the flattened
    array)."""

    codes: jax.Array
    scales: jax.Array


class AdadeltaState(NamedTuple):
    """The state of :func:`adadelta` and :func:`scale_by_adadelta`."""

    count: jax.Array  # type: ignore[assignment]  # int32: the steps taken (not refused ones)
    E_g2: Any  # E[g^2]: a pytree like the parameters (Float8 leaves for "float8")
    E_dx2: Any  # E[dx^2]: likewise


# --- validation ---


def _formats(state_dtype: Any) -> tuple[str | None, str | None]:
    def check(name: str, value: Any) -> str | None:
        if value is not None and not (isinstance(value, str) and value in FORMATS):
            raise ValueError(
                f"Invalid {name} value: {value!r} (must be None or one of {list(FORMATS[1:])})"
            )
        return value

    if isinstance(state_dtype, Mapping):
        unknown = sorted(str(k) for k in state_dtype if k not in ACCUMULATORS)
        if unknown:
            raise ValueError(
                f"Invalid state_dtype keys: {unknown} (must be among {list(ACCUMULATORS)})"
            )
        return (
            check("state_dtype['E_g2']", state_dtype.get("E_g2")),
            check("state_dtype['E_dx2']", state_dtype.get("E_dx2")),
        )
    value = check("state_dtype", state_dtype)
    return value, value


def _seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Invalid seed value: {seed!r} (must be a non-negative integer)")
    return int(seed)


def _learning_rate(value: Any) -> float | Schedule:
    if callable(value):
        return value  # type: ignore[no-any-return]
    return non_negative("learning_rate", value)


# --- the random bits of adadelta.kernels.compact, in 32-bit integer arithmetic ---


class _U64(NamedTuple):
    """A 64-bit unsigned integer as two uint32 arrays (JAX has no uint64 without x64)."""

    hi: jax.Array
    lo: jax.Array


def _mul_wide(a: jax.Array, b: jax.Array) -> _U64:
    """The 64-bit product of two uint32 arrays, from their 16-bit halves."""
    a0, a1, b0, b1 = a & 0xFFFF, a >> 16, b & 0xFFFF, b >> 16
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    middle = (p00 >> 16) + (p01 & 0xFFFF) + (p10 & 0xFFFF)
    return _U64(p11 + (p01 >> 16) + (p10 >> 16) + (middle >> 16), a * b)


def _mul64(x: _U64, constant: int) -> _U64:
    """``x * constant`` modulo 2**64."""
    high, low = np.uint32(constant >> 32), np.uint32(constant & 0xFFFFFFFF)
    product = _mul_wide(x.lo, jnp.full_like(x.lo, low))
    return _U64(product.hi + x.hi * low + x.lo * high, product.lo)


def _xorshift(x: _U64, k: int) -> _U64:
    """``x ^ (x >> k)`` for 0 < k < 32."""
    return _U64(x.hi ^ (x.hi >> k), x.lo ^ ((x.lo >> k) | (x.hi << (32 - k))))


def _mix(x: _U64) -> _U64:
    """splitmix64's finalizer (:func:`adadelta.kernels.compact._mix`)."""
    x = _mul64(_xorshift(x, 30), compact._MIX1)
    x = _mul64(_xorshift(x, 27), compact._MIX2)
    return _xorshift(x, 31)


def _stream_keys(seeds: list[int], count: jax.Array) -> jax.Array:
    """:func:`adadelta.kernels.compact.stream_key` of each seed at step ``count``: uint32."""
    step = count.astype(jnp.uint32) + np.uint32(1)
    mixed_step = _mix(_mul64(_U64(jnp.zeros_like(step), step), compact._GOLDEN))
    hi = jnp.asarray(np.array([s >> 32 for s in seeds], np.uint32))
    lo = jnp.asarray(np.array([s & 0xFFFFFFFF for s in seeds], np.uint32))
    return _mix(_U64(hi ^ mixed_step.hi, lo ^ mixed_step.lo)).hi


def _random_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """:func:`adadelta.kernels.compact.random_bits` of every element (its index in the
    flattened array), in ``shape``: uint32."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for axis in reversed(range(len(shape))):
        index = index + lax.broadcasted_iota(jnp.uint32, shape, axis) * np.uint32(
            stride & 0xFFFFFFFF
        )
        stride *= shape[axis]
    z = key ^ (index * np.uint32(compact._WEYL))
    z = (z ^ (z >> 16)) * np.uint32(compact._LOWBIAS1)
    bits: jax.Array = z ^ (z >> 15)
    return bits


# --- the formats ---


_FLOAT8_MAX_BITS = np.float32(compact.FLOAT8_MAX).view(np.uint32)


def _per_element(per_block: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Each block's value repeated for its elements, in ``shape`` (a broadcast, a reshape and
    a slice: XLA computes it inside the loop that uses it, storing nothing)."""
    blocks = per_block.shape[0]
    repeated = jnp.broadcast_to(per_block[:, None], (blocks, compact.BLOCK)).reshape(-1)
    return repeated[: math.prod(shape)].reshape(shape)


def _block_max(values: jax.Array) -> jax.Array:
    """The largest value of each block of ``BLOCK`` values of the flattened array (0 for an
    empty block). The whole blocks are a reshape of a slice and the last, partial one a slice:
    no padded copy of the array."""
    flat = values.reshape(-1)
    whole = flat.size // compact.BLOCK
    maxima = [flat[: whole * compact.BLOCK].reshape(whole, compact.BLOCK).max(axis=1)]
    if flat.size > whole * compact.BLOCK:
        maxima.append(flat[whole * compact.BLOCK :].max(keepdims=True))
    return jnp.concatenate(maxima) if len(maxima) > 1 else maxima[0]


def _rounded(value: jax.Array, zero: jax.Array) -> jax.Array:
    """``value``, rounded by itself: XLA's CPU compiler fuses a product and the sum it feeds
    into one multiply-add, rounded once, which the kernels of :mod:`adadelta.kernels` (and
    NumPy) do not; an OR with a zero that it cannot see is zero (``zero``: a uint of the
    value's width) keeps the product apart, at the cost of one integer operation."""
    bits = lax.bitcast_convert_type(value, zero.dtype)
    return lax.bitcast_convert_type(bits | zero, value.dtype)


def _decode(stored: Any, shape: tuple[int, ...], zero: jax.Array) -> jax.Array:
    """The float32 (or wider) values of one stored accumulator."""
    if isinstance(stored, Float8):
        c = stored.codes.astype(jnp.uint32)
        normal = lax.bitcast_convert_type((c + 768) << 20, jnp.float32)
        values = jnp.where(c >= 8, normal, c.astype(jnp.float32) * np.float32(2.0**-33))
        return _rounded(_per_element(stored.scales, shape) * values, zero)
    decoded: jax.Array = stored.astype(jnp.float32) if stored.dtype == jnp.bfloat16 else stored
    return decoded  # bfloat16 to float32 is exact


def _encode(
    values: jax.Array, bits: jax.Array, form: str | None, like: Any, zero: jax.Array
) -> Any:
    """``values`` stored in format ``form`` (``like``: the stored array they replace),
    rounded up with the probability ``bits / 2**16`` of the way to the next code; ``zero``:
    a uint32 zero that XLA cannot see is zero (:func:`_rounded`)."""
    if form == "bfloat16":
        u = lax.bitcast_convert_type(values.astype(jnp.float32), jnp.uint32)
        return lax.bitcast_convert_type(((u + bits) >> 16).astype(jnp.uint16), jnp.bfloat16)
    if form == "float8":
        v = values.astype(jnp.float32)
        largest = _block_max(v)
        # XLA multiplies by the reciprocal of a constant divisor, which may round differently
        opaque = (lax.bitcast_convert_type(largest, jnp.uint32) & zero) | _FLOAT8_MAX_BITS
        scales = largest / lax.bitcast_convert_type(opaque, jnp.float32)
        inverse = jnp.where(scales > 0, np.float32(1) / jnp.where(scales > 0, scales, 1), 0)
        q = v * _per_element(inverse, v.shape)
        u = lax.bitcast_convert_type(q, jnp.uint32)
        normal = jnp.minimum((u + (bits << 4)) >> 20, np.uint32(1023)) - np.uint32(768)
        fraction = bits.astype(jnp.float32) * np.float32(2.0**-16)
        scaled = _rounded(q * np.float32(2.0**33), zero) + _rounded(fraction, zero)
        subnormal = scaled.astype(jnp.int32).astype(jnp.uint32)
        codes = jnp.where(u < np.uint32(97 << 23), subnormal, normal).astype(jnp.uint8)
        return Float8(codes, scales.astype(jnp.float32))
    return values.astype(like.dtype)


def _empty(p: Any, form: str | None) -> Any:
    """Zero state for parameter (or ``jax.ShapeDtypeStruct``) ``p`` in format ``form``."""
    if form is None:
        return jnp.zeros_like(p)
    if form == "float8":
        size = math.prod(p.shape)
        scales = jnp.zeros(-(-size // compact.BLOCK), jnp.float32)
        return Float8(jnp.zeros_like(p, dtype=jnp.uint8), scales)
    return jnp.zeros_like(p, dtype=jnp.dtype(form))


def state_bytes(state: AdadeltaState) -> int:
    """The bytes of ``state``'s arrays (E[g^2], E[dx^2] and the count)."""
    return sum(int(leaf.size) * leaf.dtype.itemsize for leaf in jax.tree.leaves(state))


# --- the transformation ---


def _check_state(state: Any, updates: Any, forms: tuple[str | None, ...]) -> list[list[Any]]:
    """The state's accumulators as lists of leaves in the updates' order, after checking that
    they are what ``init`` makes for parameters like ``updates``; raises ValueError."""
    if not isinstance(state, AdadeltaState):
        raise ValueError(
            f"adadelta: the state must be the AdadeltaState that init returned, got "
            f"{type(state).__name__}"
        )
    paths_leaves, treedef_ = jax.tree_util.tree_flatten_with_path(updates)
    treedef: Any = treedef_
    accumulators = []
    for name, form in zip(ACCUMULATORS, forms, strict=True):
        tree = getattr(state, name)
        try:
            leaves = treedef.flatten_up_to(tree)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"adadelta: state.{name} does not have the structure of the updates "
                f"({treedef}): {error}"
            ) from None
        for (path, g), stored in zip(paths_leaves, leaves, strict=True):
            where = f"state.{name}{jax.tree_util.keystr(path)}"
            _check_leaf(where, stored, g, form)
        accumulators.append(leaves)
    if jnp.shape(state.count) != () or jnp.result_type(state.count) != jnp.int32:
        raise ValueError(f"adadelta: state.count must be an int32 scalar, got {state.count!r}")
    return accumulators


def _check_leaf(where: str, stored: Any, g: Any, form: str | None) -> None:
    shape = jnp.shape(g)
    if form == "float8":
        blocks = -(-math.prod(shape) // compact.BLOCK)
        ok = (
            isinstance(stored, Float8)
            and stored.codes.shape == shape
            and stored.codes.dtype == jnp.uint8
            and stored.scales.shape == (blocks,)
            and stored.scales.dtype == jnp.float32
        )
        expected = f"Float8(uint8 {shape}, float32 ({blocks},))"
    else:
        dtype = None if form is None else jnp.dtype(form)
        ok = (
            hasattr(stored, "shape")
            and hasattr(stored, "dtype")
            and stored.shape == shape
            and jnp.issubdtype(stored.dtype, jnp.floating)
            and (dtype is None or stored.dtype == dtype)
        )
        expected = f"{'floating' if dtype is None else dtype} array of shape {shape}"
    if not ok:
        got = (
            f"Float8(codes {stored.codes.dtype} {stored.codes.shape})"
            if isinstance(stored, Float8)
            else f"{getattr(stored, 'dtype', type(stored).__name__)} {getattr(stored, 'shape', '')}"
        )
        raise ValueError(f"adadelta: {where} must be a {expected}, got {got}")


def _transformation(
    learning_rate: float | Schedule,
    rho: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    sign: float,
    state_dtype: Any,
    seed: Any,
    check_finite: Any,
) -> optax.GradientTransformationExtraArgs:
    forms = _formats(state_dtype)
    seed = _seed(seed)
    if not isinstance(check_finite, (bool, np.bool_)):
        raise ValueError(f"Invalid check_finite value: {check_finite!r} (must be True or False)")
    stochastic = any(form in compact.FORMATS for form in forms)

    def init_fn(params: Any) -> AdadeltaState:
        for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
            if not jnp.issubdtype(p.dtype, jnp.floating):
                raise ValueError(
                    f"adadelta: params{jax.tree_util.keystr(path)} has dtype {p.dtype}; "
                    "ADADELTA needs floating-point parameters"
                )
        return AdadeltaState(
            count=jnp.zeros([], jnp.int32),
            E_g2=jax.tree.map(lambda p: _empty(p, forms[0]), params),
            E_dx2=jax.tree.map(lambda p: _empty(p, forms[1]), params),
        )

    def update_fn(
        updates: Any, state: AdadeltaState, params: Any = None, **extra_args: Any
    ) -> tuple[Any, AdadeltaState]:
        del extra_args
        stored_g2, stored_dx2 = _check_state(state, updates, forms)
        grads, treedef_ = jax.tree.flatten(updates)
        treedef: Any = treedef_
        if weight_decay != 0:
            if params is None:
                raise ValueError("adadelta: weight_decay needs the params in update")
            xs = treedef.flatten_up_to(params)
        else:
            xs = [None] * len(grads)
        keys = None
        if stochastic and grads:
            seeds = [compact.parameter_seed(seed, i) for i in range(len(grads))]
            keys = _stream_keys(seeds, state.count)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate

        def step() -> tuple[list[Any], list[Any], list[Any], jax.Array]:
            new_updates, new_g2, new_dx2 = [], [], []
            for i, (g, x, old_g2, old_dx2) in enumerate(
                zip(grads, xs, stored_g2, stored_dx2, strict=True)
            ):
                bits = None if keys is None else _random_bits(keys[i], jnp.shape(g))
                u, e_g2, e_dx2 = _leaf_step(g, x, old_g2, old_dx2, lr, bits, state.count)
                new_updates.append(u)
                new_g2.append(e_g2)
                new_dx2.append(e_dx2)
            return new_updates, new_g2, new_dx2, optax.safe_increment(state.count)

        def refuse() -> tuple[list[Any], list[Any], list[Any], jax.Array]:
            zeros = [jnp.zeros_like(g) for g in grads]
            return zeros, list(stored_g2), list(stored_dx2), state.count

        if check_finite and grads:
            # NaN where any gradient holds NaN or infinity (inf - inf is NaN), else 0
            probe = sum(jnp.sum(g - g, dtype=jnp.float32) for g in grads)
            finite = jnp.isfinite(probe)
            keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
            new_updates, new_g2, new_dx2, count = jax.tree.map(keep, step(), refuse())
        else:
            new_updates, new_g2, new_dx2, count = step()
        return treedef.unflatten(new_updates), AdadeltaState(
            count, treedef.unflatten(new_g2), treedef.unflatten(new_dx2)
        )

    def _leaf_step(
        g: jax.Array,
        x: Any,
        old_g2: Any,
        old_dx2: Any,
        lr: Any,
        bits: jax.Array | None,
        count: jax.Array,
    ) -> tuple[jax.Array, Any, Any]:
        c = jnp.promote_types(g.dtype, jnp.float32)  # the arithmetic's dtype
        uint = jnp.uint64 if c == jnp.float64 else jnp.uint32
        zero = count.astype(uint) >> 31  # 0, unknown to XLA: count is a non-negative int32
        zero32 = count.astype(jnp.uint32) >> 31

        def rounded(value: jax.Array) -> jax.Array:
            return _rounded(value, zero)

        rho_, one_minus_rho, eps_ = (jnp.asarray(v, c) for v in (rho, 1 - rho, eps))
        lr_, wd = jnp.asarray(lr, c), jnp.asarray(weight_decay, c)
        gc = g.astype(c)
        if weight_decay != 0 and not decoupled:
            gc = gc + rounded(wd * x.astype(c))
        E_g2 = _decode(old_g2, g.shape, zero32).astype(c)
        E_dx2 = _decode(old_dx2, g.shape, zero32).astype(c)
        E_g2 = rounded(rho_ * E_g2) + rounded(one_minus_rho * gc * gc)  # line 4: gradient first
        # line 5, one root (the kernels'), written twice: for the update and for line 6.
        # XLA stores a value that two outputs use and costs more than a few operations (here
        # the square root and the quotient) in memory, then reads it back in both; two copies
        # that it cannot tell are the same are computed in each output's loop instead
        other_zero = jnp.abs(count).astype(uint) >> 31  # also 0, and not the same expression
        dx = -jnp.sqrt((E_dx2 + eps_) / (E_g2 + eps_)) * gc
        dx_again = -jnp.sqrt((_rounded(E_dx2, other_zero) + eps_) / (E_g2 + eps_)) * gc
        E_dx2 = rounded(rho_ * E_dx2) + rounded(one_minus_rho * dx_again * dx_again)  # line 6
        u = rounded(lr_ * dx) if sign < 0 else -dx
        if weight_decay != 0 and decoupled:
            u = u - rounded(x.astype(c) * wd * lr_)
        bits_g = None if bits is None else bits & np.uint32(0xFFFF)
        bits_dx = None if bits is None else bits >> 16
        return (
            u.astype(g.dtype),
            _encode(E_g2, bits_g, forms[0], old_g2, zero32),  # type: ignore[arg-type]
            _encode(E_dx2, bits_dx, forms[1], old_dx2, zero32),  # type: ignore[arg-type]
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def adadelta(
    learning_rate: float | Schedule | None = None,
    rho: float | None = None,
    eps: float | None = None,
    weight_decay: float = 0.0,
    *,
    preset: str = "paper",
    state_dtype: str | Mapping[str, str | None] | None = None,
    seed: int = 0,
    check_finite: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""ADADELTA (Zeiler, 2012, arXiv:1212.5701) whose updates descend the loss.

    Parameters
    ----------
    learning_rate : float >= 0, or an optax schedule of the step count, optional
        Scales the update only (E[dx^2] accumulates the step before it). ``None`` (the
        default) takes the preset's: 1.0 for ``"paper"``, ``"torch"`` and ``"optax"``, 0.001
        for ``"keras"`` and ``"tf1"``.
    rho : float in [0, 1), optional
        Decay rate of both running averages; ``None``: the preset's (0.95 for ``"paper"``).
    eps : float > 0, optional
        Added inside both square roots; ``None``: the preset's (1e-6 for ``"paper"``).
    weight_decay : float >= 0, default 0.0
        Added to the gradient as ``weight_decay * params`` (``"keras"``: decoupled, the update
        also takes ``params * weight_decay * learning_rate`` off). Needs ``params`` in
        ``update``.
    preset : {"paper", "torch", "optax", "keras", "tf1"}, default "paper"
        Whose defaults to use (:data:`adadelta.PRESETS`); explicit arguments override them.
    state_dtype : None, "float32", "bfloat16" or "float8", or a dict of them by accumulator
        The format of E[g^2] and E[dx^2] (see the module's documentation); e.g.
        ``{"E_g2": "bfloat16", "E_dx2": "float8"}``.
    seed : int >= 0, default 0
        The seed of the stochastic rounding of ``"bfloat16"`` and ``"float8"`` state.
    check_finite : bool, default False
        ``True``: an update whose gradients hold NaN or infinity is zeros and leaves the state
        as it was. It costs a pass over the gradients and, with many leaves, much of the step's
        speed and compile time (``benchmarks/results/jax_step.md``); ``False`` lets them
        through, as optax does.

    Examples
    --------
    The first step is ``-sqrt(eps) / sqrt((1 - rho) g^2 + eps) * g``:

    >>> import jax.numpy as jnp
    >>> opt = adadelta()
    >>> updates, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
    >>> print(f"{float(updates[0]):.9f}")  # -sqrt(1e-6) / sqrt(0.05 * 4 + 1e-6) * 2
    -0.004472125
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"Invalid preset value: {preset!r} (must be one of {sorted(PRESETS)})")
    p = PRESETS[preset]
    return _transformation(
        _learning_rate(p.lr if learning_rate is None else learning_rate),
        unit_interval("rho", p.rho if rho is None else rho),
        positive("eps", p.eps if eps is None else eps),
        non_negative("weight_decay", weight_decay),
        p.decoupled_weight_decay,
        -1.0,
        state_dtype,
        seed,
        check_finite,
    )


def scale_by_adadelta(
    rho: float = 0.95,
    eps: float = 1e-6,
    *,
    state_dtype: str | Mapping[str, str | None] | None = None,
    seed: int = 0,
    check_finite: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""The ADADELTA step as a building block: the gradient scaled by
    :math:`\sqrt{(E[\Delta x^2]_{t-1} + \epsilon) / (E[g^2]_t + \epsilon)}`, with the
    gradient's sign, like ``optax.scale_by_adadelta``: follow it with a negative scale, e.g.
    ``optax.chain(scale_by_adadelta(), optax.scale_by_learning_rate(1.0))``. The state and its
    options are :func:`adadelta`'s.

    >>> import jax.numpy as jnp, optax
    >>> opt = optax.chain(scale_by_adadelta(), optax.scale_by_learning_rate(1.0))
    >>> updates, _ = opt.update(jnp.array([2.0]), opt.init(jnp.zeros(1)))
    >>> print(f"{float(updates[0]):.9f}")
    -0.004472125
    """
    return _transformation(
        1.0,
        unit_interval("rho", rho),
        positive("eps", eps),
        0.0,
        False,
        1.0,
        state_dtype,
        seed,
        check_finite,
    )
