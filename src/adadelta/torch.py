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

Same signature, defaults, results (to rounding), state dicts (interchangeable both ways with
``torch.optim.Adadelta``) and parameter groups. What differs:

- Speed: on the CPU, the contiguous float32/float64 parameters of a group (complex ones as
  pairs of reals) are updated by one call of the fused Numba kernel of :mod:`adadelta.kernels`,
  one pass over zero-copy NumPy views of the tensors' memory instead of about ten tensor
  operations each. Everything else (CUDA and other devices, non-contiguous tensors, tensor
  subclasses, ``differentiable=True``, ``capturable=True``) goes through PyTorch's own code.
  float64 results agree with PyTorch's to about 1e-15 relative; float32 ones to a few units in
  the last place (PyTorch fuses some multiply-adds, and its vectorized sqrt is not always
  correctly rounded).
- Validation: the hyperparameters are checked in ``add_param_group`` and ``load_state_dict``
  too (PyTorch checks only the constructor's), with PyTorch's messages, e.g.
  ``Invalid rho value: 1.5``.

Like ``torch.optim.Adadelta``, a step does not check the gradients for NaN or infinity; they
propagate into the parameters. (The NumPy optimizers of :mod:`adadelta` refuse such steps.)
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, overload

try:
    import torch
except ModuleNotFoundError as error:  # pragma: no cover - exercised in a subprocess
    if error.name != "torch":
        raise
    raise ImportError(
        "adadelta.torch needs PyTorch, which is not installed; "
        'install the extra with: pip install "adadelta[torch]"'
    ) from error

import numpy as np
import numpy.typing as npt
from torch.optim.adadelta import adadelta as torch_adadelta
from torch.optim.optimizer import ParamsT

from adadelta import kernels

__all__ = ["Adadelta"]

FloatArray = npt.NDArray[np.floating[Any]]

_FUSED_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)
_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def _check_hyperparameters(group: Mapping[str, Any]) -> None:
    """PyTorch's checks and messages for ``torch.optim.Adadelta``."""
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


