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
- Compact state (``state_dtype="bfloat16"`` or ``"float8"``, keyword-only, with ``seed`` and
  ``min_compact_size``; per parameter group too; contiguous float32, bfloat16 or float16 CPU
  parameters): ``square_avg`` and ``acc_delta`` of the tensors with at least
  ``min_compact_size`` (4096) elements kept as the codes of :mod:`adadelta.kernels.compact`
  (uint16, or uint8 plus float32 ``*_scale`` tensors), an int64 ``step`` and the parameter's
  ``seed``; smaller tensors keep float32 state. A group's compact tensors are stepped by one
  compiled call (per parameter dtype), kept from step to step as the float32 path's; a float32
  parameter's step is :class:`adadelta.Adadelta`'s with the same state, bit for bit, a 16-bit
  one's that step on its values rounded to nearest. Under ``torch.compile`` a step with
  compact state is a graph break (it runs uncompiled). :func:`convert_state` moves state dicts
  to and from ``torch.optim.Adadelta``'s float32 ones.
- Validation: the hyperparameters are checked in ``add_param_group`` and ``load_state_dict``
  too (PyTorch checks only the constructor's), with PyTorch's messages, e.g.
  ``Invalid rho value: 1.5``.

Like ``torch.optim.Adadelta``, a step does not check the gradients for NaN or infinity; they
propagate into the parameters. (The NumPy optimizers of :mod:`adadelta` refuse such steps.)

The modules: :mod:`~adadelta.torch.optimizer` (the class), :mod:`~adadelta.torch.cpu` (the fused
CPU path), :mod:`~adadelta.torch.gpu` and :mod:`~adadelta.torch.triton_kernel` (the GPU path),
:mod:`~adadelta.torch.compact_state` (compact state and :func:`convert_state`),
:mod:`~adadelta.torch.common` (what they share, PyTorch's own step among it).
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ModuleNotFoundError as error:  # pragma: no cover - exercised in a subprocess
    if error.name != "torch":
        raise
    raise ImportError(
        "adadelta.torch needs PyTorch, which is not installed; "
        'install the extra with: pip install "adadelta[torch]"'
    ) from error

from adadelta.torch.compact_state import convert_state
from adadelta.torch.optimizer import Adadelta

__all__ = ["Adadelta", "convert_state"]
