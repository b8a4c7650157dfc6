"""The drop-in's compact state (``state_dtype="bfloat16"`` or ``"float8"``): its checks, its
state tensors (the codes of :mod:`adadelta.kernels.compact` under PyTorch's names), its step,
and :func:`convert_state` between it and ``torch.optim.Adadelta``'s float32 state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from adadelta.kernels import compact
from adadelta.optimizers import (
    StateLayout,
    _check_disjoint,
    _check_gradients_apart,
    _checked_record,
    _spans,
)
from adadelta.optimizers import convert_state as convert_numpy_state
from adadelta.torch.common import _PLAIN_TENSOR_TYPES, _hyper, _numpy, _scalar_dtype

if TYPE_CHECKING:
    from adadelta.torch.optimizer import Adadelta


def _compact_step(optimizer: Adadelta) -> None:
    """A step with compact state: the CPU kernel of :mod:`adadelta.kernels.compact` on
    zero-copy NumPy views, everything checked first."""
    assert optimizer._compact is not None and optimizer.state_dtype is not None
    work, position = [], 0
    for group in optimizer.param_groups:
        _check_compact(group, optimizer.state_dtype)
        members = []
        for p in group["params"]:
            g = p.grad
            if g is not None:
                if g.is_sparse:
                    raise RuntimeError("Adadelta does not support sparse gradients")
                if not (
                    type(g) in _PLAIN_TENSOR_TYPES
                    and g.device.type == "cpu"
                    and g.dtype == torch.float32
                    and g.layout == torch.strided
                    and g.shape == p.shape
                ):
                    raise ValueError(
                        f"state_dtype={optimizer.state_dtype!r}: parameter {position} needs a "
                        f"float32 CPU gradient of its shape, got {g.dtype} on {g.device}"
                    )
                members.append((p, g, position))
            position += 1
        work.append((group, members))
    _check_compact_state(optimizer, [m for _, members in work for m in members])
    for group, members in work:
        if not members:
            continue
        hyper = {**_hyper(group)}
        views, grads, states = [], [], []
        for p, g, pos in members:
            state = optimizer.state[p]
            if len(state) == 0:
                state.update(_empty_compact(p, optimizer.state_dtype, optimizer.seed, pos))
            views.append(_numpy(p))
            grads.append(_numpy(g))
            states.append(_as_numpy_state(state))
        before = [dict(s) for s in states]
        optimizer._compact.step(
            [hyper], [views], states, [grads], fused=group.get("fused") is not False
        )
        # the reference path (fused=False) writes new arrays: copy them into the tensors
        for (p, _, _), arrays, old in zip(members, states, before, strict=True):
            state = optimizer.state[p]
            state["step"].fill_(arrays["step"])
            for key, name in _NAMES.items():
                if key in arrays and arrays[key] is not old[key]:
                    state[name].copy_(torch.from_numpy(arrays[key]))


_NAMES = {
    "E_g2": "square_avg",
    "E_dx2": "acc_delta",
    "E_g2_scale": "square_avg_scale",
    "E_dx2_scale": "acc_delta_scale",
}
_CODES = {"bfloat16": torch.uint16, "float8": torch.uint8}


def _check_compact_state(
    optimizer: Adadelta, members: list[tuple[torch.Tensor, torch.Tensor, int]]
) -> None:
    """Check the state of every parameter about to be stepped, and its gradient, as the NumPy
    optimizer checks its own (the same checks: :func:`adadelta.optimizers._checked_record` on
    the tensors' NumPy views, then no two arrays sharing memory, and no gradient sharing
    memory with a parameter or a state tensor); raise ValueError naming the tensor, before
    anything is stepped."""
    assert optimizer.state_dtype is not None
    state_dtype = optimizer.state_dtype
    named: list[tuple[str, Any]] = []
    grads = []
    for p, g, position in members:
        where = f"parameter {position}"
        x = _numpy(p)
        named.append((where, x))
        grads.append((where, _numpy(g)))
        state = optimizer.state[p]
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
    """Refuse what compact state does not support: ValueError naming it."""
    for flag in ("differentiable", "capturable"):
        if group[flag]:
            raise ValueError(f"state_dtype={state_dtype!r} does not support {flag}=True")
    if group["foreach"]:
        raise ValueError(f"state_dtype={state_dtype!r} does not support foreach=True")
    for i, p in enumerate(group["params"]):
        if not (
            isinstance(p, torch.Tensor)
            and p.device.type == "cpu"
            and p.dtype == torch.float32
            and p.layout == torch.strided
            and p.is_contiguous()
        ):
            what = f"{p.dtype} on {p.device}" if isinstance(p, torch.Tensor) else type(p).__name__
            raise ValueError(
                f"state_dtype={state_dtype!r} needs contiguous float32 CPU parameters; "
                f"parameter {i} of the group is {what}"
            )


def _empty_compact(p: torch.Tensor, state_dtype: str, seed: int, position: int) -> dict[str, Any]:
    """Zero compact state of ``p`` (the parameter at ``position`` of an optimizer)."""
    state: dict[str, Any] = {"step": torch.zeros((), dtype=torch.int64)}
    for key, array in compact.empty_state(np.empty(p.shape, np.float32), state_dtype).items():
        state[_NAMES[key]] = torch.from_numpy(array)
    state["seed"] = compact.parameter_seed(seed, position)
    return state


def _as_numpy_state(state: dict[str, Any]) -> dict[str, Any]:
    """The NumPy optimizer's state dict of one parameter, its arrays zero-copy views of the
    tensors of ``state``."""
    arrays: dict[str, Any] = {
        key: _numpy(state[name]) for key, name in _NAMES.items() if name in state
    }
    return {"step": int(state["step"]), "seed": int(state["seed"]), **arrays}


def _checked_compact_state(i: Any, saved: Any, p: torch.Tensor, state_dtype: str) -> dict[str, Any]:
    """A checked copy of one parameter's saved compact state, as tensors."""
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
    return _to_torch_state(checked, compact=True)


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
    state_dict: Mapping[str, Any], state_dtype: str | None, *, seed: int = 0
) -> dict[str, Any]:
    """``state_dict`` of an :class:`Adadelta` (or of ``torch.optim.Adadelta``) with its state
    in another format: :func:`adadelta.convert_state` with PyTorch's names and tensors.
    ``None``: float32 ``square_avg`` / ``acc_delta`` and a float ``step``, loadable by
    ``torch.optim.Adadelta`` (exact); ``"bfloat16"`` / ``"float8"``: loadable by
    ``Adadelta(..., state_dtype=...)`` (rounded once, to nearest; parameters without a seed get
    the one that an optimizer built with ``seed`` gives them)."""
    if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
        raise ValueError("state dict: expected a dict with exactly 'state' and 'param_groups'")
    groups = state_dict["param_groups"]
    if not isinstance(groups, (list, tuple)) or not all(
        isinstance(g, Mapping) and isinstance(g.get("params"), (list, tuple)) for g in groups
    ):
        raise ValueError("state dict: 'param_groups' must be a list of groups listing parameters")
    saved = state_dict["state"]
    if not isinstance(saved, Mapping):
        raise ValueError("state dict: 'state' must be a dict of the parameters' states")
    # the state checked by adadelta.convert_state (the NumPy optimizer's load checks); the
    # hyperparameters are PyTorch's, checked by whichever optimizer loads the result
    as_numpy = {
        "state": {i: _to_numpy_state(s) if isinstance(s, Mapping) else s for i, s in saved.items()},
        "param_groups": [{**_NUMPY_GROUP, "params": list(g["params"])} for g in groups],
    }
    converted = convert_numpy_state(as_numpy, state_dtype, seed=seed)
    return {
        "state": {
            i: _to_torch_state(s, compact=state_dtype is not None)
            for i, s in converted["state"].items()
        },
        "param_groups": [{**g, "params": list(g["params"])} for g in groups],
    }


# hyperparameters that the NumPy checks of adadelta.convert_state take (any valid ones)
_NUMPY_GROUP = {
    "lr": 1.0,
    "rho": 0.9,
    "eps": 1e-6,
    "weight_decay": 0.0,
    "decoupled_weight_decay": False,
    "maximize": False,
}
