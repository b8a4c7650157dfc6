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
  x86-64. ADADELTA's kernel is the one exception: it computes RMS[dx]_{t-1} / RMS[g]_t as
  ``sqrt((E[dx^2] + eps) / (E[g^2] + eps))``, one division and one square root where the rule
  (like PyTorch and optax) takes two square roots and divides them. Both operations run on the
  same divider unit of the core, which bounds the loop at small sizes; the step moves by an ulp
  or two, and is closer to the exact value (one rounding fewer). The quotient must stay
  within the dtype's normal range, which it leaves only when the gradients' RMS exceeds the
  steps' RMS by a factor of 1e19 (float32): there it loses precision, and the rule does not.
  ``benchmarks/adadelta_ratio.py`` times both forms and measures their error.
- **One compiled call per step for all arrays of a dtype.** Arrays are passed as a table of
  addresses, and the work is cut into chunks of at most :data:`CHUNK` elements across all of
  them, as many for each thread (``prange``). Two hundred small tensors so cost about what one
  large one does. (A ``numba.typed.List`` of the gradients, built anew each step, costs about
  90 us even for one array.) A :class:`Batch` builds the table and the chunks once and keeps
  them while the optimizer's parameters and state are the same arrays, which it also keeps
  alive.
- **The finiteness check in the same parallel region.** With ``check``, each thread's part
  of the chunks first scans its gradients (reading 4 bytes per element), publishes its verdict
  and waits for the other parts' before it writes: a step cannot be undone once written, so
  every scan has to finish first. The kernel returns the index of the first array holding NaN
  or infinity, having written nothing. One region instead of a region for the scan and another
  for the update saves a region's start, about 2 us of a 1e5-element step (see ``_may_write``
  for the waiting, and for what happens when a thread is late).
- ``error_model="numpy"``: a division by zero gives inf or NaN as in NumPy, rather than a
  Python exception whose check would stop LLVM from vectorizing the loop.
- ``cache=True``: compiled once, the machine code is reused by later processes.

:class:`Batch` takes C-contiguous arrays of one dtype and the optimizers' per-parameter state
dicts, creates missing state as the rules would, updates everything in place, and counts the
step. It does not validate its inputs: the optimizers of :mod:`adadelta.optimizers` do that,
and send everything else to the rules.
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic
from numba.np.numpy_support import carray

from adadelta.rules import FloatArray

# By default Numba's OpenMP threads spin for milliseconds after each parallel loop (GOMP's
# 300,000 iterations), taking the cores from the BLAS threads of the matrix products that run
# between two optimizer steps; on 2 cores a training epoch of the paper's network ran several
# times slower (compare `GOMP_SPINCOUNT=300000 adadelta bench epoch` with `adadelta bench
# epoch`). A short spin keeps the threads awake from one step to the next and idle soon after.
# It must be set before Numba starts its OpenMP runtime (the first parallel loop); a user's own
# GOMP_SPINCOUNT or OMP_WAIT_POLICY wins.
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"

__all__ = [
    "ADADELTA",
    "ADAGRAD",
    "ADAM",
    "CHUNK",
    "RMSPROP",
    "SGD",
    "Batch",
    "Kernel",
    "first_non_finite",
    "fusable",
    "same_objects",
]

CHUNK = 4096  # elements per unit of parallel work: small enough to balance 1e5 elements
# Below this many elements one thread is faster than waking the others (a few microseconds
# on an idle machine, milliseconds on a busy one, where a thread may wait for a core).
PARALLEL_MIN = 1 << 15

