"""The drop-in's compact state (``state_dtype="bfloat16"`` or ``"float8"``): its policy and
checks, its state tensors (the codes of :mod:`adadelta.kernels.compact` under PyTorch's names),
its step (:class:`_CompactBatch`: one compiled call for the compact tensors of a group), and
:func:`convert_state` between it and ``torch.optim.Adadelta``'s float32 state."""

from __future__ import annotations

import bisect
import importlib.util
from collections.abc import Mapping
from typing import Any

import numba
import numpy as np
import torch

from adadelta.kernels import compact
from adadelta.kernels.parallel import _chunk, _chunks, _launch, _threads
from adadelta.optimizers import (
    StateLayout,
    _check_disjoint,
    _check_gradients_apart,
    _checked_record,
    _spans,
)
from adadelta.optimizers import convert_state as convert_numpy_state
from adadelta.torch.common import _PLAIN_TENSOR_TYPES, Tensors, _numpy, _scalar_dtype

# Tensors with fewer elements keep float32 state in a group with compact state: a few hundred
# biases and norms hold a negligible part of a model's state, and each compact tensor costs
# its per-tensor work (bitsandbytes' and torchao's 8-bit optimizers use the same threshold).
MIN_COMPACT_SIZE = 4096

# the parameter dtypes that compact state serves: (half, bf16), the kernels' widths
_WIDTHS = {
    torch.float32: (False, False),
    torch.bfloat16: (True, True),
    torch.float16: (True, False),
}
_VALUES_LIKE = {False: np.zeros(1, np.float32), True: np.zeros(1, np.uint16)}
_STEP_LIKE = np.zeros(1, np.int64)


def _format(group: Mapping[str, Any], p: torch.Tensor) -> str | None:
    """The state format of ``p`` in ``group``: its ``state_dtype`` where ``p`` has at least its
    ``min_compact_size`` elements, else None (float32 state, ``torch.optim.Adadelta``'s)."""
    state_dtype: str | None = group.get("state_dtype")
    if state_dtype is None or p.numel() < group["min_compact_size"]:
        return None
    return state_dtype


@numba.njit(cache=True)
def _next_keys(steps: Any, seeds: Any, keys: Any, like: Any) -> None:  # pragma: no cover
    """For each parameter t: the key of this step's random bits from its seed and its step
    count (an int64 scalar at address ``steps[0, t]``), and the count plus one."""
    for t in range(seeds.size):
        count = _chunk(steps, 0, t, 0, 1, like)
        keys[t] = compact._stream_key64(seeds[t], np.uint64(count[0]))
        count[0] += 1


class _KeyStream:
    """The keys of the random bits of a batch's parameters, one step after another: their
    seeds and the addresses of their step counts (int64 CPU scalars, on every device), and
    ``keys``, the array that :meth:`advance` fills in place."""

    def __init__(self, states: list[dict[str, Any]]) -> None:
        self.seeds = np.array([s["seed"] for s in states], np.uint64)
        self.steps = np.array([[s["step"].data_ptr() for s in states]], np.intp)
        self.keys = np.zeros(len(states), np.uint64)

    def advance(self) -> np.ndarray[Any, np.dtype[np.uint64]]:
        """This step's keys (:func:`_next_keys`), the counts plus one."""
        _next_keys(self.steps, self.seeds, self.keys, _STEP_LIKE)
        return self.keys


