"""The drop-in under sharded training: DTensor parameters (FSDP2's ``fully_shard``, tensor
parallelism), distributed checkpoints, and ``ZeroRedundancyOptimizer(overlap_with_ddp=True)``.

- **DTensor parameters** are stepped on their local shards by the same fused kernels as plain
  tensors (ADADELTA is elementwise, so a shard's update needs nothing from the other ranks).
  Float state is created as PyTorch creates it (``zeros_like`` of the parameter: DTensors of
  the parameter's mesh and placements), and the kernels read and write its local shards. A
  gradient whose placements differ from its parameter's (a ``Partial`` one) is redistributed
  to them first; one on another device mesh is refused. Parameters may live on different
  meshes (FSDP2 next to HSDP, say): each is stepped on its own.
- **Compact state** (``state_dtype="bfloat16"`` or ``"float8"``) is created from the local
  shard: the codes as DTensors of the parameter's placements, float8's per-block scales (one
  per :data:`adadelta.kernels.compact.BLOCK` elements *of the local shard*, so that no block
  straddles a shard boundary) as a plain tensor of this rank. The stochastic rounding of a
  shard draws its bits from the parameter's ``seed`` mixed with the shard's offset in the
  whole tensor (a shard that starts at 0, and so an unsharded tensor, draws the parameter's own
  bits; replicas of one shard draw the same bits and stay equal).
- **State dicts** of sharded parameters with compact state are *portable*: ``state_dict()``
  gives their state decoded to float32 DTensors of the parameter's placements (with ``step``
  and ``seed``), which ``torch.distributed.checkpoint`` reshards like any float state;
  ``load_state_dict`` checks every entry, then encodes each local shard again (round to nearest:
  exact for bfloat16, whose codes are float32 values; for float8 a new block partition rounds
  once more, within the format's half gap, and the same partition gives the same codes back).
  The cost: the checkpoint holds float32 state (8 bytes per parameter, as
  ``torch.optim.Adadelta``'s) and saving decodes and loading encodes once.
- :class:`FunctionalAdadelta` is the functional optimizer that
  ``ZeroRedundancyOptimizer(..., optimizer_class=adadelta.torch.Adadelta, overlap_with_ddp=True)``
  needs; importing this module registers it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.distributed.optim.utils import register_functional_optim
from torch.distributed.tensor import DTensor
from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

from adadelta.kernels import compact
from adadelta.torch.common import Tensors, _hyper, _numpy
from adadelta.torch.compact_state import _NAMES

if TYPE_CHECKING:
    from adadelta.torch.optimizer import Adadelta


def _local(t: torch.Tensor) -> torch.Tensor:
    return t._local_tensor if isinstance(t, DTensor) else t


def _local_grad(p: torch.Tensor, g: torch.Tensor, position: int) -> torch.Tensor:
    """The local shard of gradient ``g`` laid out as parameter ``p``."""
    if not isinstance(p, DTensor):
        if isinstance(g, DTensor):
            raise ValueError(f"parameter {position} is a plain tensor but its gradient a DTensor")
        return g
    if not isinstance(g, DTensor):
        raise ValueError(
            f"parameter {position} is a DTensor but its gradient a plain {type(g).__name__}"
        )
    if g.device_mesh != p.device_mesh:
        raise ValueError(
            f"parameter {position} and its gradient are on different device meshes "
            f"({p.device_mesh} and {g.device_mesh})"
        )
    if g.shape != p.shape:
        raise ValueError(
            f"parameter {position} has shape {tuple(p.shape)}, its gradient {tuple(g.shape)}"
        )
    if tuple(g.placements) != tuple(p.placements):
        g = g.redistribute(p.device_mesh, p.placements)
    return g._local_tensor


class _LocalView:
    """A group's parameters as the CPU path sees them: DTensors as their local shards, their
    state as dicts of the local shards of the optimizer's (DTensor) state tensors; plain tensors
    as they are. It has what :class:`adadelta.torch.cpu._Plan` reads of an optimizer (``state``
    and ``_state``)."""

    def __init__(self, optimizer: Adadelta, params: Tensors) -> None:
        self.optimizer = optimizer
        self.owners = {id(_local(p)): p for p in params}
        self.state: dict[torch.Tensor, dict[str, Any]] = {}
        for p in params:
            if p in optimizer.state:
                self.state[_local(p)] = _local_state(optimizer, p)

    def _state(self, local: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        p = self.owners[id(local)]
        self.optimizer._state(p, group)
        state = self.state[local] = _local_state(self.optimizer, p)
        return state


def _local_state(optimizer: Adadelta, p: torch.Tensor) -> dict[str, Any]:
    """The optimizer's state of ``p`` with its DTensors as their local shards: one dict kept
    while the state holds the same tensors (so that the CPU path's plan stays valid)."""
    state: dict[str, Any] = optimizer.state[p]
    if not isinstance(p, DTensor):
        return state
    values = list(state.values())
    cached = optimizer._local_states.get(p)
    if cached is not None and len(cached[0]) == len(values):
        if all(a is b for a, b in zip(cached[0], values, strict=True)):
            local: dict[str, Any] = cached[1]
            return local
    local = {k: _local(v) if isinstance(v, torch.Tensor) else v for k, v in state.items()}
    optimizer._local_states[p] = (values, local)
    return local


def local_view(
    optimizer: Adadelta, group: Mapping[str, Any], params: Tensors, grads: list[Any]
) -> tuple[_LocalView, Tensors, list[Any]]:
    """A group's parameters and gradients as local shards, with the view of the state that the
    CPU path steps."""
    local_grads = [
        None if g is None else _local_grad(p, g, i)
        for i, (p, g) in enumerate(zip(params, grads, strict=True))
    ]
    return _LocalView(optimizer, params), [_local(p) for p in params], local_grads


# --- compact state ---


def _shard_seed(seed: int, p: torch.Tensor) -> int:
    """The seed that the local shard of ``p`` draws its rounding bits from."""
    if not isinstance(p, DTensor):
        return seed
    _, offset = compute_local_shape_and_global_offset(p.shape, p.device_mesh, p.placements)
    strides = torch.empty(p.shape, device="meta").stride()
    flat = sum(o * s for o, s in zip(offset, strides, strict=True))
    return seed if flat == 0 else compact.parameter_seed(seed, flat)


def _like(p: DTensor, local: torch.Tensor) -> torch.Tensor:
    """``local`` as the local shard of a DTensor laid out as ``p``."""
    return DTensor.from_local(
        local, p.device_mesh, p.placements, run_check=False, shape=p.shape, stride=p.stride()
    )


def _empty_state(optimizer: Adadelta, p: torch.Tensor, position: int) -> dict[str, Any]:
    assert optimizer.state_dtype is not None
    arrays = compact.empty_state(_numpy(_local(p)), optimizer.state_dtype)
    state: dict[str, Any] = {"step": torch.zeros((), dtype=torch.int64)}
    for key, array in arrays.items():
        t = torch.from_numpy(array)
        if isinstance(p, DTensor) and not key.endswith("_scale"):
            t = _like(p, t)
        state[_NAMES[key]] = t
    state["seed"] = compact.parameter_seed(optimizer.seed, position)
    return state


def compact_step(optimizer: Adadelta) -> None:
    """A step with compact state of an optimizer with DTensor parameters: the compact kernel on
    each parameter's local shard; everything checked before anything changes."""
    assert optimizer._compact is not None and optimizer.state_dtype is not None
    fmt = optimizer.state_dtype
    work, position = [], 0
    for group in optimizer.param_groups:
        members = []
        for p in group["params"]:
            g = p.grad
            if g is not None:
                if g.is_sparse:
                    raise RuntimeError("Adadelta does not support sparse gradients")
                local = _local_grad(p, g, position)
                if not (
                    type(local) in (torch.Tensor, torch.nn.Parameter)
                    and local.device.type == "cpu"
                    and local.dtype == torch.float32
                    and local.layout == torch.strided
                    and local.shape == _local(p).shape
                ):
                    raise ValueError(
                        f"state_dtype={fmt!r}: parameter {position} needs a float32 CPU "
                        f"gradient of its shape, got {local.dtype} on {local.device} of shape "
                        f"{tuple(local.shape)}"
                    )
                members.append((p, local, position))
            position += 1
        work.append((group, members))
    for group, members in work:
        if not members:
            continue
        views, grads = [], []
        states: list[dict[str, Any]] = []
        for p, g, pos in members:
            state = optimizer.state[p]
            if len(state) == 0:
                state.update(_empty_state(optimizer, p, pos))
            views.append(_numpy(_local(p)))
            grads.append(_numpy(g))
            arrays = {
                key: _numpy(_local(state[name])) for key, name in _NAMES.items() if name in state
            }
            states.append(
                {
                    "step": int(state["step"]),
                    "seed": _shard_seed(int(state["seed"]), p),
                    **arrays,
                }
            )
        before = [dict(s) for s in states]
        optimizer._compact.step(
            [_hyper(group)], [views], states, [grads], fused=group.get("fused") is not False
        )
        # the reference path (fused=False) writes new arrays: copy them into the tensors
        for (p, _, _), arrays, old in zip(members, states, before, strict=True):
            state = optimizer.state[p]
            state["step"].fill_(arrays["step"])
            for key, name in _NAMES.items():
                if key in arrays and arrays[key] is not old[key]:
                    _local(state[name]).copy_(torch.from_numpy(arrays[key]))


def portable_state_dict(optimizer: Adadelta, state_dict: dict[str, Any]) -> dict[str, Any]:
    """``state_dict`` with the compact state of DTensor parameters decoded to float32 DTensors
    of the parameter's placements (``step``, ``seed``, ``square_avg``, ``acc_delta``)."""
    assert optimizer.state_dtype is not None
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = dict(state_dict["state"])
    for i, p in enumerate(params):
        saved = state.get(i)
        if not isinstance(p, DTensor) or saved is None or "square_avg" not in saved:
            continue
        arrays = {key: _numpy(_local(saved[name])) for key, name in _NAMES.items() if name in saved}
        portable = {"step": saved["step"], "seed": saved["seed"]}
        for key in ("E_g2", "E_dx2"):
            values = compact.dequantize(arrays, key, optimizer.state_dtype)
            portable[_NAMES[key]] = _like(p, torch.from_numpy(values))
        state[i] = portable
    return {"state": state, "param_groups": state_dict["param_groups"]}


def checked_state(
    optimizer: Adadelta, i: Any, saved: Any, p: torch.Tensor, position: int
) -> dict[str, Any]:
    """A checked copy of the saved portable state of DTensor parameter ``p``, encoded into the
    optimizer's compact format on this rank's shard (the inverse of
    :func:`portable_state_dict`); ValueError naming what is wrong."""
    fmt = optimizer.state_dtype
    assert fmt is not None and isinstance(p, DTensor)
    where = f"state dict: state of parameter {i}"
    if not isinstance(saved, Mapping):
        raise ValueError(f"{where}: expected a dict")
    keys = set(saved)
    if keys not in ({"step", "seed", "square_avg", "acc_delta"}, {"step"}):
        raise ValueError(
            f"{where}: has keys {sorted(keys)}, expected ['acc_delta', 'seed', 'square_avg', "
            "'step'] (a sharded parameter's compact state is saved decoded, as float32 DTensors)"
        )
    step = _integer(where, "step", saved["step"])
    seed = _integer(
        where, "seed", saved.get("seed", compact.parameter_seed(optimizer.seed, position))
    )
    state: dict[str, Any] = {"step": torch.tensor(step, dtype=torch.int64), "seed": seed}
    if "square_avg" not in saved:
        return state
    values = {}
    for key in ("E_g2", "E_dx2"):
        t = saved[_NAMES[key]]
        _check_like(where, _NAMES[key], t, p, torch.float32)
        local = _local(t).detach().cpu().numpy()
        if not (np.isfinite(local).all() and (local >= 0).all()):
            raise ValueError(f"{where}: {_NAMES[key]!r} holds NaN, infinity or negative values")
        values[key] = local
    encoded = compact.convert_state(
        {"state": {0: {"step": step, **values}}, "param_groups": []}, fmt
    )["state"][0]
    for key, array in encoded.items():
        if key in ("step", "seed"):
            continue
        t = torch.from_numpy(np.ascontiguousarray(array))
        state[_NAMES[key]] = t if key.endswith("_scale") else _like(p, t)
    return state


def _integer(where: str, key: str, value: Any) -> int:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 63:
        raise ValueError(f"{where}: {key!r} must be a non-negative integer, got {value!r}")
    return value


def _check_like(where: str, name: str, t: Any, p: DTensor, dtype: torch.dtype | None) -> None:
    """Refuse a state tensor ``t`` that is not laid out as DTensor parameter ``p``."""
    if not isinstance(t, DTensor):
        raise ValueError(
            f"{where}: {name!r} must be a DTensor laid out as its parameter, got {type(t).__name__}"
        )
    wanted = dtype or p.dtype
    if t.shape != p.shape or t.dtype != wanted:
        raise ValueError(
            f"{where}: {name!r} must be {wanted} of shape {tuple(p.shape)}, got {t.dtype} of "
            f"shape {tuple(t.shape)}"
        )
    if t.device_mesh != p.device_mesh or tuple(t.placements) != tuple(p.placements):
        raise ValueError(
            f"{where}: {name!r} is placed {tuple(t.placements)} on {t.device_mesh}, its "
            f"parameter {tuple(p.placements)} on {p.device_mesh}"
        )
    if _local(t).shape != _local(p).shape:
        raise ValueError(
            f"{where}: {name!r} has a local shard of shape {tuple(_local(t).shape)}, its "
            f"parameter {tuple(_local(p).shape)}"
        )


def check_float_state(optimizer: Adadelta, state_dict: Mapping[str, Any]) -> None:
    """Refuse, before anything is loaded, float state of a DTensor parameter that is not laid
    out as the parameter (another shape, mesh or placement) or holds NaN, infinity or
    negative values."""
    saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, p in zip(saved_ids, params, strict=False):
        saved = state_dict["state"].get(i)
        if not isinstance(p, DTensor) or not isinstance(saved, Mapping):
            continue
        where = f"state dict: state of parameter {i}"
        for name in ("square_avg", "acc_delta"):
            if name in saved:
                _check_like(where, name, saved[name], p, None)
                local = _local(saved[name])
                if not bool(torch.isfinite(local).all()) or bool((local < 0).any()):
                    raise ValueError(f"{where}: {name!r} holds NaN, infinity or negative values")


# --- ZeroRedundancyOptimizer(overlap_with_ddp=True) ---


class FunctionalAdadelta:
    """The drop-in as a functional optimizer: stepped with a list of gradients (None: that
    parameter is not updated now) instead of ``.grad``, as ``ZeroRedundancyOptimizer`` with
    ``overlap_with_ddp=True`` steps the parameters of each gradient bucket when its all-reduce
    is done. The step is :class:`adadelta.torch.Adadelta`'s (the same keyword arguments,
    compact state included)."""

    def __init__(
        self, params: Tensors, *, _allow_empty_param_list: bool = False, **kwargs: Any
    ) -> None:
        from adadelta.torch.optimizer import Adadelta

        params = list(params)
        if not params and not _allow_empty_param_list:
            raise ValueError("optimizer got an empty parameter list")
        self._optimizer = Adadelta(params if params else [torch.empty(0)], **kwargs)
        if not params:  # a rank that owns no parameter: a group with none
            self._optimizer.param_groups[0]["params"] = []
        self.param_groups = self._optimizer.param_groups
        self.param_group = self.param_groups[0]
        self.defaults = self._optimizer.defaults
        self.state = self._optimizer.state

    def step(self, gradients: Sequence[torch.Tensor | None]) -> None:
        params = self.param_group["params"]
        if len(params) != len(gradients):
            raise ValueError(f"{len(gradients)} gradients for {len(params)} parameters")
        saved = [p.grad for p in params]
        try:
            for p, g in zip(params, gradients, strict=True):
                p.grad = g
            self._optimizer.step()
        finally:
            for p, g in zip(params, saved, strict=True):
                p.grad = g


def _register() -> None:
    from adadelta.torch.optimizer import Adadelta

    register_functional_optim(Adadelta, FunctionalAdadelta)  # type: ignore[no-untyped-call]


_register()
