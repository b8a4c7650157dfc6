"""The optimizers' side of the kernels: state dicts and hyperparameters in, one compiled call
a step out (:class:`Batch`), and the table of :class:`Kernel` descriptions, one per optimizer."""

from __future__ import annotations

import operator
import weakref
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from adadelta.kernels.loops import _adadelta, _adagrad, _adam, _rmsprop, _sgd
from adadelta.kernels.parallel import (
    _LIKE,
    _address,
    _chunks,
    _launch,
    _threads,
)
from adadelta.rules import FloatArray

StateDict = dict[str, Any]
MAX_STEP = 2**63  # step counts are below it (a state dict's checked ints)
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]

# --- the optimizers' side: state dicts in, one compiled call out ---

# entry points of the kernels compiled with every flag a constant False: by kernel and the
# types of the other arguments
_PLAIN: dict[tuple[Any, ...], Any] = {}


def _plain_version(kernel: Any, control: tuple[Any, ...], arguments: tuple[Any, ...]) -> Any:
    """``kernel``'s entry point for a call with ``control`` (table, chunks, check, parts) and
    ``arguments`` (the :class:`Kernel`'s: its table of hyperparameters and arrays, then its
    flags). Where no flag is set, as in the paper's ADADELTA on float32, a version compiled with
    the flags as constants (False): LLVM then leaves their cases out of the loop, and the call
    skips the dispatcher's typing of its arguments (a few microseconds). Otherwise ``kernel``
    itself, whose flags are read at run time. So at most two versions of a kernel are compiled
    for each dtype (and cached on disk), as for the compact kernels
    (:func:`adadelta.kernels.compact._version`)."""
    if any(isinstance(a, (bool, np.bool_)) and a for a in arguments):
        return kernel
    types = tuple(
        numba.types.literal(False)  # type: ignore[no-untyped-call]
        if isinstance(a, (bool, np.bool_))
        else numba.typeof(a)  # type: ignore[no-untyped-call]
        for a in arguments
    )
    signature = (*(numba.typeof(a) for a in control), *types)  # type: ignore[no-untyped-call]
    key = (kernel, *signature)
    version = _PLAIN.get(key)
    if version is None:
        kernel.compile(signature)
        version = _PLAIN[key] = kernel.overloads[signature].entry_point
    return version


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
    normal = np.finfo(dtype)  # the range where the kernel's one square root is exact enough
    row = [lr, rho, 1 - rho, hyper["eps"], wd, normal.smallest_normal, normal.max]
    c = np.array([row] * len(states), dtype)
    two_roots = dtype == np.float64  # the form of the ratio: see the package docstring
    return c, hyper["maximize"], wd != 0, hyper["decoupled_weight_decay"], two_roots


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


_BISECT_MAX = 16  # gradients up to which step bisects the spans for each, in Python
_ALIGNED_C = 0x0001 | 0x0100  # NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED, as in flags.num


def _viewed(array: FloatArray) -> list[FloatArray]:
    """``array`` and the arrays whose memory it views (its ``base`` chain)."""
    chain = []
    a: Any = array
    while isinstance(a, np.ndarray):
        chain.append(a)
        a = a.base
    return chain


