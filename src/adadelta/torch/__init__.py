"""A drop-in replacement for ``torch.optim.Adadelta``: change the import, nothing else.

>>> import torch
>>> from adadelta.torch import Adadelta        # instead of: from torch.optim import Adadelta
>>> w = torch.tensor([3.0, -1.0], requires_grad=True)
>>> opt = Adadelta([w])                       # torch's defaults: lr=1.0, rho=0.9, eps=1e-6
>>> for _ in range(3):
...     opt.zero_grad()
...     (w * w).sum().backward()
...     opt.step()
>>> print(sorted(opt.state[w]))               # the same state as torch.optim.Adadelta
['acc_delta', 'square_avg', 'step']

Same signature (plus ``fused``), defaults, results (to rounding), state dicts (interchangeable
both ways with ``torch.optim.Adadelta``) and parameter groups. What differs:

- Speed, on the CPU: the contiguous float32/float64 parameters of a group (complex ones as
  pairs of reals) are updated by one call of the fused Numba kernel of :mod:`adadelta.kernels`,
  bfloat16/float16 ones by that of :mod:`adadelta.kernels.half` (float32 arithmetic), one pass
  over zero-copy NumPy views of the tensors' memory instead of about ten tensor operations
  each. What a step needs (the views, the table of addresses) is kept from step to step while
  a cheap comparison of the tensors' addresses and layouts shows that nothing moved, so a step
  costs about a microsecond per tensor beyond the arithmetic.
  float64 results agree with PyTorch's to about 1e-15 relative; float32 ones to a few units in
  the last place (PyTorch fuses some multiply-adds, and its vectorized sqrt is not always
  correctly rounded); 16-bit ones within PyTorch's tolerance for the dtype (PyTorch rounds to
  16 bits after every operation, the kernel once per stored value).
- Speed, on CUDA: the Triton kernel of :mod:`adadelta.torch.triton_kernel`, one launch for all
  tensors of a dtype (``fused=None`` or ``True``, and ``foreach`` not ``True``; Triton is
  imported only then). It takes a grad scaler's ``grad_scale`` and ``found_inf``, as PyTorch's
  fused Adam does.
- Everything else (other devices, non-contiguous tensors, tensor subclasses,
  ``differentiable=True``, ``capturable=True`` on the CPU, ``fused=False``, and any step traced
  by ``torch.compile``) goes through PyTorch's own ``torch.optim.adadelta.adadelta``. Under
  ``torch.compile`` the step is PyTorch's, traced like ``torch.optim.Adadelta``'s (its
  ``_init_group`` has the signature that TorchDynamo expects), so it compiles to what
  PyTorch's compiles to.
- Compact state (``state_dtype="bfloat16"`` or ``"float8"``, keyword-only, with ``seed``;
  contiguous float32 CPU parameters only): ``square_avg`` and ``acc_delta`` kept as the codes
  of :mod:`adadelta.kernels.compact` (uint16, or uint8 plus float32 ``*_scale`` tensors), an
  int64 ``step`` and the parameter's ``seed``; the step is :class:`adadelta.Adadelta`'s with the
  same state, bit for bit, and under ``torch.compile`` a graph break (it runs uncompiled).
  :func:`convert_state` moves state dicts to and from ``torch.optim.Adadelta``'s float32 ones.
- Validation: the hyperparameters are checked in ``add_param_group`` and ``load_state_dict``
  too (PyTorch checks only the constructor's), with PyTorch's messages, e.g.
  ``Invalid rho value: 1.5``.

Like ``torch.optim.Adadelta``, a step does not check the gradients for NaN or infinity; they
propagate into the parameters. (The NumPy optimizers of :mod:`adadelta` refuse such steps.)
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, overload

try:
    import torch
except ModuleNotFoundError as error:  # pragma: no cover - exercised in a subprocess
    if error.name != "torch":
        raise
    raise ImportError(
        "adadelta.torch needs PyTorch, which is not installed; "
        'install the extra with: pip install "adadelta[torch]"'
    ) from error

import numba
import numpy as np
import numpy.typing as npt
from torch._compile import _disable_dynamo
from torch.optim.adadelta import adadelta as torch_adadelta
from torch.optim.optimizer import ParamsT, _use_grad_for_differentiable

from adadelta import kernels
from adadelta.kernels import compact, half
from adadelta.kernels.parallel import _chunk

__all__ = ["Adadelta", "convert_state"]

FloatArray = npt.NDArray[Any]
Tensors = list[torch.Tensor]

_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
# the devices whose tensors go to the Triton kernel (the tests add "cpu", with its interpreter)
_TRITON_DEVICES = ("cuda",)
_TRITON_DTYPES = dict.fromkeys(
    (torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.complex64, torch.complex128)
)


def _check_hyperparameters(group: Mapping[str, Any]) -> None:
    """PyTorch's checks and messages for ``torch.optim.Adadelta`` (and for ``fused``, Adam's)."""
    lr = group["lr"]
    if isinstance(lr, torch.Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= group["rho"] <= 1.0:
        raise ValueError(f"Invalid rho value: {group['rho']}")
    if not 0.0 <= group["eps"]:
        raise ValueError(f"Invalid epsilon value: {group['eps']}")
    if not 0.0 <= group["weight_decay"]:
        raise ValueError(f"Invalid weight_decay value: {group['weight_decay']}")
    if group.get("fused"):
        if group["differentiable"]:
            raise RuntimeError("`fused` does not support `differentiable`")
        if group["foreach"]:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")


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
        seed: int = 0,
    ) -> None:
        if state_dtype is not None and state_dtype not in compact.FORMATS:
            raise ValueError(
                f"Invalid state_dtype value: {state_dtype!r} "
                f"(must be None or one of {list(compact.FORMATS)})"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 1 << 63:
            raise ValueError(f"Invalid seed value: {seed!r} (must be a non-negative integer)")
        self.state_dtype, self.seed = state_dtype, seed
        self._compact = None if state_dtype is None else compact.Stepper(state_dtype, seed)
        defaults: dict[str, Any] = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "capturable": capturable,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        _check_hyperparameters(defaults)
        self._plans: dict[int, _Plan] = {}  # by id(group)
        super().__init__(params, defaults)
        # A grad scaler hands its scale and inf flag to the step instead of unscaling the
        # gradients and reading the flag itself when every parameter goes to the GPU kernel.
        self._step_supports_amp_scaling = state_dtype is None and all(
            _triton_wanted(group) and p.device.type in _TRITON_DEVICES
            for group in self.param_groups
            for p in group["params"]
        )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters; its hyperparameters are checked like the constructor's."""
        _check_hyperparameters({**self.defaults, **param_group})
        if self.state_dtype is not None:
            params = param_group["params"]
            params = [params] if isinstance(params, torch.Tensor) else params
            if not isinstance(params, set):  # PyTorch refuses sets
                param_group = {**param_group, "params": list(params)}
                _check_compact({**self.defaults, **param_group}, self.state_dtype)
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict (ours or ``torch.optim.Adadelta``'s); its hyperparameters are checked
        first, and a refused state dict changes nothing."""
        for group in state_dict["param_groups"]:
            _check_hyperparameters({**self.defaults, **group})
        if self.state_dtype is None:
            for i, saved in state_dict["state"].items():
                if isinstance(saved, Mapping) and "seed" in saved:  # PyTorch would cast codes
                    raise ValueError(
                        f"state dict: state of parameter {i} is compact, this optimizer keeps "
                        "state_dtype=None; convert it first with "
                        "adadelta.torch.convert_state(state_dict, None)"
                    )
            super().load_state_dict(state_dict)
            return
        # compact: PyTorch would cast the codes to the parameters' dtype; check, then install
        for group in state_dict["param_groups"]:
            _check_compact({**self.defaults, **group, "params": []}, self.state_dtype)
        saved_ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        if len(saved_ids) != len(params) or len(state_dict["param_groups"]) != len(
            self.param_groups
        ):
            raise ValueError(
                "loaded state dict has a different number of parameter groups or parameters"
            )
        loaded = {}
        for i, p in zip(saved_ids, params, strict=True):
            if i in state_dict["state"]:
                loaded[p] = _checked_compact_state(i, state_dict["state"][i], p, self.state_dtype)
        super().load_state_dict({"state": {}, "param_groups": state_dict["param_groups"]})
        self.state.clear()
        self.state.update(loaded)

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "state_dtype": self.state_dtype, "seed": self.seed}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # As torch.optim.Adadelta: old pickles and state dicts may hold "step" as a number.
        super().__setstate__(state)
        self._plans = {}
        # (load_state_dict calls this too, with state and groups only: the format stays)
        self.state_dtype = state.get("state_dtype", getattr(self, "state_dtype", None))
        self.seed = state.get("seed", getattr(self, "seed", 0))
        self._compact = (
            None if self.state_dtype is None else compact.Stepper(self.state_dtype, self.seed)
        )
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("maximize", False)
            group.setdefault("differentiable", False)
            group.setdefault("capturable", False)
            group.setdefault("fused", None)
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
        if self._compact is not None:
            self._compact_step()
            return loss
        scaler = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        if torch.compiler.is_compiling():
            for group in self.param_groups:
                lists: tuple[Tensors, Tensors, Tensors, Tensors, Tensors] = ([], [], [], [], [])
                has_complex = self._init_group(group, *lists)
                _torch_step(group, *lists, has_complex=has_complex, scaler=scaler)
            return loss
        work = []
        for group in self.param_groups:
            params = group["params"]
            grads = [p.grad for p in params]
            # refused before anything changes (PyTorch would have stepped the earlier groups)
            for g in grads:
                if g is not None and g.is_sparse:
                    raise RuntimeError("Adadelta does not support sparse gradients")
            work.append((group, params, grads))
        for group, params, grads in work:
            plan = self._plans.get(id(group))
            if plan is None or not plan.current(group, params, grads, self.state):
                plan = self._plans[id(group)] = _Plan(self, group, params, grads)
            plan.step(group, grads, scaler)
        return loss

    # under torch.compile: a graph break, the step runs as it does without (as PyTorch's
    # load_state_dict; this decorator imports TorchDynamo only when called)
    @_disable_dynamo
    def _compact_step(self) -> None:
        """A step with compact state: the CPU kernel of :mod:`adadelta.kernels.compact` on
        zero-copy NumPy views, everything checked first."""
        assert self._compact is not None and self.state_dtype is not None
        work, position = [], 0
        for group in self.param_groups:
            _check_compact(group, self.state_dtype)
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
                            f"state_dtype={self.state_dtype!r}: parameter {position} needs a "
                            f"float32 CPU gradient of its shape, got {g.dtype} on {g.device}"
                        )
                    members.append((p, g, position))
                position += 1
            work.append((group, members))
        for group, members in work:
            if not members:
                continue
            hyper = {**_hyper(group)}
            views, grads, states = [], [], []
            for p, g, pos in members:
                state = self.state[p]
                if len(state) == 0:
                    state.update(_empty_compact(p, self.state_dtype, self.seed, pos))
                views.append(_numpy(p))
                grads.append(_numpy(g))
                states.append(_as_numpy_state(state))
            before = [dict(s) for s in states]
            self._compact.step([hyper], [views], states, [grads], fused=group["fused"] is not False)
            # the reference path (fused=False) writes new arrays: copy them into the tensors
            for (p, _, _), arrays, old in zip(members, states, before, strict=True):
                state = self.state[p]
                state["step"].fill_(arrays["step"])
                for key, name in _NAMES.items():
                    if key in arrays and arrays[key] is not old[key]:
                        state[name].copy_(torch.from_numpy(arrays[key]))


# compact state: the NumPy optimizer's names -> the drop-in's (PyTorch's) names
_NAMES = {
    "E_g2": "square_avg",
    "E_dx2": "acc_delta",
    "E_g2_scale": "square_avg_scale",
    "E_dx2_scale": "acc_delta_scale",
}


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
    as_numpy = {
        "state": {i: _to_numpy_state(s) for i, s in state_dict["state"].items()},
        "param_groups": state_dict["param_groups"],
    }
    converted = compact.convert_state(as_numpy, state_dtype, seed=seed)
    return {
        "state": {
            i: _to_torch_state(s, compact=state_dtype is not None)
            for i, s in converted["state"].items()
        },
        "param_groups": [{**g, "params": list(g["params"])} for g in converted["param_groups"]],
    }


class _Plan:
    """How the parameters of one group are stepped, kept while they stay as they were.

    Made from the group's parameters and gradients: which have a gradient; which go, by dtype,
    to a CPU kernel (with its :class:`~adadelta.kernels.Batch`, the table of addresses) or to
    the GPU kernel, and which to PyTorch. :meth:`current` compares, in one pass, what the
    kernels rely on (each parameter's and state tensor's address, size, layout and dtype, the
    gradient's type, device, dtype, size and layout) with what it was when the plan was made.
    """

    def __init__(
        self, optimizer: Adadelta, group: dict[str, Any], params: Tensors, grads: list[Any]
    ) -> None:
        self.group, self.params = group, list(params)
        self.flags = _flags(group)
        self.has_grad = [g is not None for g in grads]
        cpu_on = _fused_kernel() is not None and not (
            group["differentiable"] or group["capturable"] or group["fused"] is False
        )
        triton_on = _triton_wanted(group)
        cpu: dict[torch.dtype, list[int]] = {}
        self.triton: list[int] = []
        self.rest: list[int] = []
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if g is None:
                continue
            state = optimizer._state(p, group)
            v, u = state["square_avg"], state["acc_delta"]
            if cpu_on and p.device.type == "cpu" and _fusable(p, g, v, u, _CPU_DTYPES):
                cpu.setdefault(_CPU_DTYPES[p.dtype], []).append(i)
            elif triton_on and p.device.type in _TRITON_DEVICES and _fusable(p, g, v, u):
                self.triton.append(i)
            else:
                self.rest.append(i)
        self.states: list[dict[str, Any]] = [
            optimizer.state[p] if g is not None else {} for p, g in zip(params, grads, strict=True)
        ]
        self.indices = [i for i, g in enumerate(grads) if g is not None]
        self.complex = [i for i in self.indices if params[i].is_complex()]
        self.fused = [i for indices in cpu.values() for i in indices]
        # what the kernels read through addresses, and the state, as they were
        self.signature = _signatures(params, grads, self.states, optimizer.state, self.indices)
        self.lazy = _lazy_bits(params, grads, self.complex)
        hyper = _hyper(group)
        self.hyper = list(hyper.values())
        self.batches: list[tuple[kernels.Batch, list[int]]] = []
        for kernel_dtype, indices in cpu.items():
            kernel = _kernel(kernel_dtype)
            arrays = [
                {"E_g2": _numpy(state["square_avg"]), "E_dx2": _numpy(state["acc_delta"])}
                for state in (self.states[i] for i in indices)
            ]
            batch = kernels.Batch(kernel, hyper, [_numpy(params[i]) for i in indices], arrays)
            batch.arguments = kernel.arguments(hyper, arrays, batch.first, batch.dtype)
            self.batches.append((batch, indices))
        # the step counts of the fused tensors: added to by one compiled call (a float32 or
        # float64 CPU scalar each, as PyTorch makes them), the others by PyTorch
        counters: dict[torch.dtype, list[int]] = {}
        self.other_steps: list[int] = []
        for i in self.fused:
            step = self.states[i]["step"]
            if (
                type(step) is torch.Tensor
                and step.device.type == "cpu"
                and step.dtype in _LIKE
                and step.numel() == 1
            ):
                counters.setdefault(step.dtype, []).append(step.data_ptr())
            else:
                self.other_steps.append(i)
        self.counters = [
            (np.array([addresses], np.intp), _LIKE[dtype]) for dtype, addresses in counters.items()
        ]

    def current(
        self, group: dict[str, Any], params: Tensors, grads: list[Any], state: Mapping[Any, Any]
    ) -> bool:
        """Whether this plan still holds for these parameters and gradients of ``group``."""
        if group is not self.group or len(params) != len(self.params):
            return False
        if _flags(group) != self.flags:
            return False
        if not all(map(operator.is_, params, self.params)):
            return False
        if [g is not None for g in grads] != self.has_grad:
            return False
        signature = _signatures(params, grads, self.states, state, self.indices)
        return signature == self.signature and _lazy_bits(params, grads, self.complex) == self.lazy

    def step(
        self,
        group: dict[str, Any],
        grads: list[Any],
        scaler: tuple[torch.Tensor | None, torch.Tensor | None],
    ) -> None:
        params, states = self.params, self.states
        if self.batches:
            if scaler[0] is not None or scaler[1] is not None:
                unscaled = _unscaled([grads[i] for i in self.fused], scaler)
                if unscaled is None:  # the scaler found inf or NaN: no step
                    return
                grads = list(grads)
                for i, g in zip(self.fused, unscaled, strict=True):
                    grads[i] = g
            hyper = _hyper(group)
            values = list(hyper.values())
            same = len(values) == len(self.hyper) and all(
                type(a) is type(b) and a == b for a, b in zip(values, self.hyper, strict=True)
            )
            for batch, indices in self.batches:
                batch.addresses[1] = [grads[i].data_ptr() for i in indices]
                if not same:
                    batch.arguments = batch.kernel.arguments(
                        hyper, batch.states, batch.first, batch.dtype
                    )
                batch.call(False)
            self.hyper = values
            for addresses, like in self.counters:
                _count_steps(addresses, like)
            if self.other_steps:
                torch._foreach_add_([states[i]["step"] for i in self.other_steps], 1.0)
        if self.triton:
            triton = self.triton
            _triton_step(
                group,
                [params[i] for i in triton],
                [grads[i] for i in triton],
                [states[i] for i in triton],
                scaler,
            )
        if self.rest:
            lists: tuple[Tensors, Tensors, Tensors, Tensors, Tensors] = ([], [], [], [], [])
            for i in self.rest:
                state = states[i]
                assert state is not None
                for target, t in zip(
                    lists,
                    (params[i], grads[i], state["square_avg"], state["acc_delta"], state["step"]),
                    strict=True,
                ):
                    target.append(t)
            has_complex = any(torch.is_complex(p) for p in lists[0])
            _torch_step(group, *lists, has_complex=has_complex, scaler=scaler)


def _flags(group: Mapping[str, Any]) -> tuple[Any, ...]:
    """The hyperparameters that choose the paths."""
    return group["differentiable"], group["capturable"], group["fused"], group["foreach"]


def _signatures(
    params: Tensors,
    grads: list[Any],
    states: list[dict[str, Any]],
    state: Mapping[Any, Any],
    indices: list[int],
) -> list[tuple[Any, ...]]:
    """For each parameter of ``indices``: what the kernels rely on (the parameter's and its
    state tensors' identity, address, size and layout; the gradient's type, layout, device,
    dtype, size and contiguity) and whether its state is still ``states[i]``, in one pass of
    cheap calls (about a microsecond a tensor)."""
    return [
        (
            id(state.get(p := params[i])),
            p.data_ptr(),
            p.numel(),
            p.dtype,
            p.is_contiguous(),
            id(v := (s := states[i])["square_avg"]),
            v.data_ptr(),
            id(u := s["acc_delta"]),
            u.data_ptr(),
            id(c := s["step"]),
            c.data_ptr(),
            type(g := grads[i]),
            g.layout,
            g.device,
            g.dtype,
            g.numel(),
            g.is_contiguous(),
        )
        for i in indices
    ]


def _lazy_bits(params: Tensors, grads: list[Any], indices: list[int]) -> list[tuple[bool, ...]]:
    """The conjugate and negative bits of complex parameters and gradients (lazy views, whose
    memory is not what they read)."""
    return [
        (params[i].is_conj(), grads[i].is_conj(), grads[i].is_neg(), params[i].is_neg())
        for i in indices
    ]


_LIKE = {torch.float32: np.zeros(1, np.float32), torch.float64: np.zeros(1, np.float64)}


@numba.njit(cache=True)
def _count_steps(addresses: Any, like: Any) -> None:  # pragma: no cover (compiled)
    """Add one to the scalars at ``addresses[0]`` (of ``like``'s dtype)."""
    for t in range(addresses.shape[1]):
        _chunk(addresses, 0, t, 0, 1, like)[0] += 1


def _hyper(group: Mapping[str, Any]) -> dict[str, Any]:
    lr = group["lr"]
    return {
        "lr": float(lr),
        "rho": group["rho"],
        "eps": group["eps"],
        "weight_decay": group["weight_decay"],
        "maximize": group["maximize"],
        "decoupled_weight_decay": False,
    }


def _unscaled(
    grads: Tensors, scaler: tuple[torch.Tensor | None, torch.Tensor | None]
) -> Tensors | None:
    """The gradients divided by a grad scaler's scale, or None when its inf flag is set (the
    step is skipped); ``grads`` itself without a scaler."""
    grad_scale, found_inf = scaler
    if found_inf is not None and bool(found_inf.item()):
        return None
    if grad_scale is None or not grads:
        return grads
    return list(torch._foreach_div(grads, grad_scale.to(grads[0].device)))


def _torch_step(
    group: Mapping[str, Any],
    params: Tensors,
    grads: Tensors,
    square_avgs: Tensors,
    acc_deltas: Tensors,
    steps: Tensors,
    *,
    has_complex: bool,
    scaler: tuple[torch.Tensor | None, torch.Tensor | None],
) -> None:
    """PyTorch's own step (``torch.optim.adadelta.adadelta``), as ``torch.optim.Adadelta``'s."""
    if not params:
        return
    if scaler != (None, None):
        unscaled = _unscaled(grads, scaler)
        if unscaled is None:
            return
        grads = unscaled
    torch_adadelta(
        params,
        grads,
        square_avgs,
        acc_deltas,
        steps,
        capturable=group["capturable"],
        foreach=group["foreach"],
        differentiable=group["differentiable"],
        has_complex=has_complex,
        lr=group["lr"],
        rho=group["rho"],
        eps=group["eps"],
        weight_decay=group["weight_decay"],
        maximize=group["maximize"],
    )


def _triton_wanted(group: Mapping[str, Any]) -> bool:
    """Whether the group's GPU tensors go to the Triton kernel (if Triton is installed)."""
    return not (group["differentiable"] or group["foreach"] or group.get("fused", None) is False)


def _triton_step(
    group: Mapping[str, Any],
    params: Tensors,
    grads: Tensors,
    states: list[dict[str, Any]],
    scaler: tuple[torch.Tensor | None, torch.Tensor | None],
) -> None:
    """The GPU tensors of a group: one Triton launch per device and dtype (PyTorch's step
    where Triton is not installed, unless ``fused=True`` asked for the kernel)."""
    try:
        from adadelta.torch import triton_kernel
    except ImportError:
        if group["fused"]:
            raise RuntimeError(
                "fused=True on a GPU needs Triton (pip install triton); "
                "fused=None falls back to PyTorch's step without it"
            ) from None
        lists = ([s["square_avg"] for s in states], [s["acc_delta"] for s in states])
        has_complex = any(torch.is_complex(p) for p in params)
        steps = [s["step"] for s in states]
        _torch_step(group, params, grads, *lists, steps, has_complex=has_complex, scaler=scaler)
        return
    grad_scale, found_inf = scaler
    kinds: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, p in enumerate(params):
        kinds.setdefault((p.device, p.dtype), []).append(i)
    for (device, _), indices in kinds.items():
        triton_kernel.step(
            [params[i] for i in indices],
            [grads[i] for i in indices],
            [states[i]["square_avg"] for i in indices],
            [states[i]["acc_delta"] for i in indices],
            lr=group["lr"],
            rho=group["rho"],
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            maximize=group["maximize"],
            grad_scale=None if grad_scale is None else grad_scale.to(device),
            found_inf=None if found_inf is None else found_inf.to(device),
        )
    steps = [s["step"] for s in states]
    if found_inf is None:
        torch._foreach_add_(steps, 1.0)
    elif all(s.device == found_inf.device for s in steps):  # capturable: no synchronisation
        torch._foreach_add_(steps, 1.0)
        torch._foreach_sub_(steps, [found_inf.to(s.dtype) for s in steps])
    elif not bool(found_inf.item()):
        torch._foreach_add_(steps, 1.0)


def _scalar_dtype() -> torch.dtype:
    """The dtype of the "step" tensor, as PyTorch chooses it."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


# the CPU kernels, by parameter dtype (complex ones as pairs of reals): the key is the kernel's
_CPU_DTYPES = {
    torch.float32: torch.float32,
    torch.complex64: torch.float32,
    torch.float64: torch.float64,
    torch.complex128: torch.float64,
    torch.bfloat16: torch.bfloat16,
    torch.float16: torch.float16,
}


def _kernel(dtype: torch.dtype) -> kernels.Kernel:
    if dtype == torch.bfloat16:
        return half.ADADELTA_BFLOAT16
    if dtype == torch.float16:
        return half.ADADELTA_FLOAT16
    kernel = _fused_kernel()
    assert kernel is not None
    return kernel


def _fusable(
    param: torch.Tensor,
    grad: torch.Tensor,
    square_avg: torch.Tensor,
    acc_delta: torch.Tensor,
    dtypes: Mapping[torch.dtype, Any] | None = None,
) -> bool:
    """Whether a kernel can update these in place through their memory: plain, contiguous,
    strided tensors of one dtype (of ``dtypes``, or the GPU kernel's), device and shape."""
    if dtypes is None:
        dtypes = _TRITON_DTYPES
    dtype, shape, device = param.dtype, param.shape, param.device
    if dtype not in dtypes:
        return False
    for t in (param, grad, square_avg, acc_delta):
        if not (
            type(t) in _PLAIN_TENSOR_TYPES
            and t.device == device
            and t.dtype == dtype
            and t.shape == shape
            and t.layout == torch.strided
            and t.is_contiguous()
        ):
            return False
        if dtype.is_complex and (t.is_conj() or t.is_neg()):  # lazy views: memory not as read
            return False
    return True


def _numpy(t: torch.Tensor) -> FloatArray:
    """A NumPy view of a contiguous CPU tensor's memory (complex as pairs of reals, 16-bit
    floats as their bits)."""
    t = t.detach()
    if t.is_complex():
        t = torch.view_as_real(t)
    if t.dtype in (torch.bfloat16, torch.float16):
        bits: FloatArray = t.view(torch.int16).numpy().view(np.uint16)
        return bits
    array: FloatArray = t.numpy()
    return array


def _fused_kernel() -> kernels.Kernel | None:
    """The fused ADADELTA kernel of :mod:`adadelta.kernels` (None turns the CPU kernels off)."""
    return kernels.ADADELTA
