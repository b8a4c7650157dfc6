"""The drop-in optimizer class: ``torch.optim.Adadelta``'s interface, the paths chosen per
tensor (:mod:`adadelta.torch.cpu`, :mod:`adadelta.torch.gpu`, PyTorch's own step)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, overload

import torch
from torch._compile import _disable_dynamo
from torch.optim.optimizer import ParamsT, _use_grad_for_differentiable

from adadelta.kernels import compact
from adadelta.torch import gpu
from adadelta.torch.common import Tensors, _check_hyperparameters, _scalar_dtype, _torch_step
from adadelta.torch.compact_state import (
    MIN_COMPACT_SIZE,
    _check_compact,
    _checked_compact_state,
    _format,
    _is_compact,
)
from adadelta.torch.cpu import _Plan, _StateOwner, _validate


def _sharded(params: list[Any]) -> bool:
    """Whether any of ``params`` is a DTensor (FSDP2, tensor parallelism), stepped and saved by
    :mod:`adadelta.torch.distributed` (imported then; free when ``torch.distributed.tensor``
    never was, as no DTensor can exist)."""
    module = sys.modules.get("torch.distributed.tensor")
    return module is not None and any(isinstance(p, module.DTensor) for p in params)


class Adadelta(torch.optim.Optimizer):
    r"""ADADELTA (Zeiler, 2012, arXiv:1212.5701) as ``torch.optim.Adadelta``, fused.

    .. math::

        v_t = \rho v_{t-1} + (1-\rho) g_t^2, \qquad
        \Delta x_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} g_t, \qquad
        u_t = \rho u_{t-1} + (1-\rho) \Delta x_t^2, \qquad
        \theta_t = \theta_{t-1} - \mathrm{lr} \cdot \Delta x_t

    with :math:`g_t` the gradient (negated if ``maximize``, plus ``weight_decay`` times the
    parameter), :math:`v` the state ``square_avg`` (the paper's :math:`E[g^2]`) and :math:`u` the
    state ``acc_delta`` (:math:`E[\Delta x^2]`). The arguments are those of
    ``torch.optim.Adadelta``; note PyTorch's defaults (``rho=0.9``, ``lr=1.0``), not the paper's
    ``rho=0.95``. ``fused``: ``None`` (the default) and ``True`` use the fused kernels where
    they apply, ``False`` PyTorch's own code everywhere (with compact state: the NumPy
    reference, :func:`adadelta.kernels.compact.reference_step`). ``state_dtype`` (None,
    ``"bfloat16"``, ``"float8"``) and ``seed``: compact state, as :class:`adadelta.Adadelta`'s.
    """

    # Constructed under torch.compile (a whole test or training function compiled), a graph
    # break: TorchDynamo traced this constructor and then ran add_param_group, called by
    # torch.optim.Optimizer's constructor at its own graph break, before the attributes set
    # here (AttributeError: no attribute 'state_dtype'). PyTorch's constructor breaks the
    # graph too (its add_param_group is not traced either).
    @_disable_dynamo
    def __init__(
        self,
        params: ParamsT,
        lr: float | torch.Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        state_dtype: str | None = None,
        min_compact_size: int = MIN_COMPACT_SIZE,
        seed: int = 0,
    ) -> None:
        _check_policy(state_dtype, min_compact_size)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
            raise ValueError(f"Invalid seed value: {seed!r} (must be a non-negative integer)")
        self.state_dtype, self.min_compact_size, self.seed = state_dtype, min_compact_size, seed
        defaults: dict[str, Any] = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "capturable": capturable,
            "foreach": foreach,
            "differentiable": differentiable,
        }
        if fused is not None:  # torch.optim.Adadelta has no "fused": its groups keep none
            defaults["fused"] = fused
        _check_hyperparameters(defaults)
        self._plans: dict[int, _Plan] = {}  # by id(group)
        self._local_states: dict[torch.Tensor, Any] = {}  # DTensor parameters' (distributed)
        super().__init__(params, defaults)
        # A grad scaler hands its scale and inf flag to the step instead of unscaling the
        # gradients and reading the flag itself when every parameter goes to the GPU kernel.
        self._step_supports_amp_scaling = all(
            "state_dtype" not in group
            and gpu._triton_wanted(group)
            and p.device.type in gpu._TRITON_DEVICES
            for group in self.param_groups
            for p in group["params"]
        )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters; its hyperparameters are checked like the constructor's.
        Its ``state_dtype`` and ``min_compact_size`` default to the constructor's; a group with
        compact state keeps both among its hyperparameters, one with float32 state neither (its
        hyperparameters are then exactly ``torch.optim.Adadelta``'s)."""
        _check_hyperparameters({**self.defaults, **param_group})
        param_group = _with_policy(
            param_group,
            param_group.get("state_dtype", self.state_dtype),
            param_group.get("min_compact_size", self.min_compact_size),
        )
        if "state_dtype" in param_group:
            params = param_group["params"]
            params = [params] if isinstance(params, torch.Tensor) else params
            if not isinstance(params, set):  # PyTorch refuses sets
                param_group = {**param_group, "params": list(params)}
                _check_compact({**self.defaults, **param_group}, param_group["state_dtype"])
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict (ours or ``torch.optim.Adadelta``'s); its hyperparameters are checked
        first, and a refused state dict changes nothing. A saved group's ``state_dtype`` and
        ``min_compact_size`` replace the group's, as its other hyperparameters do; a saved group
        without them (float32 state) keeps the group's. Each parameter's saved state must be in
        the format that its group's policy gives it (:func:`convert_state` converts)."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        groups = []
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            _check_hyperparameters({**self.defaults, **saved})
            if "state_dtype" in saved:
                policy = saved["state_dtype"], saved.get("min_compact_size", MIN_COMPACT_SIZE)
            else:
                policy = group.get("state_dtype"), group.get("min_compact_size", 0)
            _check_policy(*policy)
            groups.append(_with_policy({**saved, "params": group["params"]}, *policy))
        saved_ids = [i for group in saved_groups for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        if len(saved_ids) != len(params):
            raise ValueError("loaded state dict has a different number of parameters")
        loaded, plain = {}, {}
        position = 0
        for group in groups:
            if "state_dtype" in group:
                _check_compact({**self.defaults, **group}, group["state_dtype"])
            for p in group["params"]:
                i = saved_ids[position]
                position += 1
                if i not in state_dict["state"]:
                    continue
                saved = state_dict["state"][i]
                fmt = _format(group, p)
                if _sharded([p]):  # compact state saved decoded (distributed.portable_state_dict)
                    from adadelta.torch import distributed

                    if fmt is None:
                        plain[i] = distributed.check_float_state(i, saved, p)
                    else:
                        loaded[p] = distributed.checked_state(self, i, saved, p, position - 1, fmt)
                elif fmt is not None:
                    loaded[p] = _checked_compact_state(i, saved, p, fmt)
                elif _is_compact(saved):  # PyTorch would cast the codes to floats
                    raise ValueError(
                        f"state dict: state of parameter {i} is compact, its group keeps "
                        "float32 state for it; convert it first with "
                        "adadelta.torch.convert_state(state_dict, None)"
                    )
                else:
                    plain[i] = saved
        super().load_state_dict({"state": plain, "param_groups": saved_groups})
        for group, new in zip(self.param_groups, groups, strict=True):
            group.pop("state_dtype", None)
            group.pop("min_compact_size", None)
            group.update({k: new[k] for k in ("state_dtype", "min_compact_size") if k in new})
        self.state.update(loaded)
        self._plans = {}

    def state_dict(self) -> dict[str, Any]:
        """The state dict, as ``torch.optim.Adadelta``'s; the compact state of DTensor
        parameters decoded to float32 DTensors, which distributed checkpoints reshard
        (:mod:`adadelta.torch.distributed`)."""
        state_dict = super().state_dict()
        params = [p for group in self.param_groups for p in group["params"]]
        if any("state_dtype" in group for group in self.param_groups) and _sharded(params):
            from adadelta.torch import distributed

            return distributed.portable_state_dict(self, state_dict)
        return state_dict

    def __getstate__(self) -> dict[str, Any]:
        policy = {"state_dtype": self.state_dtype, "min_compact_size": self.min_compact_size}
        return {**super().__getstate__(), **policy, "seed": self.seed}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # As torch.optim.Adadelta: old pickles and state dicts may hold "step" as a number.
        super().__setstate__(state)
        self._plans = {}
        # (load_state_dict calls this too, with state and groups only: the format stays)
        self.state_dtype = state.get("state_dtype", getattr(self, "state_dtype", None))
        self.seed = state.get("seed", getattr(self, "seed", 0))
        self.min_compact_size = state.get(
            "min_compact_size", getattr(self, "min_compact_size", MIN_COMPACT_SIZE)
        )
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("capturable", False)
            for p in group["params"]:
                p_state = self.state.get(p, {})
                if len(p_state) != 0 and not torch.is_tensor(p_state["step"]):
                    p_state["step"] = torch.tensor(
                        float(p_state["step"]),
                        dtype=_scalar_dtype(),
                        device=p.device if group["capturable"] else None,
                    )

    def _state(self, p: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]:
        """The state of ``p``, created (as PyTorch creates it) on first use."""
        state: dict[str, Any] = self.state[p]
        if len(state) == 0:
            state["step"] = torch.zeros(
                (), dtype=_scalar_dtype(), device=p.device if group["capturable"] else None
            )
            state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["acc_delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _init_group(
        self,
        group: dict[str, Any],
        params_with_grad: Tensors,
        grads: Tensors,
        square_avgs: Tensors,
        acc_deltas: Tensors,
        state_steps: Tensors,
    ) -> bool:
        """PyTorch's: fill the lists with the parameters that have a gradient, their gradients
        and state (created on first use); whether one is complex. TorchDynamo runs this method
        (by its name and signature) outside the traced graph, as for ``torch.optim.Adadelta``."""
        has_complex = False
        for p in group["params"]:
            if p.grad is None:
                continue
            has_complex |= torch.is_complex(p)
            params_with_grad.append(p)
            if p.grad.is_sparse:
                raise RuntimeError("Adadelta does not support sparse gradients")
            grads.append(p.grad)
            state = self._state(p, group)
            square_avgs.append(state["square_avg"])
            acc_deltas.append(state["acc_delta"])
            state_steps.append(state["step"])
        return has_complex

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @_use_grad_for_differentiable  # PyTorch's: grad mode, graph breaks
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform a single optimization step.

        Args:
            closure: a closure that reevaluates the model and returns the loss (optional).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        scaler = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        if any("state_dtype" in group for group in self.param_groups):
            self._step_with_compact_state(scaler)
            return loss
        if torch.compiler.is_compiling():
            for group in self.param_groups:
                lists: tuple[Tensors, Tensors, Tensors, Tensors, Tensors] = ([], [], [], [], [])
                has_complex = self._init_group(group, *lists)
                _torch_step(group, *lists, has_complex=has_complex, scaler=scaler)
            return loss
        self._fused_step(scaler)
        return loss

    def _fused_step(self, scaler: tuple[torch.Tensor | None, torch.Tensor | None]) -> None:
        """Every group by its plan (checked for all groups before any group steps); DTensor
        parameters on their local shards (:mod:`adadelta.torch.distributed`)."""
        steps, offset = [], 0
        for group in self.param_groups:
            params = group["params"]
            grads = [p.grad for p in params]
            if _sharded(params):
                from adadelta.torch import distributed

                if "state_dtype" in group:
                    steps.append(distributed.compact_step(self, group, grads, offset, scaler))
                else:
                    owner, local, local_grads = distributed.local_view(self, group, params, grads)
                    steps.append(self._planned(group, owner, local, local_grads, offset, scaler))
            else:
                steps.append(self._planned(group, self, params, grads, offset, scaler))
            offset += len(params)
        for step in steps:
            step()

    def _planned(
        self,
        group: dict[str, Any],
        owner: _StateOwner,
        params: Tensors,
        grads: list[Any],
        offset: int,
        scaler: tuple[torch.Tensor | None, torch.Tensor | None],
    ) -> Callable[[], None]:
        """The group's step by its plan (made again if stale), checked now, to run later."""
        plan = self._plans.get(id(group))
        if plan is None or not plan.current(group, params, grads, owner.state):
            _validate(owner, group, params, grads, offset)
            plan = None

        def step() -> None:
            nonlocal plan
            if plan is None:
                plan = self._plans[id(group)] = _Plan(owner, group, params, grads, offset)
            plan.step(group, grads, scaler)

        return step

    # under torch.compile: a graph break, the step runs as it does without (as PyTorch's
    # load_state_dict; this decorator imports TorchDynamo only when called)
    @_disable_dynamo
    def _step_with_compact_state(
        self, scaler: tuple[torch.Tensor | None, torch.Tensor | None]
    ) -> None:
        self._fused_step(scaler)


def _check_policy(state_dtype: Any, min_compact_size: Any) -> None:
    if state_dtype is not None and state_dtype not in compact.FORMATS:
        raise ValueError(
            f"Invalid state_dtype value: {state_dtype!r} "
            f"(must be None or one of {list(compact.FORMATS)})"
        )
    if (
        isinstance(min_compact_size, bool)
        or not isinstance(min_compact_size, int)
        or min_compact_size < 0
    ):
        raise ValueError(
            f"Invalid min_compact_size value: {min_compact_size!r} (must be a non-negative integer)"
        )


def _with_policy(
    group: dict[str, Any], state_dtype: str | None, min_compact_size: int
) -> dict[str, Any]:
    """``group`` with the policy keys: both for compact state, neither for float32 state."""
    _check_policy(state_dtype, min_compact_size)
    group = {k: v for k, v in group.items() if k not in ("state_dtype", "min_compact_size")}
    if state_dtype is not None:
        group.update(state_dtype=state_dtype, min_compact_size=min_compact_size)
    return group