class Adadelta(torch.optim.Optimizer):
    r"""ADADELTA (Zeiler, 2012, arXiv:1212.5701) as ``torch.optim.Adadelta``, fused on the CPU.

    .. math::

        v_t = \rho v_{t-1} + (1-\rho) g_t^2, \qquad
        \Delta x_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} g_t, \qquad
        u_t = \rho u_{t-1} + (1-\rho) \Delta x_t^2, \qquad
        \theta_t = \theta_{t-1} - \mathrm{lr} \cdot \Delta x_t

    with :math:`g_t` the gradient (negated if ``maximize``, plus ``weight_decay`` times the
    parameter), :math:`v` the state ``square_avg`` (the paper's :math:`E[g^2]`) and :math:`u` the
    state ``acc_delta`` (:math:`E[\Delta x^2]`). The arguments are those of
    ``torch.optim.Adadelta``; note PyTorch's defaults (``rho=0.9``, ``lr=1.0``), not the paper's
    ``rho=0.95``.
    """

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
    ) -> None:
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
        _check_hyperparameters(defaults)
        self._numpy_views: dict[torch.Tensor, _Views] = {}
        self._batches: dict[tuple[int, torch.dtype], _Cached] = {}  # by (id(group), dtype)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters; its hyperparameters are checked like the constructor's."""
        _check_hyperparameters({**self.defaults, **param_group})
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict (ours or ``torch.optim.Adadelta``'s); its hyperparameters are checked
        first, and a refused state dict changes nothing."""
        for group in state_dict["param_groups"]:
            _check_hyperparameters({**self.defaults, **group})
        super().load_state_dict(state_dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # As torch.optim.Adadelta: old pickles and state dicts may hold "step" as a number.
        super().__setstate__(state)
        self._numpy_views = {}
        self._batches = {}
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

    def _init_group(
        self, group: dict[str, Any]
    ) -> tuple[
        list[torch.Tensor],
        list[torch.Tensor],
        list[torch.Tensor],
        list[torch.Tensor],
        list[torch.Tensor],
    ]:
        """The parameters with a gradient, their gradients and state (created on first use)."""
        params, grads, square_avgs, acc_deltas, steps = [], [], [], [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if len(state) == 0:
                state["step"] = torch.zeros(
                    (), dtype=_scalar_dtype(), device=p.device if group["capturable"] else None
                )
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["acc_delta"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            params.append(p)
            grads.append(p.grad)
            square_avgs.append(state["square_avg"])
            acc_deltas.append(state["acc_delta"])
            steps.append(state["step"])
        return params, grads, square_avgs, acc_deltas, steps

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Perform a single optimization step.

        Args:
            closure: a closure that reevaluates the model and returns the loss (optional).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Refuse before changing anything (PyTorch would have stepped the earlier groups).
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    raise RuntimeError("Adadelta does not support sparse gradients")
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            for group in self.param_groups:
                self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        params, grads, square_avgs, acc_deltas, steps = self._init_group(group)
        kernel = None if group["differentiable"] or group["capturable"] else _fused_kernel()
        if kernel is not None:
            tensors = (params, grads, square_avgs, acc_deltas, steps)
            fused = [_fusable(p, g, v, u) for p, g, v, u, _ in zip(*tensors, strict=True)]
            by_dtype: dict[torch.dtype, list[int]] = {}
            for i in itertools.compress(range(len(params)), fused):
                by_dtype.setdefault(params[i].dtype.to_real(), []).append(i)
            hyper = {
                "lr": float(group["lr"]),
                "rho": group["rho"],
                "eps": group["eps"],
                "weight_decay": group["weight_decay"],
                "maximize": group["maximize"],
                "decoupled_weight_decay": False,
            }
            for dtype, indices in by_dtype.items():
                torch._foreach_add_([steps[i] for i in indices], 1.0)  # one call, not one each
                self._fused_update(
                    (id(group), dtype),
                    kernel,
                    hyper,
                    [params[i] for i in indices],
                    [_as_numpy(grads[i]) for i in indices],
                    [self._views(params[i], square_avgs[i], acc_deltas[i]) for i in indices],
                )
            rest = [not f for f in fused]
            params, grads, square_avgs, acc_deltas, steps = (
                list(itertools.compress(ts, rest)) for ts in tensors
            )
        if params:
            torch_adadelta(
                params,
                grads,
                square_avgs,
                acc_deltas,
                steps,
                capturable=group["capturable"],
                foreach=group["foreach"],
                differentiable=group["differentiable"],
                has_complex=any(torch.is_complex(p) for p in params),
                lr=group["lr"],
                rho=group["rho"],
                eps=group["eps"],
                weight_decay=group["weight_decay"],
                maximize=group["maximize"],
            )

    def _fused_update(
        self,
        key: tuple[int, torch.dtype],
        kernel: kernels.Kernel,
        hyper: dict[str, Any],
        params: list[torch.Tensor],
        grads: list[FloatArray],
        views: list[tuple[FloatArray, FloatArray, FloatArray]],
    ) -> None:
        """One step for ``params`` (one real dtype of a group: ``key`` is ``(id(group), dtype)``),
        in place, by one call of the fused kernel on NumPy views of the gradients and of the
        parameters and their state.

        PyTorch's ``square_avg`` and ``acc_delta`` are the paper's E[g^2] and E[dx^2], the
        state of :func:`adadelta.rules.adadelta`, whose operations the kernel does in the same
        order. The kernel's :class:`~adadelta.kernels.Batch` (the table of addresses and the
        cut into chunks) is made once and kept while the same views (the same tensors, in the
        same order: see :meth:`_views`) go to it; a step then only adds the gradients.
        """
        cached = self._batches.get(key)
        if (
            cached is None
            or len(cached.views) != len(views)
            or not all(map(operator.is_, cached.views, views))
        ):
            states = [{"step": 0, "E_g2": v, "E_dx2": u} for _, v, u in views]
            batch = kernels.Batch(kernel, hyper, [x for x, _, _ in views], states)
            cached = self._batches[key] = _Cached(views, batch)
        cached.batch.step(hyper, grads, check=False)

    def _views(
        self, param: torch.Tensor, square_avg: torch.Tensor, acc_delta: torch.Tensor
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """NumPy views of a parameter and its state, made once and reused while the tensors are
        the same and keep their memory (making them anew costs a few microseconds a tensor)."""
        memory = (param.data_ptr(), square_avg.data_ptr(), acc_delta.data_ptr(), param.numel())
        views = self._numpy_views.get(param)
        if (
            views is None
            or views.square_avg is not square_avg
            or views.acc_delta is not acc_delta
            or views.memory != memory
        ):
            arrays = (_as_numpy(param), _as_numpy(square_avg), _as_numpy(acc_delta))
            views = _Views(square_avg, acc_delta, memory, arrays)
            self._numpy_views[param] = views
        return views.arrays


class _Cached(NamedTuple):
    views: list[tuple[FloatArray, FloatArray, FloatArray]]  # what the batch was made from
    batch: kernels.Batch


class _Views(NamedTuple):
    square_avg: torch.Tensor
    acc_delta: torch.Tensor
    memory: tuple[int, int, int, int]  # the three data pointers and the number of elements
    arrays: tuple[FloatArray, FloatArray, FloatArray]  # parameter, E[g^2], E[dx^2]


def _scalar_dtype() -> torch.dtype:
    """The dtype of the "step" tensor, as PyTorch chooses it."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _fusable(
    param: torch.Tensor, grad: torch.Tensor, square_avg: torch.Tensor, acc_delta: torch.Tensor
) -> bool:
    """Whether the fused kernel can update these in place through NumPy views of their memory."""
    dtype, shape = param.dtype, param.shape
    if dtype not in _FUSED_DTYPES:
        return False
    for t in (param, grad, square_avg, acc_delta):
        if not (
            type(t) in _PLAIN_TENSOR_TYPES
            and t.is_cpu
            and t.dtype == dtype
            and t.shape == shape
            and t.layout == torch.strided
            and t.is_contiguous()
        ):
            return False
        if dtype.is_complex and (t.is_conj() or t.is_neg()):  # lazy views: memory not as read
            return False
    return True


def _as_numpy(t: torch.Tensor) -> FloatArray:
    """A NumPy view of a contiguous CPU tensor's memory (complex as pairs of reals)."""
    if t.is_complex():
        t = torch.view_as_real(t)
    array: FloatArray = (t.detach() if t.requires_grad else t).numpy()
    return array


def _fused_kernel() -> kernels.Kernel | None:
    """The fused ADADELTA kernel of :mod:`adadelta.kernels` (None turns the fused path off)."""
    return kernels.ADADELTA
