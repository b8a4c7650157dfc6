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
  bits; replicas of one shard draw the same bits and stay equal). Each parameter's format is
  the one its group's policy gives it (``min_compact_size`` counts the whole tensor's
  elements, so every rank agrees); the smaller tensors' float32 state is stepped by PyTorch's
  step on the local shards.
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

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.distributed.optim.utils import register_functional_optim
from torch.distributed.tensor import DTensor
from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

from adadelta.kernels import compact
from adadelta.torch import compact_state, gpu
from adadelta.torch.common import Tensors, _hyper, _numpy, _torch_step, _unscaled
from adadelta.torch.compact_state import _NAMES, _format

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
        self.optimizer, self.seed = optimizer, optimizer.seed
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


def _empty_state(optimizer: Adadelta, p: torch.Tensor, fmt: str, position: int) -> dict[str, Any]:
    state = compact_state._empty_compact(_local(p), fmt, optimizer.seed, position)
    if isinstance(p, DTensor):
        for name in ("square_avg", "acc_delta"):
            state[name] = _like(p, state[name])
    return state


def compact_step(
    optimizer: Adadelta,
    group: dict[str, Any],
    grads: list[Any],
    offset: int,
    scaler: tuple[torch.Tensor | None, torch.Tensor | None],
) -> Callable[[], None]:
    """The step of a group with compact state (its policy) holding DTensor parameters: each
    parameter on its local shard, in the format that the policy gives it (compact: the compact
    kernel, one call per parameter dtype; float32: PyTorch's step). Everything is checked now;
    the step is returned, to run when every group is checked."""
    fmt: str = group["state_dtype"]
    compact_state._check_compact(group, fmt)
    members: dict[torch.dtype, list[tuple[torch.Tensor, torch.Tensor, int]]] = {}
    floats: list[tuple[torch.Tensor, torch.Tensor]] = []
    for i, (p, g) in enumerate(zip(group["params"], grads, strict=True)):
        if g is None:
            continue
        if g.is_sparse:
            raise RuntimeError("Adadelta does not support sparse gradients")
        position = offset + i
        local = _local_grad(p, g, position)
        state = optimizer.state.get(p, {})
        if _format(group, p) is None:
            compact_state._check_float(position, state)
            floats.append((p, local))
            continue
        compact_state._check_grad(position, _local(p), local, fmt)
        if len(state) != 0:
            where = f"state of parameter {position}"
            compact_state._check_layout(where, _local_state(optimizer, p), _local(p), fmt)
        members.setdefault(p.dtype, []).append((p, local, position))
    # no two local tensors sharing memory, no gradient in a parameter's or state's memory: the
    # checks of unsharded parameters, on the local shards
    local_members = [(_local(p), g, i) for batch in members.values() for p, g, i in batch]
    local_states = {
        _local(p): _local_state(optimizer, p)
        for batch in members.values()
        for p, _, _ in batch
        if len(optimizer.state.get(p, {})) != 0
    }
    if local_members:
        compact_state._check_compact_state(local_states, fmt, local_members)

    def step() -> None:
        if floats:
            lists: tuple[Tensors, Tensors, Tensors, Tensors, Tensors] = ([], [], [], [], [])
            for p, g in floats:
                state = optimizer._state(p, group)
                local = (_local(p), g, _local(state["square_avg"]), _local(state["acc_delta"]))
                for target, t in zip(lists, (*local, state["step"]), strict=True):
                    target.append(t)
            has_complex = any(torch.is_complex(p) for p in lists[0])
            _torch_step(group, *lists, has_complex=has_complex, scaler=scaler)
        hyper = _hyper(group)
        for batch in members.values():
            grads = [g.contiguous() for _, g, _ in batch]
            if scaler[0] is not None or scaler[1] is not None:
                unscaled = _unscaled(grads, scaler)
                if unscaled is None:  # the scaler found inf or NaN: no step
                    return
                grads = unscaled
            params, states = [], []
            for p, _, position in batch:
                if len(optimizer.state[p]) == 0:
                    optimizer.state[p].update(_empty_state(optimizer, p, fmt, position))
                seed = _shard_seed(int(optimizer.state[p]["seed"]), p)
                params.append(_local(p))
                states.append({**_local_state(optimizer, p), "seed": seed})
            if group.get("fused") is False:
                compact_state._reference_step(group, params, grads, states, fmt, hyper)
                continue
            kept = [j for j, p in enumerate(params) if p.numel() > 0]
            for j in set(range(len(params))) - set(kept):  # an empty shard: only counted
                states[j]["step"].add_(1)
            if kept:
                gpu._compact_batch(
                    fmt, [params[j] for j in kept], [states[j] for j in kept], list(hyper.values())
                ).step([grads[j] for j in kept])

    return step


def portable_state_dict(optimizer: Adadelta, state_dict: dict[str, Any]) -> dict[str, Any]:
    """``state_dict`` with the compact state of DTensor parameters decoded to float32 DTensors
    of the parameter's placements (``step``, ``seed``, ``square_avg``, ``acc_delta``)."""
    formats = [(p, _format(g, p)) for g in optimizer.param_groups for p in g["params"]]
    state = dict(state_dict["state"])
    for i, (p, fmt) in enumerate(formats):
        saved = state.get(i)
        if not isinstance(p, DTensor) or fmt is None or saved is None or "seed" not in saved:
            continue
        arrays = {
            key: _numpy(_local(saved[name]).cpu()) for key, name in _NAMES.items() if name in saved
        }
        portable = {"step": saved["step"], "seed": saved["seed"]}
        for key in ("E_g2", "E_dx2"):
            values = compact.dequantize(arrays, key, fmt)
            portable[_NAMES[key]] = _like(p, torch.from_numpy(values).to(_local(p).device))
        state[i] = portable
    return {"state": state, "param_groups": state_dict["param_groups"]}


def checked_state(
    optimizer: Adadelta, i: Any, saved: Any, p: torch.Tensor, position: int, fmt: str
) -> dict[str, Any]:
    """A checked copy of the saved portable state of DTensor parameter ``p``, encoded into the
    optimizer's compact format on this rank's shard (the inverse of
    :func:`portable_state_dict`); ValueError naming what is wrong."""
    assert isinstance(p, DTensor)
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
        t = torch.from_numpy(np.ascontiguousarray(array)).to(_local(p).device)
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


def check_float_state(i: Any, saved: Any, p: torch.Tensor) -> Any:
    """``saved``, the float state of DTensor parameter ``p``, refused (ValueError) if it is not
    laid out as the parameter (another shape, mesh or placement) or holds NaN, infinity or
    negative values."""
    assert isinstance(p, DTensor)
    if not isinstance(saved, Mapping):
        return saved
    where = f"state dict: state of parameter {i}"
    if "seed" in saved:
        raise ValueError(
            f"{where} is compact, its group keeps float32 state for it; convert it first with "
            "adadelta.torch.convert_state(state_dict, None)"
        )
    for name in ("square_avg", "acc_delta"):
        if name in saved:
            _check_like(where, name, saved[name], p, None)
            local = _local(saved[name])
            if not bool(torch.isfinite(local).all()) or bool((local < 0).any()):
                raise ValueError(f"{where}: {name!r} holds NaN, infinity or negative values")
    return saved


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
