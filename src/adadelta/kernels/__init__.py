"""Fused kernels: one in-place, single-pass, parallel Numba loop per optimizer.

Each kernel computes what its rule in :mod:`adadelta.rules` computes, but reads every array
once and writes the parameter and the state in place, with no temporaries. The rules stay the
reference: ``tests/test_kernels.py`` checks every kernel against them on every configuration of
the test matrix (within 4 ulps), and the optimizers' ``fused = False`` uses the rules instead.

How the kernels are written, and why:

- **The rules' rounding.** The hyperparameters arrive already cast to the arrays' dtype
  (``np.array(values, dtype)``), which is what NumPy's promotion of a Python scalar does in the
  rules, so a float32 parameter is updated in float32 arithmetic. The operations are the rules'
  operations in the rules' order, without ``fastmath`` (LLVM then neither reorders nor fuses
  them into FMAs): SGD, Adagrad, RMSprop and Adam agree with their rules to the last bit on
  x86-64. ADADELTA's float32 kernel is the one exception: it computes RMS[dx]_{t-1} / RMS[g]_t
  as ``sqrt((E[dx^2] + eps) / (E[g^2] + eps))``, one division and one square root where the
  rule (like PyTorch and optax) takes two square roots and divides them. Both operations run
  on the same divider unit of the core, which bounds the loop at small sizes. A single step is
  a little more accurate so (one rounding fewer: 0.40 ulps from the exact step on average and
  2.6 at most, against 0.54 and 3.5 for two roots), and it differs from the rule's step by at
  most 4 ulps; over trajectories of 100 to 1000 steps neither form is measurably closer to a
  long-double reference, since the rounding of the gradients and of the averages dominates
  (``benchmarks/one_root_accuracy.py``, ``benchmarks/results/one_root_accuracy.md``). The
  quotient must stay within float32's normal range (it leaves it when one RMS exceeds the
  other by a factor of 1e19): a block of elements where one quotient does not is computed with
  the rule's two roots instead, exactly as the rule. The float64 kernel takes the rule's two
  roots, and is the rule's arithmetic bit for bit: float64 is where results are checked
  against other implementations, and its steps are rarely where the time goes.
  ``benchmarks/adadelta_ratio.py`` times both forms.
- **One compiled call per step for all arrays of a dtype.** Arrays are passed as a table of
  addresses, and the work is cut into chunks of at most :data:`CHUNK` elements across all of
  them, as many for each thread (``prange``). Two hundred small tensors so cost about what one
  large one does. (A ``numba.typed.List`` of the gradients, built anew each step, costs about
  90 us even for one array.) A :class:`Batch` builds the table and the chunks once and keeps
  them while the optimizer's parameters and state are the same arrays, which it also keeps
  alive.
- **The finiteness check before the update, in the same compiled call.** With ``check``, the
  kernel first scans every gradient (reading 4 bytes per element) and writes nothing if one
  holds NaN or infinity, returning the index of the first such array: a step cannot be undone
  once written. Below :data:`PARALLEL_MIN` elements the scan and the update run on the
  caller's thread, one after the other; above it, the scan is a parallel region of its own
  and the update another. No thread waits for another's verdict inside a region.
- **How many threads.** One below :data:`PARALLEL_MIN` (about a million elements), all of
  Numba's above: in a training loop the matrix products between two steps leave the other
  threads asleep, and waking them costs more than they save on fewer elements. The compact
  state's kernels cost more per element (``parallel.ELEMENT_COST``), and run on all threads
  from as much work: bfloat16 state from about 830,000 elements, float8 from 560,000. Numba's
  OpenMP threads sleep as soon as a region ends (``GOMP_SPINCOUNT=0``, set when the first
  kernel call starts the pool), so that they never hold a core that BLAS or another process
  needs. See the guide "NumPy optimizers", Threads.
- ``error_model="numpy"``: a division by zero gives inf or NaN as in NumPy, rather than a
  Python exception whose check would stop LLVM from vectorizing the loop.
- ``cache=True``: compiled once, the machine code is reused by later processes.

:class:`Batch` takes C-contiguous arrays of one dtype and the optimizers' per-parameter state
dicts, creates missing state as the rules would, updates everything in place, and counts the
step. It does not validate its inputs: the optimizers of :mod:`adadelta.optimizers` do that,
and send everything else to the rules.
"""

from __future__ import annotations

from adadelta.kernels.batch import (
    ADADELTA,
    ADAGRAD,
    ADAM,
    RMSPROP,
    SGD,
    Batch,
    Kernel,
    SharedMemoryError,
    fusable,
    same_objects,
)
from adadelta.kernels.parallel import CHUNK, PARALLEL_MIN, first_non_finite
from adadelta.kernels.parallel import _address as address

__all__ = [
    "ADADELTA",
    "ADAGRAD",
    "ADAM",
    "CHUNK",
    "PARALLEL_MIN",
    "RMSPROP",
    "SGD",
    "Batch",
    "Kernel",
    "SharedMemoryError",
    "address",
    "first_non_finite",
    "fusable",
    "same_objects",
]
