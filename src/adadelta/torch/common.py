"""What the drop-in's paths share: PyTorch's hyperparameter checks, PyTorch's own step (the
fallback of every path), a grad scaler's unscaling, and zero-copy NumPy views of tensors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch.optim.adadelta import adadelta as torch_adadelta

FloatArray = npt.NDArray[Any]
Tensors = list[torch.Tensor]

_PLAIN_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


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


def _scalar_dtype() -> torch.dtype:
    """The dtype of the "step" tensor, as PyTorch chooses it."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


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