def _hyper_row(hyper: list[Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The hyperparameters (``_hyper``'s values) as the compact kernels read them: lr, rho,
    1 - rho, eps and weight_decay, each rounded once to float32."""
    lr, rho, eps, wd, _, _ = hyper
    return np.array([lr, rho, 1 - rho, eps, wd], np.float32)


class _CompactBatch:
    """The compact-state tensors of one group and one parameter dtype, stepped by one compiled
    call: the table of addresses (parameters, gradients, codes, float8's scales), the chunks,
    the seeds and the addresses of the step counts, made once and kept with the group's plan
    (:class:`adadelta.torch.cpu._Plan`), which checks each step that nothing moved."""

    def __init__(
        self, state_dtype: str, params: Tensors, states: list[dict[str, Any]], hyper: list[Any]
    ) -> None:
        names = ["square_avg", "acc_delta"]
        if state_dtype == "float8":
            names += ["square_avg_scale", "acc_delta_scale"]
        self.widths = _WIDTHS[params[0].dtype]
        self.values = _VALUES_LIKE[self.widths[0]]
        self.addresses = np.array(
            [[p.data_ptr() for p in params], [0] * len(params)]
            + [[s[name].data_ptr() for s in states] for name in names],
            np.intp,
        )
        self.sizes = np.array([p.numel() for p in params], np.intp)
        self.elements = int(self.sizes.sum())
        bfloat16 = state_dtype == "bfloat16"
        units = self.sizes if bfloat16 else -(-self.sizes // compact.BLOCK)
        self.chunks = _chunks(units, _threads(self.elements))
        self.parts = min(_threads(self.elements), self.chunks.shape[0])
        self.stream = _KeyStream(states)
        self.kernel = compact._adadelta_bfloat16 if bfloat16 else compact._adadelta_float8
        self.codes = compact._CODE_LIKE[state_dtype]
        self.set_hyper(hyper)

    def set_hyper(self, hyper: list[Any]) -> None:
        """The hyperparameters (``_hyper``'s values) as the kernel reads them."""
        row = _hyper_row(hyper)
        self.c = np.tile(row, (self.stream.keys.size, 1))
        self.flags = (bool(hyper[4]), bool(hyper[3] != 0), False)
        arguments = self._arguments()
        self.version = compact._version(self.kernel, arguments, self.flags, self.widths)

    def _arguments(self) -> tuple[Any, ...]:
        return (
            self.addresses, self.chunks, self.sizes, False, int(self.parts), self.c,
            self.stream.keys, True, self.codes, self.values,
        )  # fmt: skip

    def step(self, grads: list[torch.Tensor]) -> None:
        self.addresses[1] = [g.data_ptr() for g in grads]
        self.stream.advance()
        _launch(self.version, self.elements, *self._arguments(), *self.flags, *self.widths)


def _signatures(
    params: Tensors,
    grads: list[Any],
    states: list[dict[str, Any]],
    state: Mapping[Any, Any],
    indices: list[int],
) -> list[tuple[Any, ...]]:
    """For each compact parameter of ``indices``: what its batch relies on (the parameter's
    address and size, its state's identity, its entries' identities and the tensors'
    addresses, the gradient's type, dtype, size and layout), in one pass of cheap calls."""
    return [
        (
            id(s := state.get(p := params[i]) or {}),
            p.data_ptr(),
            p.numel(),
            p.dtype,
            *map(id, s.values()),  # the seed among them
            *[t.data_ptr() for t in s.values() if type(t) is torch.Tensor],
            type(g := grads[i]),
            g.layout,
            g.device,
            g.dtype,
            g.numel(),
            g.is_contiguous(),
        )
        for i in indices
    ]


def _check_layout(where: str, state: Mapping[str, Any], p: torch.Tensor, state_dtype: str) -> None:
    """Refuse (ValueError) compact state whose tensors the kernel could not address: each of
    the right type, dtype, shape and contiguous, on the parameter's device (the step count on
    the CPU, as ``torch.optim.Adadelta`` keeps it); seed and step in range."""
    names = {"square_avg": p.shape, "acc_delta": p.shape}
    codes = torch.uint16 if state_dtype == "bfloat16" else torch.uint8
    if state_dtype == "float8":
        blocks = torch.Size([-(-p.numel() // compact.BLOCK)])
        names |= {"square_avg_scale": blocks, "acc_delta_scale": blocks}
    expected = {"step", "seed", *names}
    if "seed" not in state:
        raise ValueError(
            f"{where}: float32 state, but its group keeps state_dtype={state_dtype!r} for a "
            f"parameter of {p.numel()} elements; convert it with adadelta.torch.convert_state"
        )
    if set(state) != expected:
        raise ValueError(f"{where}: has keys {sorted(state)}, expected {sorted(expected)}")
    seed, step = state["seed"], state["step"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
        raise ValueError(f"{where}: 'seed' must be a non-negative integer, got {seed!r}")
    cpu = torch.device("cpu")
    tensors = {"step": (torch.Size([]), torch.int64, cpu), **{
        name: (shape, torch.float32 if name.endswith("scale") else codes, p.device)
        for name, shape in names.items()
    }}  # fmt: skip
    for name, (shape, dtype, device) in tensors.items():
        t = state[name]
        if not (
            type(t) in _PLAIN_TENSOR_TYPES
            and t.device == device
            and t.dtype == dtype
            and t.shape == shape
            and t.layout == torch.strided
            and t.is_contiguous()
        ):
            what = (
                f"{t.dtype} {tuple(t.shape)} on {t.device}"
                if isinstance(t, torch.Tensor)
                else type(t)
            )
            raise ValueError(
                f"{where}: {name!r} must be a contiguous {dtype} tensor of shape "
                f"{tuple(shape)} on {device} for state_dtype={state_dtype!r}, got {what}"
            )
    if int(step) < 0:
        raise ValueError(f"{where}: 'step' must be non-negative, got {int(step)}")


def _check_float(position: int, state: Mapping[str, Any]) -> None:
    """Refuse compact state kept for a parameter whose group's policy gives it float32 state."""
    if "seed" in state:
        raise ValueError(
            f"state of parameter {position} is compact, but its group keeps float32 state for it "
            "(state_dtype, min_compact_size); convert it with adadelta.torch.convert_state"
        )


def _check_grad(position: int, p: torch.Tensor, g: Any, state_dtype: str) -> None:
    """Refuse a gradient that the compact kernel cannot read as ``p``'s."""
    if not (
        type(g) in _PLAIN_TENSOR_TYPES
        and g.device == p.device
        and g.dtype == p.dtype
        and g.layout == torch.strided
        and g.shape == p.shape
    ):
        raise ValueError(
            f"state_dtype={state_dtype!r}: parameter {position} needs a {p.dtype} gradient "
            f"of its shape on {p.device}, got {g.dtype} on {g.device}"
        )


def _reference_step(
    group: Mapping[str, Any],
    params: Tensors,
    grads: Tensors,
    states: list[dict[str, Any]],
    state_dtype: str,
    hyper: Mapping[str, Any],
) -> None:
    """The reference (``fused=False``): :func:`adadelta.kernels.compact.reference_step` on NumPy
    copies, float32 ones for 16-bit parameters, written back (rounded to nearest)."""
    for p, g, state in zip(params, grads, states, strict=True):
        x = p.detach().float().cpu().numpy().copy()
        arrays = _as_numpy_state(state)
        compact.reference_step(
            x, g.detach().float().cpu().contiguous().numpy(), arrays, state_dtype, hyper
        )
        p.detach().copy_(torch.from_numpy(x))
        state["step"].fill_(arrays["step"])
        for key, name in _NAMES.items():
            if key in arrays:
                state[name].copy_(torch.from_numpy(arrays[key]))


_NAMES = {
    "E_g2": "square_avg",
    "E_dx2": "acc_delta",
    "E_g2_scale": "square_avg_scale",
    "E_dx2_scale": "acc_delta_scale",
}
_CODES = {"bfloat16": torch.uint16, "float8": torch.uint8}


def _check_compact_state(
    states: Mapping[Any, Any], state_dtype: str, members: list[tuple[torch.Tensor, Any, int]]
) -> None:
    """Check the state of every parameter about to be stepped, and its gradient, as the NumPy
    optimizer checks its own (the same checks: :func:`adadelta.optimizers._checked_record` on
    the tensors' NumPy views, then no two arrays sharing memory, and no gradient sharing
    memory with a parameter or a state tensor); raise ValueError naming the tensor, before
    anything is stepped. On a GPU (its state's layout checked by :func:`_check_layout`), the
    memory checks of :func:`_check_apart`."""
    on_device = [m for m in members if m[0].device.type != "cpu"]
    if on_device:
        _check_apart(states, on_device)
    named: list[tuple[str, Any]] = []
    grads = []
    for p, g, position in members:
        if p.device.type != "cpu":
            continue
        where = f"parameter {position}"
        x = _numpy(p)
        named.append((where, x))
        grads.append((where, _numpy(g)))
        state = states.get(p, {})
        if len(state) == 0:  # made by this step
            continue
        record: dict[str, Any] = {}
        for name, value in state.items():
            if name == "step":
                if not (isinstance(value, torch.Tensor) and value.dtype == torch.int64):
                    found = value.dtype if isinstance(value, torch.Tensor) else type(value)
                    raise ValueError(
                        f"state of {where}: 'step' must be a 0-d int64 tensor, got {found}"
                    )
                value = int(value.item()) if value.dim() == 0 else value
            elif isinstance(value, torch.Tensor):
                expected = torch.float32 if name.endswith("_scale") else _CODES[state_dtype]
                if not (
                    type(value) in _PLAIN_TENSOR_TYPES
                    and value.device.type == "cpu"
                    and value.layout == torch.strided
                    and value.dtype == expected
                ):
                    raise ValueError(
                        f"state of {where}: {name!r} must be a {expected} CPU tensor for "
                        f"state_dtype={state_dtype!r}, got {value.dtype} on {value.device}"
                    )
                value = value.detach().numpy()
            record[name] = value
        layout = StateLayout(
            {_NAMES[k]: v for k, v in compact.layout(x, state_dtype).items()}, ("seed",), True
        )
        arrays = _checked_record(where, record, layout)
        if "seed" not in record or len(arrays) != len(layout.arrays):
            raise ValueError(
                f"state of {where}: compact state holds 'step', 'seed' and "
                f"{list(layout.arrays)}, this one {sorted(record)}"
            )
        named.extend((f"state {name!r} of {where}", value) for name, value in arrays)
    _check_disjoint(named)
    _check_gradients_apart(_spans(named), lambda: named, grads)


def _check_apart(states: Mapping[Any, Any], members: list[tuple[torch.Tensor, Any, int]]) -> None:
    """Raise ValueError, naming them, if two of the members' parameters and state tensors
    share memory, or a gradient's span of memory meets one of them (other than its own
    parameter, element for element). The parameters and state tensors are contiguous
    (:func:`_check_layout`, :func:`_check_compact`), so each one's memory is one span of
    bytes: one sort and one sweep, on any device."""
    named: list[tuple[int, int, str]] = []
    for p, _, position in members:
        where = f"parameter {position}"
        tensors = [(where, p)] + [
            (f"state {name!r} of {where}", t)
            for name, t in states.get(p, {}).items()
            if name != "step" and isinstance(t, torch.Tensor)
        ]
        named.extend((*_span(t), name) for name, t in tensors if t.numel())
    named.sort()
    reach, holder = 0, ""
    for start, end, name in named:
        if start < reach:
            raise ValueError(
                f"{name} shares memory with {holder}: each tensor of an optimizer must have "
                "memory of its own (pass one view of a buffer once)"
            )
        reach, holder = end, name
    starts = [start for start, _, _ in named]
    for p, g, position in members:
        if not g.numel():
            continue
        first, last = _span(g)
        i = bisect.bisect_left(starts, last) - 1  # the last span that starts before g ends
        if i < 0 or named[i][1] <= first:
            continue
        if (first, last) == _span(p) and g.stride() == p.stride():
            continue  # the parameter itself, element for element (its span is named[i])
        raise ValueError(
            f"gradient for parameter {position} shares memory with {named[i][2]}: a step "
            "writes that memory while it reads the gradient; pass a gradient of its own "
            "(e.g. a copy). Nothing was changed."
        )


def _span(t: torch.Tensor) -> tuple[int, int]:
    """The bytes that a tensor's elements lie between, whatever its strides: (first, end)."""
    low = high = 0
    for size, stride in zip(t.shape, t.stride(), strict=True):
        extent = (size - 1) * stride
        low, high = (low + extent, high) if extent < 0 else (low, high + extent)
    size = t.element_size()
    return t.data_ptr() + low * size, t.data_ptr() + (high + 1) * size


def _is_compact(saved: Any) -> bool:
    """Whether one parameter's saved state is compact: a seed, scales, or codes (integers)
    where ``torch.optim.Adadelta`` keeps floats."""
    if not isinstance(saved, Mapping):
        return False
    if "seed" in saved or "square_avg_scale" in saved or "acc_delta_scale" in saved:
        return True
    return any(
        isinstance(saved.get(name), torch.Tensor)
        and not (saved[name].is_floating_point() or saved[name].is_complex())
        for name in ("square_avg", "acc_delta")
    )


def _check_compact(group: Mapping[str, Any], state_dtype: str) -> None:
    """Refuse what compact state does not support: ValueError naming it. Parameters below the
    group's ``min_compact_size`` keep float32 state and may be anything."""
    for flag in ("differentiable", "capturable"):
        if group[flag]:
            raise ValueError(f"state_dtype={state_dtype!r} does not support {flag}=True")
    if group["foreach"]:
        raise ValueError(f"state_dtype={state_dtype!r} does not support foreach=True")
    for i, p in enumerate(group["params"]):
        if isinstance(p, torch.Tensor) and _format(group, p) is None:
            continue
        if not (
            isinstance(p, torch.Tensor)
            and p.device.type in ("cpu", "cuda")
            and p.dtype in _WIDTHS
            and p.layout == torch.strided
            and p.is_contiguous()
        ):
            what = f"{p.dtype} on {p.device}" if isinstance(p, torch.Tensor) else type(p).__name__
            raise ValueError(
                f"state_dtype={state_dtype!r} needs contiguous float32, bfloat16 or float16 "
                f"parameters on the CPU or a CUDA device; parameter {i} of the group is {what}"
            )
        if p.device.type != "cpu" and importlib.util.find_spec("triton") is None:
            raise ValueError(
                f"state_dtype={state_dtype!r} on {p.device} needs Triton (pip install triton); "
                f"parameter {i} of the group is there"
            )


def _empty_compact(p: torch.Tensor, state_dtype: str, seed: int, position: int) -> dict[str, Any]:
    """Zero compact state of ``p`` (the parameter at ``position`` of an optimizer), on its
    device; the step count on the CPU."""
    state: dict[str, Any] = {"step": torch.zeros((), dtype=torch.int64)}
    for key, array in compact.empty_state(np.empty(p.shape, np.float32), state_dtype).items():
        state[_NAMES[key]] = torch.from_numpy(array).to(p.device)
    state["seed"] = compact.parameter_seed(seed, position)
    return state


def _as_numpy_state(state: dict[str, Any]) -> dict[str, Any]:
    """The NumPy optimizer's state dict of one parameter, its arrays zero-copy views of the
    tensors of ``state`` (copies of a GPU's)."""
    arrays: dict[str, Any] = {
        key: _numpy(state[name].cpu()) for key, name in _NAMES.items() if name in state
    }
    return {"step": int(state["step"]), "seed": int(state["seed"]), **arrays}


def _checked_compact_state(i: Any, saved: Any, p: torch.Tensor, state_dtype: str) -> dict[str, Any]:
    """A checked copy of one parameter's saved compact state, as tensors on its device (the
    step count on the CPU): a state dict saved on one device loads on another."""
    where = f"state dict: state of parameter {i}"
    if not isinstance(saved, Mapping):
        raise ValueError(f"{where}: expected a dict")
    as_numpy = _to_numpy_state(saved)
    found = compact.format_of(as_numpy)
    if found != state_dtype:
        raise ValueError(
            f"{where} is in format {found or 'float'}, this optimizer keeps "
            f"state_dtype={state_dtype!r}; convert it first with "
            f"adadelta.torch.convert_state(state_dict, {state_dtype!r})"
        )
    checked = compact.checked_state(where, as_numpy, np.empty(p.shape, np.float32), state_dtype)
    state = _to_torch_state(checked, compact=True)
    for name, value in state.items():
        if name != "step" and isinstance(value, torch.Tensor):
            state[name] = value.to(p.device)
    return state


def _to_numpy_state(saved: Mapping[str, Any]) -> dict[str, Any]:
    """One parameter's drop-in (or ``torch.optim.Adadelta``) state in the NumPy optimizer's
    names: arrays as NumPy copies, ``step`` and ``seed`` as ints."""
    names = {name: key for key, name in _NAMES.items()}
    out: dict[str, Any] = {}
    for name, value in saved.items():
        key = names.get(name, name)
        if isinstance(value, torch.Tensor) and key in ("step", "seed"):
            value = value.item()
            value = int(value) if float(value).is_integer() else value
        elif isinstance(value, torch.Tensor):
            value = _numpy(value.cpu()).copy()
        out[key] = value
    return out


def _to_torch_state(state: Mapping[str, Any], *, compact: bool) -> dict[str, Any]:
    """The inverse of :func:`_to_numpy_state`: ``step`` an int64 tensor for compact state,
    PyTorch's float tensor for float32 state."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if key == "step":
            dtype = torch.int64 if compact else _scalar_dtype()
            out["step"] = torch.tensor(value, dtype=dtype)
        elif key == "seed":
            out["seed"] = int(value)
        else:
            out[_NAMES[key]] = torch.from_numpy(np.array(value))
    return out


def convert_state(
    state_dict: Mapping[str, Any],
    state_dtype: str | None,
    *,
    seed: int = 0,
    min_compact_size: int = MIN_COMPACT_SIZE,
) -> dict[str, Any]:
    """``state_dict`` of an :class:`Adadelta` (or of ``torch.optim.Adadelta``) with its state
    in another format: :func:`adadelta.convert_state` with PyTorch's names and tensors, and the
    drop-in's policy. ``None``: float32 ``square_avg`` / ``acc_delta`` and a float ``step``,
    loadable by ``torch.optim.Adadelta`` (exact); ``"bfloat16"`` / ``"float8"``: loadable by
    ``Adadelta(..., state_dtype=..., min_compact_size=...)``: the state of tensors with at
    least ``min_compact_size`` elements in that format (rounded once, to nearest; parameters
    without a seed get the one that an optimizer built with ``seed`` gives them), the others'
    float32, and every group with that policy."""
    if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
        raise ValueError("state dict: expected a dict with exactly 'state' and 'param_groups'")
    if isinstance(min_compact_size, bool) or not isinstance(min_compact_size, int):
        raise ValueError(f"Invalid min_compact_size value: {min_compact_size!r}")
    if min_compact_size < 0:
        raise ValueError(f"Invalid min_compact_size value: {min_compact_size!r}")
    groups = state_dict["param_groups"]
    if not isinstance(groups, (list, tuple)) or not all(
        isinstance(g, Mapping) and isinstance(g.get("params"), (list, tuple)) for g in groups
    ):
        raise ValueError("state dict: 'param_groups' must be a list of groups listing parameters")
    saved = state_dict["state"]
    if not isinstance(saved, Mapping):
        raise ValueError("state dict: 'state' must be a dict of the parameters' states")
    as_numpy = {i: _to_numpy_state(s) if isinstance(s, Mapping) else s for i, s in saved.items()}
    # the state checked as the NumPy optimizer's load checks it (adadelta.convert_state); the
    # hyperparameters are PyTorch's, checked by whichever optimizer loads the result
    # (each record alone: its format may differ from the others', by the policy)
    for i, record in as_numpy.items():
        one = {"state": {0: record}, "param_groups": [{**_NUMPY_GROUP, "params": [0]}]}
        try:
            convert_numpy_state(one, None)
        except ValueError as error:
            raise ValueError(str(error).replace("parameter 0", f"parameter {i}", 1)) from None
    small = {
        i
        for i, s in as_numpy.items()
        if state_dtype is not None
        and isinstance(s, Mapping)
        and isinstance(s.get("E_g2"), np.ndarray)
        and s["E_g2"].size < min_compact_size
    }
    out: dict[Any, Any] = {}
    for target, indices in ((state_dtype, set(as_numpy) - small), (None, small)):
        subset = {i: as_numpy[i] for i in indices}
        converted = compact.convert_state(
            {"state": subset, "param_groups": groups}, target, seed=seed
        )
        for i, s in converted["state"].items():
            if target is None and "seed" in s:
                s = {k: v for k, v in s.items() if k != "seed"}
            out[i] = _to_torch_state(s, compact=target is not None)
    policy = {"state_dtype": state_dtype, "min_compact_size": min_compact_size}
    new_groups = []
    for g in groups:
        g = {k: v for k, v in g.items() if k not in policy}
        new_groups.append(
            {**g, **(policy if state_dtype is not None else {}), "params": list(g["params"])}
        )
    return {"state": {i: out[i] for i in state_dict["state"]}, "param_groups": new_groups}


# hyperparameters that the NumPy checks of adadelta.convert_state take (any valid ones)
_NUMPY_GROUP = {
    "lr": 1.0,
    "rho": 0.9,
    "eps": 1e-6,
    "weight_decay": 0.0,
    "decoupled_weight_decay": False,
    "maximize": False,
}