def same_objects(hyper: Mapping[str, Any], last: Sequence[Any]) -> bool:
    """Whether the values of ``hyper`` are the very objects of ``last``, in order. The
    optimizers keep immutable Python numbers, bools and tuples in their groups, so the same
    objects are the same, already checked values (comparing values instead would take ``True``
    for ``1.0``, or a NumPy scalar for the Python number it was turned into)."""
    return len(hyper) == len(last) and all(map(operator.is_, hyper.values(), last))


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

    The table holds the arrays' addresses, so the batch keeps their memory where it was: it
    holds the arrays and a weak reference to each and to each array whose memory it views
    (NumPy refuses to resize an array that has one, even with ``refcheck=False``), and
    :meth:`current` compares each array's shape, dtype and flags with those it was made with.
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
        self.keys = [len(state) for state in states]  # a key added or removed: not current
        arrays = [*self.params, *(array for _, _, array in self.watched)]
        self.guards = [weakref.ref(a) for array in arrays for a in _viewed(array)]
        # what current() checks: each array as the table describes it
        self.layouts = [(a, a.shape, a.dtype, a.flags.num) for a in arrays]
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
        self.dtype = params[0].dtype
        # the arrays' bytes (contiguous, disjoint), sorted, after an empty span at 0: a
        # gradient must fall outside them (see step)
        spans = [(0, 0), *sorted((_address(a), _address(a) + a.nbytes) for a in arrays)]
        self.starts, self.ends = [s for s, _ in spans], [e for _, e in spans]
        self.span = (self.starts[1], self.ends[-1]) if len(spans) > 1 else (0, 0)
        self.nbytes = [x.nbytes for x in params]
        # many gradients: one vectorized search is cheaper than one bisection each
        self.vectorized = (
            (np.array(self.starts), np.array(self.ends), np.array(self.nbytes, np.intp))
            if len(params) > _BISECT_MAX
            else None
        )
        self.apart = b""  # the gradients' addresses last found apart from the arrays
        # the hyperparameters of the last step (the values of ``hyper``) and their arguments
        self.hyper: list[Any] = []
        self.arguments: tuple[Any, ...] = ()
        # the kernel's entry point for these arguments (see _plain_version), and them
        self._version: Any = kernel.compiled
        self._version_arguments: tuple[Any, ...] | None = None

    def current(self, hyper: Mapping[str, Any]) -> bool:
        """Whether this batch still describes its states (holding the same arrays, as ``hyper``
        needs them, the same number of keys, and a step count that is an int) and its arrays
        (the same shapes, dtypes and flags: none reshaped in place, given another dtype or
        strides, or made read-only)."""
        if self.kernel.rows(hyper) != self.rows:
            return False
        for state, key, array in self.watched:
            if state.get(key) is not array:
                return False
        for state, keys in zip(self.states, self.keys, strict=True):
            step = state.get("step")  # the count that step() adds to, after the kernel's call
            if type(step) is not int or not 0 <= step < MAX_STEP or len(state) != keys:
                return False
        for a, shape, dtype, flags in self.layouts:
            if a.shape != shape or a.dtype is not dtype or a.flags.num != flags:
                return False
        return True

    def call(self, check: bool) -> int:
        """The kernel's call on the table as it is (the gradients' addresses written) with the
        last step's arguments: -1, or with ``check`` the index of the first gradient holding NaN
        or infinity (nothing written)."""
        parts = min(_threads(self.elements), self.chunks.shape[0])  # one per thread
        control = (self.addresses, self.chunks, check, parts)
        if self.arguments is not self._version_arguments:
            self._version = _plain_version(self.kernel.compiled, control, self.arguments)
            self._version_arguments = self.arguments
        bad: int = _launch(self._version, self.elements, *control, *self.arguments)
        return bad

    def step(self, hyper: Mapping[str, Any], grads: Sequence[FloatArray], check: bool) -> int:
        """One step in place, and the step counts; with ``check``, first a scan of the gradients
        in the same compiled call: if one holds NaN or infinity, its index is returned and
        nothing is changed (state arrays that making the batch created are removed). -1 when
        the step was taken."""
        copies = []  # of non-contiguous gradients, held until the call has ended
        row = self.addresses[1]
        # A contiguous gradient that overlaps a parameter or state array is refused: the
        # kernel would read elements it has written (a copied one has memory of its own). The
        # parameter itself is taken: each element is read before it is written.
        vectorized = self.vectorized
        if vectorized is None:
            (low, high), starts, ends, nbytes = self.span, self.starts, self.ends, self.nbytes
            for i, g in enumerate(grads):
                if g.flags.num & _ALIGNED_C != _ALIGNED_C:
                    g = np.ascontiguousarray(g)
                    copies.append(g)
                    row[i] = _address(g)
                    continue
                first = _address(g)
                row[i] = first
                last = first + nbytes[i]
                if first < high and last > low and first != last:
                    j = bisect_left(starts, last) - 1
                    if ends[j] > first and first != self.addresses[0, i]:
                        self._forget_created()
                        raise SharedMemoryError(i)
        else:
            for i, g in enumerate(grads):
                if g.flags.num & _ALIGNED_C != _ALIGNED_C:
                    g = np.ascontiguousarray(g)
                    copies.append(g)
                row[i] = _address(g)
            seen = row.tobytes()
            if seen != self.apart:  # gradients at other addresses than the last checked ones
                vstarts, vends, vbytes = vectorized
                ends_before = vends[np.searchsorted(vstarts, row + vbytes) - 1]
                hits = (ends_before > row) & (vbytes > 0) & (row != self.addresses[0])
                if hits.any():
                    self._forget_created()
                    raise SharedMemoryError(int(np.flatnonzero(hits)[0]))
                self.apart = seen
        kernel = self.kernel
        if kernel.counts_steps or not same_objects(hyper, self.hyper):
            self.arguments = kernel.arguments(hyper, self.states, self.first, self.dtype)
            self.hyper = list(hyper.values())
        bad = self.call(check)
        if bad >= 0:
            self._forget_created()
            return bad
        if self.created:
            self.first[:] = False
            self.created.clear()
        for state in self.states:
            state["step"] += 1
        return -1

    def _forget_created(self) -> None:
        """Remove the state arrays that making the batch created, as before the batch was made
        (which it is no longer current for): a refused first step changes nothing."""
        for state, key in self.created:
            del state[key]


class SharedMemoryError(ValueError):
    """A gradient (its index in the batch) shares memory with a parameter or a state array."""

    def __init__(self, index: int) -> None:
        super().__init__(f"gradient {index} shares memory with an array of the batch")
        self.index = index
