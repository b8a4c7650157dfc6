"""ADADELTA over bfloat16 and float16 arrays: 16-bit storage, float32 arithmetic.

NumPy has no bfloat16 and Numba no float16 on the CPU, so the arrays arrive as their bits
(``uint16``) and each element is widened to float32 when read and rounded to nearest (even)
when written: bfloat16 by integer operations on the float32 bits, float16 by LLVM's own
``half`` conversions (one instruction each with F16C). This is how PyTorch's CPU kernels treat
these dtypes, except that PyTorch rounds to 16 bits after each tensor operation of the step and
this loop rounds once per stored value (the parameter, E[g^2], E[dx^2]).

The operations are PyTorch's, in its order: RMS[dx]_{t-1} / RMS[g]_t as two square roots
divided (the float32 kernel of :mod:`adadelta.kernels.loops` takes one root of the quotient,
see the package docstring). The kernel is driven by :class:`adadelta.kernels.Batch` like the
others (one compiled call a step for all arrays of the batch, cut into chunks over threads),
but never checks the gradients for NaN or infinity: its user, the PyTorch drop-in, does not
either (``check`` must be False).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numba
import numpy as np

from adadelta.kernels.batch import ADADELTA, BoolArray, Kernel, StateDict
from adadelta.kernels.compact import _narrow, _widen
from adadelta.kernels.loops import _adadelta_gradient
from adadelta.kernels.parallel import _chunk, _part

_LIKE = np.zeros(1, np.uint16)  # the element type of the arrays' memory, for _chunk


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _adadelta_half(
    addresses: Any,
    chunks: Any,
    check: bool,
    parts: int,
    c: Any,
    maximize: bool,
    weight_decay: bool,
    like: Any,
    bf16: bool,
) -> int:
    # addresses rows: x, g, E[g^2], E[dx^2] (16-bit); c columns: lr, rho, 1 - rho, eps, wd
    for p in numba.prange(parts):
        first_chunk, last_chunk = _part(chunks, parts, p)
        for k in range(first_chunk, last_chunk):
            t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
            x = _chunk(addresses, 0, t, start, end, like)
            g = _chunk(addresses, 1, t, start, end, like)
            E_g2 = _chunk(addresses, 2, t, start, end, like)
            E_dx2 = _chunk(addresses, 3, t, start, end, like)
            lr, rho, one_minus_rho, eps, wd = c[t, 0], c[t, 1], c[t, 2], c[t, 3], c[t, 4]
            for i in range(end - start):
                xi = _widen(x[i], bf16)
                gi = _adadelta_gradient(xi, _widen(g[i], bf16), wd, maximize, weight_decay, False)
                Eg = rho * _widen(E_g2[i], bf16) + one_minus_rho * gi * gi
                Edx = _widen(E_dx2[i], bf16)
                dx = np.sqrt(Edx + eps) / np.sqrt(Eg + eps) * gi
                E_g2[i] = _narrow(Eg, bf16)
                E_dx2[i] = _narrow(rho * Edx + one_minus_rho * dx * dx, bf16)
                x[i] = _narrow(xi - lr * dx, bf16)
    return -1


def _arguments(bf16: bool) -> Any:
    def arguments(
        hyper: Mapping[str, Any],
        states: Sequence[StateDict],
        first: BoolArray,
        dtype: np.dtype[Any],
    ) -> tuple[Any, ...]:
        if hyper["decoupled_weight_decay"]:
            raise ValueError("the 16-bit ADADELTA kernel adds weight decay to the gradient only")
        lr, rho, wd = hyper["lr"], hyper["rho"], hyper["weight_decay"]
        c = np.array([[lr, rho, 1 - rho, hyper["eps"], wd]] * len(states), np.float32)
        return c, hyper["maximize"], wd != 0, _LIKE, bf16

    return arguments


# The arrays are the 16-bit patterns (np.uint16 views), the state as ADADELTA's (E_g2, E_dx2).
ADADELTA_BFLOAT16 = Kernel(_adadelta_half, ADADELTA.rows, _arguments(bf16=True))
ADADELTA_FLOAT16 = Kernel(_adadelta_half, ADADELTA.rows, _arguments(bf16=False))
