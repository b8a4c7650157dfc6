"""The drop-in's GPU path: the Triton kernel of :mod:`adadelta.torch.triton_kernel`, imported
only when a GPU tensor is stepped, one launch per device and dtype."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from adadelta.torch import compact_state
from adadelta.torch.common import Tensors, _torch_step

# the devices whose tensors go to the Triton kernel (the tests add "cpu", with its interpreter)
_TRITON_DEVICES = ("cuda",)
_TRITON_DTYPES = dict.fromkeys(
    (torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.complex64, torch.complex128)
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
        if group.get("fused"):
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


class _TritonCompactBatch:
    """The compact-state tensors of one group, device and parameter dtype on a GPU, stepped by
    one launch of :func:`adadelta.torch.triton_kernel.compact_step`, with the CPU loop's bits
    (the interface of :class:`compact_state._CompactBatch`). The keys of the random bits come
    from the seeds and the step counts, which stay on the CPU as the CPU path keeps them
    (:class:`compact_state._KeyStream`), and reach the device by one asynchronous copy a step."""

    def __init__(
        self, state_dtype: str, params: Tensors, states: list[dict[str, Any]], hyper: list[Any]
    ) -> None:
        self.state_dtype, self.params, self.states = state_dtype, list(params), list(states)
        self.stream = compact_state._KeyStream(states)
        self.set_hyper(hyper)

    def set_hyper(self, hyper: list[Any]) -> None:
        """The hyperparameters (``_hyper``'s values) as the kernel reads them: float32."""
        self.hyper = [float(v) for v in compact_state._hyper_row(hyper)]
        self.maximize = bool(hyper[4])

    def step(self, grads: list[torch.Tensor]) -> None:
        """One step of the batch's tensors with these (contiguous) gradients."""
        from adadelta.torch import triton_kernel

        keys = torch.from_numpy(self.stream.advance().view(np.int64))
        device = self.params[0].device
        if device.type == "cuda":  # pinned, so that the copy is asynchronous; the allocator
            # keeps the pinned block until the copy has run
            keys = keys.pin_memory().to(device, non_blocking=True)
        triton_kernel.compact_step(
            self.state_dtype, self.params, grads, self.states, keys, self.hyper,
            maximize=self.maximize,
        )  # fmt: skip


def _compact_batch(
    state_dtype: str, params: Tensors, states: list[dict[str, Any]], hyper: list[Any]
) -> compact_state._CompactBatch | _TritonCompactBatch:
    """The batch that steps these compact-state tensors (one device and parameter dtype): the
    Triton kernel's on a device of :data:`_TRITON_DEVICES`, else the CPU's compiled loop."""
    kind = (
        _TritonCompactBatch
        if params[0].device.type in _TRITON_DEVICES
        else compact_state._CompactBatch
    )
    return kind(state_dtype, params, states, hyper)
