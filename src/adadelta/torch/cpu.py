"""The drop-in's CPU path: the fused Numba kernels of :mod:`adadelta.kernels` over zero-copy
NumPy views of a group's tensors, with what a step needs (the views, the table of addresses)
kept in a :class:`_Plan` while the tensors stay where they were."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any, Protocol

import numba
import numpy as np
import torch

from adadelta import kernels
from adadelta.kernels import half
from adadelta.kernels.parallel import _chunk
from adadelta.torch import compact_state, gpu
from adadelta.torch.common import (
    _PLAIN_TENSOR_TYPES,
    FloatArray,
    Tensors,
    _hyper,
    _numpy,
    _torch_step,
    _unscaled,
)


class _StateOwner(Protocol):
    """What a plan reads of an optimizer: its state, its seed (compact state's), and its state
    of a parameter, created on first use (:class:`adadelta.torch.Adadelta`, or its view of
    DTensors' local shards)."""

    @property
    def state(self) -> Any: ...

    @property
    def seed(self) -> int: ...

    def _state(self, p: torch.Tensor, group: Mapping[str, Any]) -> dict[str, Any]: ...


class _Plan:
    """How the parameters of one group are stepped, kept while they stay as they were.

    Made from the group's parameters and gradients: which have a gradient; which go, by dtype,
    to a CPU kernel (with its :class:`~adadelta.kernels.Batch`, the table of addresses) or to
    the GPU kernel, and which to PyTorch. :meth:`current` compares, in one pass, what the
    kernels rely on (each parameter's and state tensor's address, size, layout and dtype, the
    gradient's type, device, dtype, size and layout) with what it was when the plan was made.
    """

    def __init__(
        self,
        optimizer: _StateOwner,
        group: dict[str, Any],
        params: Tensors,
        grads: list[Any],
        offset: int = 0,
    ) -> None:
        self.group, self.params = group, list(params)
        self.flags = _flags(group)
        self.has_grad = [g is not None for g in grads]
        cpu_on = _fused_kernel() is not None and not (
            group["differentiable"] or group["capturable"] or group.get("fused") is False
        )
        triton_on = gpu._triton_wanted(group)
        cpu: dict[torch.dtype, list[int]] = {}
        self.triton: list[int] = []
        self.rest: list[int] = []
        # compact state: by parameter dtype, stepped by one call each (or the reference)
        self.state_dtype: str | None = group.get("state_dtype")
        compact_members: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        _validate(optimizer, group, params, grads, offset)
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if g is None:
                continue
            fmt = compact_state._format(group, p) if self.state_dtype else None
            if fmt is not None:
                state = optimizer.state[p]
                if len(state) == 0:
                    state.update(compact_state._empty_compact(p, fmt, optimizer.seed, offset + i))
                compact_members.setdefault((p.device, p.dtype), []).append(i)
                continue
            state = optimizer._state(p, group)
            v, u = state["square_avg"], state["acc_delta"]
            if cpu_on and p.device.type == "cpu" and _fusable(p, g, v, u, _CPU_DTYPES):
                cpu.setdefault(_CPU_DTYPES[p.dtype], []).append(i)
            elif triton_on and p.device.type in gpu._TRITON_DEVICES and _fusable(p, g, v, u):
                self.triton.append(i)
            else:
                self.rest.append(i)
        self.states: list[dict[str, Any]] = [
            optimizer.state[p] if g is not None else {} for p, g in zip(params, grads, strict=True)
        ]
        self.compact = [i for indices in compact_members.values() for i in indices]
        self.indices = [i for i, g in enumerate(grads) if g is not None and i not in self.compact]
        self.complex = [i for i in self.indices if params[i].is_complex()]
        self.fused = [i for indices in cpu.values() for i in indices]
        # what the kernels read through addresses, and the state, as they were
        self.signature = _signatures(params, grads, self.states, optimizer.state, self.indices)
        self.compact_signature = compact_state._signatures(
            params, grads, self.states, optimizer.state, self.compact
        )
        self.lazy = _lazy_bits(params, grads, self.complex)
        self.compact_memory = _spans(
            t
            for i in self.compact
            for t in (params[i], *self.states[i].values())
            if isinstance(t, torch.Tensor)
        )
        hyper = _hyper(group)
        self.hyper = list(hyper.values())
        # compact members: one batch per device and parameter dtype (the CPU's compiled loop,
        # or the Triton kernel on a GPU), or the reference (fused=False)
        self.compact_batches: list[
            tuple[compact_state._CompactBatch | gpu._TritonCompactBatch, list[int]]
        ] = []
        self.compact_reference = group.get("fused") is False
        self.contiguous_grads = all(grads[i].is_contiguous() for i in self.compact)
        if not self.compact_reference:
            for indices in compact_members.values():
                assert self.state_dtype is not None
                compact_batch = gpu._compact_batch(
                    self.state_dtype,
                    [params[i] for i in indices],
                    [self.states[i] for i in indices],
                    self.hyper,
                )
                self.compact_batches.append((compact_batch, indices))
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
        if signature != self.signature or _lazy_bits(params, grads, self.complex) != self.lazy:
            return False
        compact = compact_state._signatures(params, grads, self.states, state, self.compact)
        if compact != self.compact_signature:
            return False
        # gradients move from step to step: one that now overlaps what the compact kernel
        # writes (a parameter or state of the plan) makes the plan stale, and the full
        # checks then name it
        return not _overlaps(self.compact_memory, [grads[i] for i in self.compact])

    def step(
        self,
        group: dict[str, Any],
        grads: list[Any],
        scaler: tuple[torch.Tensor | None, torch.Tensor | None],
    ) -> None:
        params, states = self.params, self.states
        if self.compact:
            self._compact_step(group, grads, scaler)
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
            same = self._same_hyper(values)
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
            gpu._triton_step(
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

    def _same_hyper(self, values: list[Any]) -> bool:
        return len(values) == len(self.hyper) and all(
            type(a) is type(b) and a == b for a, b in zip(values, self.hyper, strict=True)
        )

    def _compact_step(
        self,
        group: dict[str, Any],
        grads: list[Any],
        scaler: tuple[torch.Tensor | None, torch.Tensor | None],
    ) -> None:
        """The compact members' step: one compiled call per batch, after the hyperparameters
        (if they changed) and the gradients' addresses; non-contiguous gradients copied."""
        compact_grads = [grads[i] for i in self.compact]
        if scaler[0] is not None or scaler[1] is not None:
            unscaled = _unscaled(compact_grads, scaler)
            if unscaled is None:
                return
            grads = list(grads)
            for i, g in zip(self.compact, unscaled, strict=True):
                grads[i] = g
            compact_grads = unscaled
        hyper = _hyper(group)
        values = list(hyper.values())
        if self.compact_reference:
            assert self.state_dtype is not None
            compact_state._reference_step(
                group,
                [self.params[i] for i in self.compact],
                compact_grads,
                [self.states[i] for i in self.compact],
                self.state_dtype,
                hyper,
            )
            return
        same = self._same_hyper(values)
        for batch, indices in self.compact_batches:
            if not same:
                batch.set_hyper(values)
            if self.contiguous_grads:
                batch.step([grads[i] for i in indices])
            else:  # copies, held until the call ends
                batch.step([grads[i].contiguous() for i in indices])
        if not same and not self.batches:
            self.hyper = values


def _spans(tensors: Any) -> tuple[FloatArray, FloatArray]:
    """The memory of ``tensors`` as start addresses in order and, for each, the furthest end
    among it and those before (for :func:`_overlaps`)."""
    spans = sorted((t.data_ptr(), t.data_ptr() + t.numel() * t.element_size()) for t in tensors)
    starts = np.array([start for start, _ in spans], np.int64)
    ends = np.array([end for _, end in spans], np.int64)
    return starts, np.maximum.accumulate(ends) if len(ends) else ends


def _overlaps(spans: tuple[FloatArray, FloatArray], tensors: Tensors) -> bool:
    """Whether the memory of any of ``tensors`` overlaps a span of :func:`_spans` (a few
    microseconds for hundreds of tensors)."""
    starts, reach = spans
    if not tensors or not len(starts):
        return False
    first = np.array([t.data_ptr() for t in tensors], np.int64)
    last = first + np.array([t.numel() * t.element_size() for t in tensors], np.int64)
    before = np.searchsorted(starts, last, side="left")  # spans that start before each end
    seen = before > 0
    return bool(np.any(reach[before[seen] - 1] > first[seen]))


def _validate(
    optimizer: _StateOwner, group: dict[str, Any], params: Tensors, grads: list[Any], offset: int
) -> None:
    """Refuse, before anything changes, a step that a plan for these could not make: sparse
    gradients; with compact state, what it does not support (ValueError naming it), and state
    in another format than the group's policy gives the parameter."""
    for g in grads:
        if g is not None and g.is_sparse:
            raise RuntimeError("Adadelta does not support sparse gradients")
    state_dtype = group.get("state_dtype")
    if state_dtype is not None:
        compact_state._check_compact(group, state_dtype)
    members = []
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        if g is None:
            continue
        state = optimizer.state.get(p, {})
        fmt = compact_state._format(group, p) if state_dtype else None
        if fmt is not None:
            compact_state._check_grad(offset + i, p, g, fmt)
            if len(state) != 0:
                compact_state._check_layout(f"state of parameter {offset + i}", state, p, fmt)
            members.append((p, g, offset + i))
        else:
            compact_state._check_float(offset + i, state)
    if members:  # no array sharing memory with another, nor a gradient with any
        assert state_dtype is not None
        compact_state._check_compact_state(optimizer.state, state_dtype, members)


def _flags(group: Mapping[str, Any]) -> tuple[Any, ...]:
    """The hyperparameters that choose the paths."""
    return (
        group["differentiable"],
        group["capturable"],
        group.get("fused"),
        group["foreach"],
        group.get("state_dtype"),
        group.get("min_compact_size"),
    )


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
        dtypes = gpu._TRITON_DTYPES
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


def _fused_kernel() -> kernels.Kernel | None:
    """The fused ADADELTA kernel of :mod:`adadelta.kernels` (None turns the CPU kernels off)."""
    return kernels.ADADELTA
