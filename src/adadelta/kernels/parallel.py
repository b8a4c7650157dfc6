"""The machinery under every kernel: arrays reached by address, the work cut into chunks over
all arrays and threads, how many threads a call runs on, and the finiteness check of the
gradients inside the kernels' parallel region (see the package docstring for why)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic
from numba.np.numpy_support import carray

from adadelta.rules import FloatArray


def _start_threads() -> None:
    """Start Numba's thread pool with threads that sleep as soon as a parallel region ends.

    By default, OpenMP threads spin for a while after each parallel region (GOMP: 300,000
    iterations, milliseconds) before they sleep. Between two optimizer steps a training loop
    runs matrix products on the BLAS threads, and a spinning thread takes a core from them; a
    thread that waits on another one at a region's end holds its core too, so that the other
    (waiting for a core, on a machine that also does other work) cannot be moved there. On 2
    cores this made a 1e5-element step on two threads that follows matrix products take 558 us
    with a spin of 10,000 iterations and 10.2 ms with GOMP's default, against 92 us with no spin
    (``benchmarks/results/threads*.md``). So the pool starts with ``GOMP_SPINCOUNT=0``, set for
    that moment only (GNU OpenMP reads it once, when it is loaded). PyTorch imported before the
    first kernel call keeps its own OpenMP runtime and settings; imported after, it loads none
    of its own and shares this one. A user's own ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` wins;
    so does a pool that something started before the first kernel call (which is when this runs:
    importing ``adadelta`` starts nothing)."""
    if "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        numba.get_num_threads()
        return
    os.environ["GOMP_SPINCOUNT"] = "0"
    try:
        numba.get_num_threads()  # loads the threading layer, and with it the OpenMP runtime
    finally:
        del os.environ["GOMP_SPINCOUNT"]


CHUNK = 4096  # elements per unit of parallel work: small enough to balance 1e5 elements
# Below this many elements a call runs on one thread, its caller's. In a training loop the
# other threads have gone to sleep during the matrix products between two steps, and waking
# them costs more than they save below about a million elements; on a busy machine a woken
# thread may also wait milliseconds for a core, and the region with it (the paper's network,
# 545,810 parameters, after matrix products: 447 us a step on one thread, 460 us on two; 476 us
# against 2,397 us with one competing process; benchmarks/results/threads.md). The finiteness
# scan is then a pass of its own before the update, on the same thread.
PARALLEL_MIN = 1 << 20

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
    _start_threads()  # which defines the fast ones
    parallel = numba.np.ufunc.parallel
    get, set_ = (
        getattr(parallel, "_get_num_threads", None),
        getattr(parallel, "_set_num_threads", None),
    )
    if callable(get) and callable(set_):
        return get, set_
    return numba.get_num_threads, numba.set_num_threads  # pragma: no cover


# The kernels whose element costs more than a float32 ADADELTA element, by kernel and by
# compiled entry point: how many times as much, on one thread with the arrays in the cache
# (0.45 ns an element for float32 state, 0.57 for bfloat16 state, 0.84 for float8:
# ``python benchmarks/element_cost.py``). :func:`_launch` runs them on all threads from
# PARALLEL_MIN / cost elements on: the work of a step, not its size, decides whether waking
# the other threads pays. Filled by adadelta.kernels.compact.
ELEMENT_COST: dict[Any, float] = {}


def _threads(elements: int) -> int:
    """The number of parts to cut a call over ``elements`` in: one for each thread that
    :func:`_launch` may run it on (all, from PARALLEL_MIN over the costliest kernel's
    :data:`ELEMENT_COST` elements; a cheaper kernel that it runs on one thread steps the
    parts one after another)."""
    most = max(ELEMENT_COST.values(), default=1.0)
    return _thread_count_controls()[0]() if elements * most >= PARALLEL_MIN else 1


def _launch(kernel: Any, elements: int, *args: Any) -> Any:
    """``kernel(*args)``, on one thread if its work is less than :data:`PARALLEL_MIN` float32
    elements' (see :data:`ELEMENT_COST`)."""
    if elements * ELEMENT_COST.get(kernel, 1.0) >= PARALLEL_MIN:
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


def _contiguous(a: FloatArray) -> bool:
    flags = a.flags
    return bool(flags.c_contiguous and flags.aligned)


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
def _first_non_finite(addresses: Any, chunks: Any, parts: int, like: Any) -> int:
    return _scan(addresses, chunks, parts, like)


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
        threads = _threads(elements)
        chunks = _chunks(sizes, threads)
        parts = min(threads, chunks.shape[0])
        bad = _launch(_first_non_finite, elements, addresses, chunks, parts, _LIKE[dtype])
        if bad >= 0 and (first_bad < 0 or indices[bad] < first_bad):
            first_bad = indices[bad]
    return first_bad


# a zero of each dtype: its type is the kernels' element type, its value the scan's zero
_LIKE = {np.dtype(np.float32): np.zeros(1, np.float32), np.dtype(np.float64): np.zeros(1)}


# --- the check in the kernels: every gradient scanned before anything is written ---


@numba.njit(cache=True, error_model="numpy", inline="always")
def _part(chunks: Any, parts: int, p: int) -> tuple[int, int]:
    """The chunks ``first:last`` of part ``p`` of ``parts`` (one part per thread)."""
    count = chunks.shape[0]
    return p * count // parts, (p + 1) * count // parts


@numba.njit(cache=True, error_model="numpy", inline="always")
def _scan(addresses: Any, chunks: Any, parts: int, like: Any) -> int:
    """The first array of row 1 of ``addresses`` (the gradients) holding NaN or infinity, or
    -1: each of ``parts`` threads scans its part, and the region ends before the kernel that
    inlines this writes anything (a step cannot be undone once written)."""
    count = 0
    for p in numba.prange(parts):
        first, last = _part(chunks, parts, p)
        finite = True
        for k in range(first, last):
            t, start, end = chunks[k, 0], chunks[k, 1], chunks[k, 2]
            finite &= _all_finite(_chunk(addresses, 1, t, start, end, like))
        count += not finite
    return -1 if count == 0 else _first_bad(addresses, chunks, like)