IntArray = np.ndarray[Any, np.dtype[np.intp]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
StateDict = dict[str, Any]


# --- the machinery: arrays from addresses, and chunks over all arrays ---


@intrinsic
def _pointer(typingctx: Any, address: Any, like: Any) -> Any:
    """The address (an integer) as a pointer to elements of ``like``'s dtype."""
    signature = types.CPointer(like.dtype)(address, like)  # type: ignore[no-untyped-call]

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.inttoptr(args[0], context.get_value_type(sig.return_type))

    return signature, codegen


@numba.njit(cache=True, error_model="numpy")
def _chunk(addresses: Any, row: int, t: int, start: int, end: int, like: Any) -> Any:
    """Elements ``start:end`` of array ``t`` of row ``row`` of the address table, as elements of
    ``like``'s dtype. The kernels loop over such slices from index 0: LLVM then knows that no
    index is negative, drops Python's negative-index wraparound, and vectorizes the loop (with
    ``range(start, end)`` it does not)."""
    return carray(_pointer(addresses[row, t], like), end)[start:end]  # type: ignore[call-arg]


@numba.njit(cache=True, error_model="numpy")
def _chunks(sizes: Any, threads: int) -> Any:
    """Rows ``(array index, first element, end)`` that cut every array in pieces, the units of
    parallel work. The pieces have one size, at most :data:`CHUNK` elements and a multiple of 16
    (each starts on a 64-byte line), chosen to make a multiple of ``threads`` pieces of all the
    elements, so that one large array gives each thread as much work (25 pieces of 4096 for 1e5
    elements would give one of two threads 13 and the other 12: 6% more time). Rounding the
    size up to 16 can leave a few pieces fewer, which only happens when there are hundreds."""
    total = 0
    for t in range(sizes.size):
        total += sizes[t]
    pieces = max(1, -(-total // (CHUNK * threads))) * threads
    size = min(CHUNK, max(16, -(-total // (pieces * 16)) * 16))
    count = 0
    for t in range(sizes.size):
        count += -(-sizes[t] // size)
    chunks = np.empty((count, 3), np.intp)
    c = 0
    for t in range(sizes.size):
        for start in range(0, sizes[t], size):
            chunks[c, 0] = t
            chunks[c, 1] = start
            chunks[c, 2] = min(start + size, sizes[t])
            c += 1
    return chunks


@functools.cache
def _thread_count_controls() -> tuple[Callable[[], int], Callable[[int], None]]:
    """Numba's getter and setter of this thread's number of threads for parallel loops.

    The public ``numba.get_num_threads``/``set_num_threads`` cost about 2 us a call; the
    functions they wrap, about 0.2 us.
    """
    numba.get_num_threads()  # starts the thread pool, which defines the fast ones
    parallel = numba.np.ufunc.parallel
    get, set_ = (
        getattr(parallel, "_get_num_threads", None),
        getattr(parallel, "_set_num_threads", None),
    )
    if callable(get) and callable(set_):
        return get, set_
    return numba.get_num_threads, numba.set_num_threads  # pragma: no cover


def _threads(elements: int) -> int:
    """The number of threads that :func:`_launch` runs a kernel over ``elements`` on."""
    return _thread_count_controls()[0]() if elements >= PARALLEL_MIN else 1


def _launch(kernel: Any, elements: int, *args: Any) -> Any:
    """``kernel(*args)``, on one thread if there are fewer than :data:`PARALLEL_MIN` elements."""
    if elements >= PARALLEL_MIN:
        return kernel(*args)
    get_threads, set_threads = _thread_count_controls()
    threads = get_threads()
    set_threads(1)
    try:
        return kernel(*args)
    finally:
        set_threads(threads)


@numba.njit(cache=True)
def _data_address(a: Any) -> int:  # pragma: no cover (compiled)
    return a.ctypes.data  # type: ignore[no-any-return]


def _address(a: FloatArray) -> int:
    """The address of ``a``'s first element (cheaper than ``a.ctypes.data``, which builds a
    ctypes object on every call)."""
    return int(_data_address(a))


# --- the finiteness scan ---


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc"})
def _sum_is_finite(values: Any) -> bool:
    # A sum is infinite or NaN if some term is (inf + finite = inf, inf - inf = NaN, NaN + any =
    # NaN), so a finite sum proves every term finite; the converse fails only when finite terms
    # overflow (about 1e35 each, in float32), which the caller checks again exactly. "reassoc"
    # lets LLVM add in any order, hence vectorize; it is the only fast-math flag given, so NaN
    # and infinity keep their IEEE meaning. (values is not empty: values[0] - values[0] is a
    # zero of its dtype, or NaN.)
    total = values[0] - values[0]
    for i in range(values.size):
        total += values[i]
    return bool(total - total == 0)


@numba.njit(cache=True, error_model="numpy")
def _all_finite(values: Any) -> bool:
    """Whether no value is NaN or infinite: the sum's test, and element by element if it fails."""
    if _sum_is_finite(values):
        return True
    for i in range(values.size):
        if not np.isfinite(values[i]):
            return False
    return True


@numba.njit(cache=True, error_model="numpy", inline="always")
def _first_bad(addresses: Any, chunks: Any, like: Any) -> int:
    """The index of the first array of row 1 of ``addresses`` (the gradients, in every kernel)
    that holds NaN or infinity, or -1; chunk by chunk, for when a scan found one."""
    for c in range(chunks.shape[0]):
        t, start, end = chunks[c, 0], chunks[c, 1], chunks[c, 2]
        if not _all_finite(_chunk(addresses, 1, t, start, end, like)):
            return int(t)
    return -1


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _first_non_finite(addresses: Any, chunks: Any, like: Any) -> int:
    count = 0
    for c in numba.prange(chunks.shape[0]):
        t, start, end = chunks[c, 0], chunks[c, 1], chunks[c, 2]
        count += not _all_finite(_chunk(addresses, 1, t, start, end, like))
    return -1 if count == 0 else _first_bad(addresses, chunks, like)


def first_non_finite(arrays: Sequence[FloatArray]) -> int:
    """The index of the first array holding NaN or infinity, or -1 if all are finite.

    One parallel pass over the contiguous float32/float64 arrays (the others are checked with
    NumPy); nothing is allocated beyond a few words per array.
    """
    by_dtype: dict[np.dtype[Any], list[int]] = {}
    first_bad = -1
    for i, a in enumerate(arrays):
        if a.dtype in _LIKE and _contiguous(a):
            by_dtype.setdefault(a.dtype, []).append(i)
        elif not np.isfinite(a).all():
            first_bad = i
            break
    for dtype, indices in by_dtype.items():
        if first_bad >= 0:
            indices = [i for i in indices if i < first_bad]
            if not indices:
                continue
        addresses = np.array([[0] * len(indices), [_address(arrays[i]) for i in indices]], np.intp)
        sizes = np.array([arrays[i].size for i in indices], np.intp)
        elements = int(sizes.sum())
        chunks = _chunks(sizes, _threads(elements))
        bad = _launch(_first_non_finite, elements, addresses, chunks, _LIKE[dtype])
        if bad >= 0 and (first_bad < 0 or indices[bad] < first_bad):
            first_bad = indices[bad]
    return first_bad


# a zero of each dtype: its type is the kernels' element type, its value the scan's zero
_LIKE = {np.dtype(np.float32): np.zeros(1, np.float32), np.dtype(np.float64): np.zeros(1)}


# --- the check in the kernels' parallel region: each part scans, then waits for the others ---

# A part's verdict in a step is 4 * epoch + one of these (the epoch counts a batch's calls, so
# the verdicts of earlier calls are all smaller and the array is never reset)
_FINITE, _NON_FINITE, _WRITTEN = 0, 1, 2
_LEFT = -2  # the kernel's outcome when a part is still to be written


@intrinsic
def _load_acquire(typingctx: Any, array: Any, index: Any) -> Any:
    """``array[index]`` as an atomic load with acquire ordering: read anew on every call (a plain
    load in a loop would be read once), and what its writer wrote before it is visible after."""
    signature = array.dtype(array, index)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        return builder.load_atomic(builder.gep(data, [args[1]]), "acquire", 8)

    return signature, codegen


@intrinsic
def _store_release(typingctx: Any, array: Any, index: Any, value: Any) -> Any:
    """``array[index] = value`` as an atomic store with release ordering (see ``_load_acquire``)."""
    signature = types.void(array, index, array.dtype)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        builder.store_atomic(args[2], builder.gep(data, [args[1]]), "release", 8)
        return context.get_dummy_value()

    return signature, codegen


@numba.njit(cache=True, error_model="numpy", inline="always")
def _start(chunks: Any, threads: int, verdicts: Any) -> tuple[int, int]:
    """The number of parts of this call, one per thread that it runs on (at most one per chunk),
    and its epoch, counted in ``verdicts[0]``; ``verdicts[1 + p]`` holds part ``p``'s verdict."""
    epoch = verdicts[0] + 1
    verdicts[0] = epoch
    return min(threads, chunks.shape[0]), epoch


@numba.njit(cache=True, error_model="numpy", inline="always")
def _part(chunks: Any, parts: int, p: int) -> tuple[int, int]:
    """The chunks ``first:last`` of part ``p`` of ``parts`` (one part per thread)."""
    count = chunks.shape[0]
    return p * count // parts, (p + 1) * count // parts


@numba.njit(cache=True, error_model="numpy", inline="always")
def _publish(verdicts: Any, epoch: int, p: int, verdict: int) -> None:
    """Part ``p``'s verdict in this call (``_FINITE``, ``_NON_FINITE`` or ``_WRITTEN``)."""
    _store_release(verdicts, p + 1, 4 * epoch + verdict)  # type: ignore[call-arg]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _verdict(verdicts: Any, epoch: int, p: int) -> int:
    """Part ``p``'s verdict in this call, negative while it has published none."""
    return _load_acquire(verdicts, p + 1) - 4 * epoch  # type: ignore[call-arg]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _may_write(
    addresses: Any,
    chunks: Any,
    check: bool,
    again: int,
    parts: int,
    verdicts: Any,
    epoch: int,
    p: int,
    like: Any,
) -> bool:
    """Whether part ``p`` may write its chunks: without ``check`` at once; with it, once its
    gradients and every other part's are known to be finite. The part scans its gradients,
    publishes its verdict in ``verdicts``, and waits for the others' (the threads of a
    parallel region run at once, so they come within about a scan's time). A part that finds
    NaN or infinity, or sees another part's, writes nothing; so does a part that stops waiting
    (after a few spins per element of its own, when its thread runs the parts one after another
    or the machine is busy): the kernel runs the region ``again`` for it, once every verdict is
    in and finite."""
    if again:
        return check and _verdict(verdicts, epoch, p) == _FINITE
    if not check:
        return True
    first, last = _part(chunks, parts, p)
    finite, elements = True, 0
    for k in range(first, last):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        finite &= _all_finite(_chunk(addresses, 1, t, start, end, like))
        elements += end - start
    _publish(verdicts, epoch, p, _FINITE if finite else _NON_FINITE)
    patience, q = elements + 65536, 0
    while finite and q < parts:
        verdict = _verdict(verdicts, epoch, q)
        if verdict == _NON_FINITE:
            finite = False
        elif verdict >= 0:
            q += 1
        else:
            patience -= 1
            if patience < 0:
                return False
    return finite


@numba.njit(cache=True, error_model="numpy", inline="always")
def _wrote(check: bool, verdicts: Any, epoch: int, p: int) -> None:
    if check:
        _publish(verdicts, epoch, p, _WRITTEN)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _outcome(
    addresses: Any, chunks: Any, check: bool, parts: int, verdicts: Any, epoch: int, like: Any
) -> int:
    """After the region: the first array holding NaN or infinity (nothing was written),
    ``_LEFT`` if a part stopped waiting and has yet to be written, or -1 (all written)."""
    if not check:
        return -1
    outcome = -1
    for p in range(parts):
        verdict = _verdict(verdicts, epoch, p)
        if verdict == _NON_FINITE:
            return _first_bad(addresses, chunks, like)
        if verdict == _FINITE:
            outcome = _LEFT
    return outcome


# --- the kernels: one per rule of adadelta.rules, the same operations in the same order ---


@numba.njit(cache=True, error_model="numpy", inline="always")
def _adadelta_part(
    addresses: Any,
    chunks: Any,
    parts: int,
    p: int,
    c: Any,
    maximize: bool,
    weight_decay: bool,
    decoupled: bool,
) -> None:
    first_chunk, last_chunk = _part(chunks, parts, p)
    for k in range(first_chunk, last_chunk):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        x, g = _chunk(addresses, 0, t, start, end, c), _chunk(addresses, 1, t, start, end, c)
        E_g2 = _chunk(addresses, 2, t, start, end, c)
        E_dx2 = _chunk(addresses, 3, t, start, end, c)
        lr, rho, one_minus_rho, eps, wd = c[t, 0], c[t, 1], c[t, 2], c[t, 3], c[t, 4]
        for i in range(end - start):
            xi, gi = x[i], g[i]
            if maximize:
                gi = -gi
            if weight_decay:
                if decoupled:
                    xi = xi - xi * wd * lr
                else:
                    gi = gi + wd * xi
            Eg = rho * E_g2[i] + one_minus_rho * gi * gi  # accumulate the gradient first
            Edx = E_dx2[i]  # the old E[dx^2]: RMS[dx]_{t-1}
            # RMS[dx]_{t-1} / RMS[g]_t as one square root of the quotient, where the rule takes
            # two square roots and divides them (see the module docstring)
            dx = -np.sqrt((Edx + eps) / (Eg + eps)) * gi
            E_g2[i] = Eg
            E_dx2[i] = rho * Edx + one_minus_rho * dx * dx
            x[i] = xi + lr * dx


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _adadelta(
    addresses: Any,
    chunks: Any,
    check: bool,
    threads: int,
    verdicts: Any,
    c: Any,
    maximize: bool,
    weight_decay: bool,
    decoupled: bool,
) -> int:
    # addresses rows: x, g, E[g^2], E[dx^2]; c columns: lr, rho, 1 - rho, eps, weight_decay
    parts, epoch = _start(chunks, threads, verdicts)
    for again in range(2):  # again: the parts that stopped waiting (see _may_write)
        for p in numba.prange(parts):
            if _may_write(addresses, chunks, check, again, parts, verdicts, epoch, p, c[0]):
                _adadelta_part(addresses, chunks, parts, p, c, maximize, weight_decay, decoupled)
                _wrote(check, verdicts, epoch, p)
        bad = _outcome(addresses, chunks, check, parts, verdicts, epoch, c[0])
        if bad != _LEFT:
            break
    return bad


@numba.njit(cache=True, error_model="numpy", inline="always")
def _sgd_part(
    addresses: Any,
    chunks: Any,
    parts: int,
    p: int,
    c: Any,
    first: Any,
    maximize: bool,
    weight_decay: bool,
    momentum: bool,
    nesterov: bool,
) -> None:
    first_chunk, last_chunk = _part(chunks, parts, p)
    for k in range(first_chunk, last_chunk):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        x, g = _chunk(addresses, 0, t, start, end, c), _chunk(addresses, 1, t, start, end, c)
        lr, mu, one_minus_dampening, wd = c[t, 0], c[t, 1], c[t, 2], c[t, 3]
        if momentum:
            buffer = _chunk(addresses, 2, t, start, end, c)
            starts = first[t]
            for i in range(end - start):
                xi, gi = x[i], g[i]
                if maximize:
                    gi = -gi
                if weight_decay:
                    gi = gi + wd * xi
                b = gi if starts else mu * buffer[i] + one_minus_dampening * gi
                buffer[i] = b
                x[i] = xi - lr * (gi + mu * b if nesterov else b)
        else:
            for i in range(end - start):
                xi, gi = x[i], g[i]
                if maximize:
                    gi = -gi
                if weight_decay:
                    gi = gi + wd * xi
                x[i] = xi - lr * gi


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _sgd(
    addresses: Any,
    chunks: Any,
    check: bool,
    threads: int,
    verdicts: Any,
    c: Any,
    first: Any,
    maximize: bool,
    weight_decay: bool,
    momentum: bool,
    nesterov: bool,
) -> int:
    # addresses rows: x, g, momentum buffer; c columns: lr, momentum, 1 - dampening, wd
    # first[t]: the buffer starts at this step's gradient
    parts, epoch = _start(chunks, threads, verdicts)
    for again in range(2):  # again: the parts that stopped waiting (see _may_write)
        for p in numba.prange(parts):
            if _may_write(addresses, chunks, check, again, parts, verdicts, epoch, p, c[0]):
                _sgd_part(
                    addresses,
                    chunks,
                    parts,
                    p,
                    c,
                    first,
                    maximize,
                    weight_decay,
                    momentum,
                    nesterov,
                )
                _wrote(check, verdicts, epoch, p)
        bad = _outcome(addresses, chunks, check, parts, verdicts, epoch, c[0])
        if bad != _LEFT:
            break
    return bad


@numba.njit(cache=True, error_model="numpy", inline="always")
def _adagrad_part(
    addresses: Any, chunks: Any, parts: int, p: int, c: Any, maximize: bool, weight_decay: bool
) -> None:
    first_chunk, last_chunk = _part(chunks, parts, p)
    for k in range(first_chunk, last_chunk):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        x, g = _chunk(addresses, 0, t, start, end, c), _chunk(addresses, 1, t, start, end, c)
        total = _chunk(addresses, 2, t, start, end, c)
        clr, eps, wd = c[t, 0], c[t, 1], c[t, 2]
        for i in range(end - start):
            xi, gi = x[i], g[i]
            if maximize:
                gi = -gi
            if weight_decay:
                gi = gi + wd * xi
            s = total[i] + gi * gi
            total[i] = s
            x[i] = xi - clr * (gi / (np.sqrt(s) + eps))


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _adagrad(
    addresses: Any,
    chunks: Any,
    check: bool,
    threads: int,
    verdicts: Any,
    c: Any,
    maximize: bool,
    weight_decay: bool,
) -> int:
    # addresses rows: x, g, sum; c columns: clr (the decayed lr of this array's step), eps, wd
    parts, epoch = _start(chunks, threads, verdicts)
    for again in range(2):  # again: the parts that stopped waiting (see _may_write)
        for p in numba.prange(parts):
            if _may_write(addresses, chunks, check, again, parts, verdicts, epoch, p, c[0]):
                _adagrad_part(addresses, chunks, parts, p, c, maximize, weight_decay)
                _wrote(check, verdicts, epoch, p)
        bad = _outcome(addresses, chunks, check, parts, verdicts, epoch, c[0])
        if bad != _LEFT:
            break
    return bad


@numba.njit(cache=True, error_model="numpy", inline="always")
def _rmsprop_part(
    addresses: Any,
    chunks: Any,
    parts: int,
    p: int,
    c: Any,
    maximize: bool,
    weight_decay: bool,
    centered: bool,
    momentum: bool,
) -> None:
    first_chunk, last_chunk = _part(chunks, parts, p)
    for k in range(first_chunk, last_chunk):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        x, g = _chunk(addresses, 0, t, start, end, c), _chunk(addresses, 1, t, start, end, c)
        square_avg = _chunk(addresses, 2, t, start, end, c)
        # row 2 stands in for the rows that this configuration does not use
        grad_avg = _chunk(addresses, 3 if centered else 2, t, start, end, c)
        buffer = _chunk(addresses, 4 if momentum else 2, t, start, end, c)
        lr, alpha, one_minus_alpha, eps, wd, mu = (
            c[t, 0],
            c[t, 1],
            c[t, 2],
            c[t, 3],
            c[t, 4],
            c[t, 5],
        )
        for i in range(end - start):
            xi, gi = x[i], g[i]
            if maximize:
                gi = -gi
            if weight_decay:
                gi = gi + wd * xi
            v = alpha * square_avg[i] + one_minus_alpha * gi * gi
            square_avg[i] = v
            if centered:
                m = grad_avg[i]
                m = m + one_minus_alpha * (gi - m)
                grad_avg[i] = m
                avg = np.sqrt(v - m * m) + eps
            else:
                avg = np.sqrt(v) + eps
            if momentum:
                b = mu * buffer[i] + gi / avg
                buffer[i] = b
                x[i] = xi - lr * b
            else:
                x[i] = xi - lr * (gi / avg)


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _rmsprop(
    addresses: Any,
    chunks: Any,
    check: bool,
    threads: int,
    verdicts: Any,
    c: Any,
    maximize: bool,
    weight_decay: bool,
    centered: bool,
    momentum: bool,
) -> int:
    # addresses rows: x, g, square_avg, grad_avg, momentum buffer
    # c columns: lr, alpha, 1 - alpha, eps, wd, momentum
    parts, epoch = _start(chunks, threads, verdicts)
    for again in range(2):  # again: the parts that stopped waiting (see _may_write)
        for p in numba.prange(parts):
            if _may_write(addresses, chunks, check, again, parts, verdicts, epoch, p, c[0]):
                _rmsprop_part(
                    addresses, chunks, parts, p, c, maximize, weight_decay, centered, momentum
                )
                _wrote(check, verdicts, epoch, p)
        bad = _outcome(addresses, chunks, check, parts, verdicts, epoch, c[0])
        if bad != _LEFT:
            break
    return bad


@numba.njit(cache=True, error_model="numpy", inline="always")
def _adam_part(
    addresses: Any,
    chunks: Any,
    parts: int,
    p: int,
    c: Any,
    first: Any,
    maximize: bool,
    weight_decay: bool,
    amsgrad: bool,
) -> None:
    first_chunk, last_chunk = _part(chunks, parts, p)
    for k in range(first_chunk, last_chunk):
        t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
        x, g = _chunk(addresses, 0, t, start, end, c), _chunk(addresses, 1, t, start, end, c)
        exp_avg, exp_avg_sq = (
            _chunk(addresses, 2, t, start, end, c),
            _chunk(addresses, 3, t, start, end, c),
        )
        v_max = _chunk(addresses, 4 if amsgrad else 3, t, start, end, c)  # row 3: unused stand-in
        one_minus_beta1, beta2, one_minus_beta2 = c[t, 0], c[t, 1], c[t, 2]
        step_size, bias_correction2_sqrt, eps, wd = c[t, 3], c[t, 4], c[t, 5], c[t, 6]
        starts = first[t]
        for i in range(end - start):
            xi, gi = x[i], g[i]
            if maximize:
                gi = -gi
            if weight_decay:
                gi = gi + wd * xi
            m = exp_avg[i]
            m = m + one_minus_beta1 * (gi - m)
            v = beta2 * exp_avg_sq[i] + one_minus_beta2 * gi * gi
            exp_avg[i] = m
            exp_avg_sq[i] = v
            if amsgrad:
                if not starts:
                    old = v_max[i]
                    # np.maximum: NaN if either is NaN
                    v = old if old > v or old != old else v
                v_max[i] = v
            x[i] = xi - step_size * (m / (np.sqrt(v) / bias_correction2_sqrt + eps))


@numba.njit(cache=True, error_model="numpy", parallel=True)
def _adam(
    addresses: Any,
    chunks: Any,
    check: bool,
    threads: int,
    verdicts: Any,
    c: Any,
    first: Any,
    maximize: bool,
    weight_decay: bool,
    amsgrad: bool,
) -> int:
    # addresses rows: x, g, exp_avg, exp_avg_sq, max_exp_avg_sq
    # c columns: 1 - beta1, beta2, 1 - beta2, step_size, bias_correction2_sqrt, eps, wd
    # first[t]: max_exp_avg_sq starts at this step's exp_avg_sq
    parts, epoch = _start(chunks, threads, verdicts)
    for again in range(2):  # again: the parts that stopped waiting (see _may_write)
        for p in numba.prange(parts):
            if _may_write(addresses, chunks, check, again, parts, verdicts, epoch, p, c[0]):
                _adam_part(addresses, chunks, parts, p, c, first, maximize, weight_decay, amsgrad)
                _wrote(check, verdicts, epoch, p)
        bad = _outcome(addresses, chunks, check, parts, verdicts, epoch, c[0])
        if bad != _LEFT:
            break
    return bad


# --- the optimizers' side: state dicts in, one compiled call out ---


def _zeros(x: FloatArray, hyper: Mapping[str, Any]) -> FloatArray:
    return np.zeros_like(x)


def _first_value(x: FloatArray, hyper: Mapping[str, Any]) -> FloatArray:
    """A state array that the kernel's first step sets (to the gradient, or to E[g^2]), which it
    knows from a ``first`` flag per array."""
    return np.empty_like(x)


def _initial_accumulator(x: FloatArray, hyper: Mapping[str, Any]) -> FloatArray:
    return np.full_like(x, hyper["initial_accumulator_value"])


Init = Callable[[FloatArray, Mapping[str, Any]], FloatArray]
# the state arrays a kernel reads after x and g (rows 2, 3, ...): name and how the rule creates
# it; None for an unused row
StateRows = tuple[tuple[str, Init] | None, ...]


@dataclass(frozen=True)
class Kernel:
    """How the state dicts and hyperparameters of one optimizer become a compiled kernel's
    arguments: ``kernel(addresses, chunks, check, *arguments(hyper, states, first, dtype))``.

    ``arguments`` returns the table ``c`` of hyperparameters (a row per array, cast to the
    arrays' dtype: that is how NumPy promotes a Python scalar in the rule) followed by the
    kernel's flags; ``first`` says, per array, whether its ``_first_value`` state was just made.
    """

    compiled: Any
    rows: Callable[[Mapping[str, Any]], StateRows]
    arguments: Callable[
        [Mapping[str, Any], Sequence[StateDict], BoolArray, np.dtype[Any]], tuple[Any, ...]
    ]
    # whether ``arguments`` reads the states' step counts (else a batch reuses them from step
    # to step while the hyperparameters are the same objects)
    counts_steps: bool = False


def _adadelta_arguments(
    hyper: Mapping[str, Any], states: Sequence[StateDict], first: BoolArray, dtype: np.dtype[Any]
) -> tuple[Any, ...]:
    lr, rho, wd = hyper["lr"], hyper["rho"], hyper["weight_decay"]
    c = np.array([[lr, rho, 1 - rho, hyper["eps"], wd]] * len(states), dtype)
    return c, hyper["maximize"], wd != 0, hyper["decoupled_weight_decay"]


def _sgd_arguments(
    hyper: Mapping[str, Any], states: Sequence[StateDict], first: BoolArray, dtype: np.dtype[Any]
) -> tuple[Any, ...]:
    lr, mu, wd = hyper["lr"], hyper["momentum"], hyper["weight_decay"]
    c = np.array([[lr, mu, 1 - hyper["dampening"], wd]] * len(states), dtype)
    return c, first, hyper["maximize"], wd != 0, mu != 0, hyper["nesterov"]


def _adagrad_arguments(
    hyper: Mapping[str, Any], states: Sequence[StateDict], first: BoolArray, dtype: np.dtype[Any]
) -> tuple[Any, ...]:
    lr, lr_decay, eps, wd = hyper["lr"], hyper["lr_decay"], hyper["eps"], hyper["weight_decay"]
    # the step of each array is its own (a loaded state dict may hold different counts)
    c = np.array([[lr / (1 + s["step"] * lr_decay), eps, wd] for s in states], dtype)
    return c, hyper["maximize"], wd != 0


def _rmsprop_arguments(
    hyper: Mapping[str, Any], states: Sequence[StateDict], first: BoolArray, dtype: np.dtype[Any]
) -> tuple[Any, ...]:
    alpha, wd = hyper["alpha"], hyper["weight_decay"]
    row = [hyper["lr"], alpha, 1 - alpha, hyper["eps"], wd, hyper["momentum"]]
    c = np.array([row] * len(states), dtype)
    return c, hyper["maximize"], wd != 0, bool(hyper["centered"]), hyper["momentum"] > 0


def _adam_arguments(
    hyper: Mapping[str, Any], states: Sequence[StateDict], first: BoolArray, dtype: np.dtype[Any]
) -> tuple[Any, ...]:
    beta1, beta2 = hyper["betas"]
    lr, eps, wd = hyper["lr"], hyper["eps"], hyper["weight_decay"]
    rows = []
    for s in states:
        step = s["step"] + 1  # each array's own count
        step_size = lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        rows.append([1 - beta1, beta2, 1 - beta2, step_size, bias_correction2_sqrt, eps, wd])
    return np.array(rows, dtype), first, hyper["maximize"], wd != 0, bool(hyper["amsgrad"])


ADADELTA = Kernel(
    _adadelta, lambda hyper: (("E_g2", _zeros), ("E_dx2", _zeros)), _adadelta_arguments
)
SGD = Kernel(
    _sgd,
    lambda hyper: (("momentum_buffer", _first_value),) if hyper["momentum"] != 0 else (),
    _sgd_arguments,
)
ADAGRAD = Kernel(
    _adagrad, lambda hyper: (("sum", _initial_accumulator),), _adagrad_arguments, counts_steps=True
)
RMSPROP = Kernel(
    _rmsprop,
    lambda hyper: (
        ("square_avg", _zeros),
        ("grad_avg", _zeros) if hyper["centered"] else None,
        ("momentum_buffer", _zeros) if hyper["momentum"] > 0 else None,
    ),
    _rmsprop_arguments,
)
ADAM = Kernel(
    _adam,
    lambda hyper: (
        ("exp_avg", _zeros),
        ("exp_avg_sq", _zeros),
        ("max_exp_avg_sq", _first_value) if hyper["amsgrad"] else None,
    ),
    _adam_arguments,
    counts_steps=True,
)


def same_objects(hyper: Mapping[str, Any], last: Sequence[Any]) -> bool:
    """Whether the values of ``hyper`` are the very objects of ``last``, in order. The
    optimizers keep immutable Python numbers, bools and tuples in their groups, so the same
    objects are the same, already checked values (comparing values instead would take ``True``
    for ``1.0``, or a NumPy scalar for the Python number it was turned into)."""
    return len(hyper) == len(last) and all(map(operator.is_, hyper.values(), last))


def _contiguous(a: FloatArray) -> bool:
    flags = a.flags
    return bool(flags.c_contiguous and flags.aligned)


def fusable(x: FloatArray, state: Mapping[str, Any]) -> bool:
    """Whether a kernel can update parameter ``x`` and its state arrays in place (the others
    go through the rule, e.g. transposed views, or read-only arrays, which the rule refuses)."""
    return x.dtype in _LIKE and all(
        flags.c_contiguous and flags.aligned and flags.writeable
        for flags in [x.flags, *(v.flags for v in state.values() if isinstance(v, np.ndarray))]
    )


class Batch:
    """Parameters of one dtype and their state, updated together by one compiled call a step.

    Made once (creating the missing state arrays as the rule would) and kept while
    :meth:`current`: a step then only writes the gradients' addresses into the table and calls
    the kernel, a few microseconds in all. The parameters and state must be :func:`fusable`.
    """

    def __init__(
        self,
        kernel: Kernel,
        hyper: Mapping[str, Any],
        params: Sequence[FloatArray],
        states: Sequence[StateDict],
    ) -> None:
        self.kernel, self.params, self.states = kernel, list(params), list(states)
        self.rows = kernel.rows(hyper)
        self.first = np.zeros(len(params), np.bool_)
        self.created: list[tuple[StateDict, str]] = []  # removed again if the first step is refused
        for entry in self.rows:
            if entry is not None:
                key, init = entry
                for i, (x, state) in enumerate(zip(params, states, strict=True)):
                    if state.get(key) is None:
                        state[key] = init(x, hyper)
                        self.created.append((state, key))
                        self.first[i] |= init is _first_value
        rows = [[] if entry is None else [s[entry[0]] for s in states] for entry in self.rows]
        # what current() checks: each state still holds the array whose address is in the table
        self.watched = [
            (state, entry[0], array)
            for entry, row in zip(self.rows, rows, strict=True)
            if entry is not None
            for state, array in zip(states, row, strict=True)
        ]
        self.addresses = np.array(
            [
                [_address(x) for x in params],
                [0] * len(params),  # the gradients: written by each step
                *([_address(a) for a in row] if row else [0] * len(params) for row in rows),
            ],
            np.intp,
        )
        sizes = np.array([x.size for x in params], np.intp)
        self.elements = int(sizes.sum())
        self.chunks = _chunks(sizes, _threads(self.elements))
        # the kernel's count of its calls, and its parts' verdicts on their gradients
        self.verdicts = np.zeros(1 + numba.config.NUMBA_NUM_THREADS, np.int64)  # type: ignore[attr-defined]
        self.dtype = params[0].dtype
        # the hyperparameters of the last step (the values of ``hyper``) and their arguments
        self.hyper: list[Any] = []
        self.arguments: tuple[Any, ...] = ()

    def current(self, hyper: Mapping[str, Any]) -> bool:
        """Whether this batch still describes its states (holding the same arrays, as ``hyper``
        needs them) and its parameters are still writeable."""
        if self.kernel.rows(hyper) != self.rows:
            return False
        for state, key, array in self.watched:
            if state.get(key) is not array:
                return False
        for x in self.params:
            if not x.flags.writeable:
                return False
        return True

    def call(self, check: bool) -> int:
        """The kernel's call on the table as it is (the gradients' addresses written) with the
        last step's arguments: -1, or with ``check`` the index of the first gradient holding NaN
        or infinity (nothing written)."""
        control = (self.addresses, self.chunks, check, _threads(self.elements), self.verdicts)
        bad: int = _launch(self.kernel.compiled, self.elements, *control, *self.arguments)
        return bad

    def step(self, hyper: Mapping[str, Any], grads: Sequence[FloatArray], check: bool) -> int:
        """One step in place, and the step counts; with ``check``, first a scan of the gradients
        in the same compiled call: if one holds NaN or infinity, its index is returned and
        nothing is changed (state arrays that making the batch created are removed). -1 when
        the step was taken."""
        copies = []  # of non-contiguous gradients, held until the call has ended
        row = self.addresses[1]
        for i, g in enumerate(grads):
            if not _contiguous(g):
                g = np.ascontiguousarray(g)
                copies.append(g)
            row[i] = _address(g)
        kernel = self.kernel
        if kernel.counts_steps or not same_objects(hyper, self.hyper):
            self.arguments = kernel.arguments(hyper, self.states, self.first, self.dtype)
            self.hyper = list(hyper.values())
        bad = self.call(check)
        if bad >= 0:
            for state, key in self.created:
                del state[key]  # as before the batch was made (which it is no longer current for)
            return bad
        if self.created:
            self.first[:] = False
            self.created.clear()
        for state in self.states:
            state["step"] += 1
        return -1
