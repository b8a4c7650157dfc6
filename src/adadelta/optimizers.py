"""The NumPy optimizers: one base class that owns parameters, groups, state and validation, and
one small subclass per optimizer that names its rule and its hyperparameters.

Usage::

    params = {"W": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)}
    opt = Adadelta(params)              # the paper's rho=0.95, eps=1e-6, no learning rate
    opt.step({"W": dW, "b": db})        # updates params in place

A ``step`` first checks every gradient (structure, shape, dtype, finiteness), every
hyperparameter, and that the parameters and state are still the arrays the optimizer was given
or made (the same objects, shapes, dtypes and flags), and only then changes anything: a rejected
step leaves the parameters and the state exactly as they were. The kernels only ever touch
those checked arrays: the optimizer holds a weak reference to each, which makes NumPy refuse to
``resize`` them (even with ``refcheck=False``), so their memory stays where it was checked.

One optimizer is not for several threads at once: a ``step``, ``load_state_dict``,
``state_dict`` or ``add_param_group`` that starts while another is running on the same
optimizer raises ``RuntimeError`` (and changes nothing) instead of interleaving with it.
"""

from __future__ import annotations

import bisect
import math
import operator
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np

from adadelta import kernels, rules
from adadelta._tree import describe, leaves_with_paths, match_gradients
from adadelta.kernels import compact
from adadelta.presets import PRESETS

FloatArray = rules.FloatArray
SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
MAX_STEP = 2**63 - 1  # the largest step count a state may hold


class NonFiniteGradientError(ValueError):
    """A gradient holds NaN or infinity; the step was refused and nothing was changed."""


# --- hyperparameter checks: each returns the value the optimizer keeps (a Python float, bool or
# tuple: a NumPy scalar would promote float32 arrays, np.longdouble even to float128), or raises
# ValueError("Invalid <name> value: <value> (...)") ---

Check = Callable[[str, Any], Any]


def _invalid(name: str, value: Any, requirement: str) -> ValueError:
    shown = repr(value)
    if len(shown) > 40:  # e.g. 10**400
        shown = f"{shown[:20]}...{shown[-8:]}"
    return ValueError(f"Invalid {name} value: {shown} (must be {requirement})")


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _invalid(name, value, "a real number")
    try:
        with np.errstate(over="ignore"):  # np.longdouble(1e4000) becomes inf, refused below
            number = float(value)
    except OverflowError:  # an integer beyond the floats, e.g. 10**400
        raise _invalid(name, value, "finite") from None
    if not math.isfinite(number):
        raise _invalid(name, value, "finite")
    return number


def non_negative(name: str, value: Any) -> float:
    number = _real(name, value)
    if number < 0:
        raise _invalid(name, value, ">= 0")
    return number


def positive(name: str, value: Any) -> float:
    number = _real(name, value)
    if number <= 0:
        raise _invalid(name, value, "> 0")
    return number


def unit_interval(name: str, value: Any) -> float:
    number = _real(name, value)
    if not 0 <= number < 1:
        raise _invalid(name, value, "in [0, 1)")
    return number


def unit_interval_closed(name: str, value: Any) -> float:
    number = _real(name, value)
    if not 0 <= number <= 1:
        raise _invalid(name, value, "in [0, 1]")
    return number


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise _invalid(name, value, "True or False")
    return bool(value)


def betas(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _invalid(name, value, "a pair (beta1, beta2)")
    beta1, beta2 = (unit_interval(f"beta parameter at index {i}", b) for i, b in enumerate(value))
    return beta1, beta2


# --- the base class ---


class Optimizer:
    """Base class: holds the parameter groups and the per-parameter state, checks every input,
    and applies the subclass's update rule.

    Subclasses set ``hyperparameters`` (name -> check), ``state_fields`` (the names of the
    state record), ``non_negative_state`` (the fields that are averages or sums of squares),
    and implement :meth:`_apply`.
    """

    hyperparameters: ClassVar[dict[str, Check]]
    state_fields: ClassVar[tuple[str, ...]]
    non_negative_state: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, params: Any, defaults: dict[str, Any], *, check_finite: bool = True) -> None:
        self._busy = threading.Lock()  # held by a running step, load or add (see _exclusive)
        self._check_hyperparameters(defaults)
        self.defaults = dict(defaults)
        self.check_finite = check_finite
        self.param_groups: list[dict[str, Any]] = []
        self.state: list[dict[str, Any]] = []  # one record per parameter, in group order
        self._leaves: list[list[FloatArray]] = []  # the parameters of each group, flattened
        self._names: list[list[str]] = []  # per group, each parameter as errors name it
        self._guards: list[weakref.ref[FloatArray]] = []  # see the module docstring
        # id(group) -> its keys and values that last passed the checks
        self._checked: dict[int, tuple[list[Any], list[Any]]] = {}
        self._grouped = _is_group_list(params)
        for group in params if self._grouped else [{"params": params}]:
            self._add_group(group)

    def _exclusive(self, what: str) -> threading.Lock:
        """This optimizer's lock, taken without waiting: a second thread that calls ``what``
        while the first is still in a step, a load or an add gets a RuntimeError."""
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(
                f"{what}: another call is running on this optimizer (from another thread); "
                "an optimizer does one step, load or add at a time: use a lock around its "
                "calls, or one optimizer per thread. Nothing was changed."
            )
        return self._busy

    # -- parameter groups --

    def _prefix(self, index: int) -> str:
        """How errors name group ``index``'s parameter structure."""
        return f"param_groups[{index}]['params']" if self._grouped else "params"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (the others from the defaults).

        Only for an optimizer built from a list of groups, since ``step`` then takes one gradient
        structure per group.
        """
        if not self._grouped:
            raise TypeError(
                "add_param_group needs an optimizer built from a list of parameter groups, "
                "e.g. Adadelta([{'params': p}]), since step() then takes one gradient structure "
                "per group"
            )
        busy = self._exclusive("add_param_group")
        try:
            self._add_group(param_group)
        finally:
            busy.release()

    def _add_group(self, param_group: Any) -> None:
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError("a parameter group must be a dict with a 'params' entry")
        unknown = set(param_group) - {"params"} - set(self.defaults)
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {sorted(map(str, unknown))} for "
                f"{type(self).__name__}; expected some of {sorted(self.defaults)}"
            )
        group = {**self.defaults, **param_group}
        self._check_hyperparameters(group)
        paths, leaves = [], []
        prefix = self._prefix(len(self.param_groups))
        for path, leaf in leaves_with_paths(group["params"]):
            where = f"{prefix}{path}"
            if type(leaf) is not np.ndarray:
                raise TypeError(f"{where}: expected a NumPy float array, got {describe(leaf)}")
            _check_parameter(where, leaf)
            paths.append(where)
            leaves.append(leaf)
        if not leaves:
            raise ValueError("a parameter group holds no parameters")
        self._check_in_dtypes(group, leaves)
        groups = [*zip(self._names, self._leaves, strict=True), (paths, leaves)]
        named = [
            (path, x)
            for group_paths, group_leaves in groups
            for path, x in zip(group_paths, group_leaves, strict=True)
        ]
        _check_disjoint(named)
        self.param_groups.append(group)
        self._leaves.append(leaves)
        self._names.append(paths)
        self.state.extend({"step": 0} for _ in leaves)
        self._guards.extend(_guards(leaves))

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """Check ``group``'s hyperparameters and keep them as Python numbers, bools and tuples
        (a NumPy float64 would otherwise promote float32 parameters and state to float64)."""
        for name, check in self.hyperparameters.items():
            group[name] = check(name, group[name])
        self._validate_group(group)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        """Checks across hyperparameters (e.g. Nesterov needs momentum); none by default."""

    def _arithmetic_dtypes(self, params: Sequence[FloatArray]) -> set[np.dtype[Any]]:
        """The dtypes that the hyperparameters of a group of ``params`` are cast to."""
        return {x.dtype for x in params}

    def _check_in_dtypes(self, group: Mapping[str, Any], params: Sequence[FloatArray]) -> None:
        """Refuse a real hyperparameter that becomes infinite in the dtype of the group's
        arithmetic (e.g. ``lr=1e39`` in float32), or a positive one that becomes 0 there (e.g.
        ``eps=1e-46`` in float32: a zero gradient on zero state then divides 0 by 0)."""
        for dtype in sorted(self._arithmetic_dtypes(params), key=str):
            for name, check in self.hyperparameters.items():
                value = group[name]
                if type(value) is not float:
                    continue
                with np.errstate(over="ignore", under="ignore"):
                    cast = dtype.type(value)
                if not np.isfinite(cast):
                    raise _invalid(name, value, f"finite in {dtype}, the parameters' dtype")
                if check is positive and cast == 0:
                    raise _invalid(
                        name, value, f"> 0 in {dtype}, the parameters' dtype, where it is 0"
                    )

    def _check_group(self, index: int, group: Any) -> None:
        """Check a group as ``step`` finds it: a dict with ``params`` and exactly this
        optimizer's hyperparameters (one may have been deleted or misspelled since), all valid.
        Skipped while the group holds the very keys and values that passed the last check
        (checked values are immutable Python numbers, bools and tuples, so the same object is
        the same value): that saves a few microseconds a step."""
        last = self._checked.get(id(group))
        if (
            last is not None
            and type(group) is dict
            and kernels.same_objects(group, last[1])
            and all(map(operator.is_, group, last[0]))
        ):
            return
        where = f"param_groups[{index}]"
        if not isinstance(group, dict):
            raise TypeError(f"{where}: expected a dict, got {type(group).__name__}")
        expected = {"params", *self.hyperparameters}
        if group.keys() != expected:
            missing = sorted(expected - group.keys())
            unknown = sorted(map(repr, group.keys() - expected))
            raise ValueError(
                f"{where}: missing key(s) {missing}, unknown key(s) [{', '.join(unknown)}]; "
                f"a group holds 'params' and the hyperparameters {sorted(self.hyperparameters)}"
            )
        hyper = {k: group[k] for k in self.hyperparameters}
        self._check_hyperparameters(hyper)  # on a copy: a refused group stays as it was
        self._check_in_dtypes(hyper, self._leaves[index])
        group.update(hyper)
        self._checked[id(group)] = (list(group), list(group.values()))

    # -- the step --

    def step(self, grads: Any) -> None:
        """Update every parameter in place from ``grads``, which has the parameters' structure
        (for an optimizer built from a list of groups: a list of one structure per group).

        Raises before changing anything if a gradient's structure, shape or dtype differs from
        its parameter's, if a gradient holds NaN or infinity (unless ``check_finite=False``),
        if a hyperparameter was set to an invalid value, or if a parameter or its state is no
        longer the array the optimizer was given or made (replaced, reshaped, made read-only).
        """
        busy = self._exclusive("step")
        try:
            self._apply(self._checked_gradients(grads))
        finally:
            busy.release()

    def _checked_gradients(self, grads: Any) -> list[list[FloatArray]]:
        """The gradients of each group, checked against the parameters, which are checked to be
        the arrays the optimizer was built with; and every group's hyperparameters checked."""
        groups = self.param_groups
        if len(groups) != len(self._leaves):
            raise ValueError(
                f"param_groups: holds {len(groups)} groups, this optimizer has "
                f"{len(self._leaves)}; add a group with add_param_group"
            )
        per_group = grads if self._grouped else [grads]
        if self._grouped and (
            not isinstance(grads, (list, tuple)) or len(grads) != len(self._leaves)
        ):
            raise ValueError(
                f"gradients: expected a list of {len(self._leaves)} gradient structures, "
                f"one per parameter group, got {describe(grads)}"
            )
        grad_leaves = []
        for index, group in enumerate(groups):
            self._check_group(index, group)
            try:
                names = (
                    self._prefix(index),
                    f"gradients[{index}]" if self._grouped else "gradients",
                )
                params, leaves = match_gradients(group["params"], per_group[index], names)
            except (TypeError, ValueError, KeyError):
                self._check_structure(index)  # the parameters changed: say so instead
                raise
            known = self._leaves[index]
            if len(params) != len(known) or not all(map(operator.is_, params, known)):
                self._check_structure(index)
            grad_leaves.append(leaves)
        return grad_leaves

    def _check_structure(self, index: int) -> None:
        """Raise if group ``index`` no longer holds the arrays it was built with, in order."""
        known = self._leaves[index]
        found = list(leaves_with_paths(self.param_groups[index]["params"]))
        for i, (path, leaf) in enumerate(found):
            if i >= len(known) or leaf is not known[i]:
                added = i >= len(known)
                raise ValueError(
                    f"{self._prefix(index)}{path}: {'added' if added else 'replaced'} after the "
                    "optimizer was built; an optimizer updates the arrays it was given, in "
                    "place: make a new optimizer (or use add_param_group) for other arrays. "
                    "Nothing was changed."
                )
        if len(found) < len(known):
            raise ValueError(
                f"{self._names[index][len(found)]}: removed after the optimizer was built; "
                "make a new optimizer for other arrays. Nothing was changed."
            )

    def _check_arrays(self) -> None:
        """Check every parameter and state array as it is now: parameters of a supported dtype
        and writeable, each state record with valid keys, step count, and arrays of its
        parameter's shape and dtype, and no two arrays sharing memory. Raises naming the array;
        changes nothing."""
        total = sum(map(len, self._leaves))
        if not isinstance(self.state, list) or len(self.state) != total:
            raise ValueError(f"state: expected a list of {total} state records, one per parameter")
        named = []
        position = 0
        for names, params in zip(self._names, self._leaves, strict=True):
            for where, x in zip(names, params, strict=True):
                _check_parameter(where, x)
                named.append((where, x))
                layout = self._state_layout(x)
                for key, value in _checked_record(where, self.state[position], layout):
                    named.append((f"state {key!r} of {where}", value))
                position += 1
        _check_disjoint(named)

    def _state_layout(self, x: FloatArray) -> StateLayout:
        """What the state record of parameter ``x`` may hold: arrays of ``x``'s shape and
        dtype, one per state field, each None until the first step makes it."""
        arrays = {f: (x.shape, x.dtype) for f in self.state_fields if f != "step"}
        return StateLayout(arrays, (), False)

    def _apply(self, grads: list[list[FloatArray]]) -> None:
        """Apply one step to every group from its checked gradients, in place; first, unless
        ``check_finite=False``, refuse non-finite gradients, changing nothing."""
        raise NotImplementedError

    # -- state dicts --

    def state_dict(self) -> dict[str, Any]:
        """The state as plain NumPy arrays and Python numbers (copies, in PyTorch's layout)::

        {"state": {0: {"step": 3, "E_g2": array, ...}, ...},
         "param_groups": [{"lr": 1.0, ..., "params": [0, 1]}, ...]}
        """
        busy = self._exclusive("state_dict")
        try:
            groups, first = [], 0
            for group, params in zip(self.param_groups, self._leaves, strict=True):
                hyper = {k: _plain(v) for k, v in group.items() if k != "params"}
                groups.append({**hyper, "params": list(range(first, first + len(params)))})
                first += len(params)
            state = {
                i: {k: v.copy() if isinstance(v, np.ndarray) else int(v) for k, v in s.items()}
                for i, s in enumerate(self.state)
            }
        finally:
            busy.release()
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`. Everything is checked first (keys, group sizes,
        hyperparameters, step counts, state shapes and dtypes, finite state, non-negative
        averages of squares); a refused state dict changes nothing."""
        busy = self._exclusive("load_state_dict")
        try:
            self._load(state_dict)
        finally:
            busy.release()

    def _load(self, state_dict: Mapping[str, Any]) -> None:
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("state dict: expected a dict with exactly 'state' and 'param_groups'")
        groups = state_dict["param_groups"]
        if not isinstance(groups, (list, tuple)) or len(groups) != len(self.param_groups):
            raise ValueError(
                f"state dict: has {len(groups) if isinstance(groups, (list, tuple)) else '?'} "
                f"parameter groups, this optimizer has {len(self.param_groups)}"
            )
        new_groups, first = [], 0
        for i, (saved, params) in enumerate(zip(groups, self._leaves, strict=True)):
            expected = list(range(first, first + len(params)))
            first += len(params)
            if not isinstance(saved, Mapping) or not _lists(saved.get("params"), expected):
                raise ValueError(f"state dict: parameter group {i} must list parameters {expected}")
            hyper = {k: v for k, v in saved.items() if k != "params"}
            if set(hyper) != set(self.defaults):
                raise ValueError(
                    f"state dict: parameter group {i} has hyperparameters "
                    f"{sorted(map(str, hyper))}, expected {sorted(self.defaults)}"
                )
            hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}
            self._check_hyperparameters(hyper)
            self._check_in_dtypes(hyper, params)
            new_groups.append(hyper)

        saved_state = state_dict["state"]
        params = [p for group_params in self._leaves for p in group_params]
        if not isinstance(saved_state, Mapping) or set(saved_state) != set(range(len(params))):
            raise ValueError(f"state dict: 'state' must have the keys 0..{len(params) - 1}")
        new_state = [self._loaded_state(i, saved_state[i], p) for i, p in enumerate(params)]

        for group, hyper in zip(self.param_groups, new_groups, strict=True):
            group.update(hyper)
        self.state = new_state

    def _loaded_state(self, i: int, saved: Any, p: FloatArray) -> dict[str, Any]:
        where = f"state dict: state of parameter {i}"
        if not isinstance(saved, Mapping):
            raise ValueError(f"{where}: expected a dict")
        unknown = set(saved) - set(self.state_fields)
        if unknown or "step" not in saved:
            raise ValueError(
                f"{where}: has keys {sorted(map(str, saved))}, expected 'step' and some of "
                f"{list(self.state_fields)}"
            )
        step = saved["step"]
        if type(step) is np.ndarray and step.shape == () and step.dtype.kind in "iu":
            step = step.item()
        if (
            isinstance(step, bool)
            or not isinstance(step, (int, np.integer))
            or not 0 <= step <= MAX_STEP
        ):
            raise ValueError(
                f"{where}: 'step' must be an integer in [0, 2**63), got {_short(step)}"
            )
        state: dict[str, Any] = {"step": int(step)}
        for key, value in saved.items():
            if key == "step":
                continue
            if type(value) is not np.ndarray or value.shape != p.shape or value.dtype != p.dtype:
                raise ValueError(
                    f"{where}: {key!r} must be an array of shape {p.shape} and dtype {p.dtype}, "
                    f"got {describe(value)}"
                )
            if not np.isfinite(value).all():
                raise ValueError(f"{where}: {key!r} holds NaN or infinity")
            if key in self.non_negative_state and (value < 0).any():
                raise ValueError(f"{where}: {key!r} holds negative values (it averages squares)")
            state[key] = np.array(value, order="C")  # a copy of its own, aligned
        return state

    def _named(self) -> list[tuple[str, FloatArray]]:
        """Every parameter and state array, with its name for an error."""
        named: list[tuple[str, FloatArray]] = []
        paths = [path for group_paths in self._names for path in group_paths]
        params = [x for group_params in self._leaves for x in group_params]
        for path, x, record in zip(paths, params, self.state, strict=True):
            named.append((path, x))
            named.extend(
                (f"state {k!r} of {path}", v)
                for k, v in record.items()
                if isinstance(v, np.ndarray)
            )
        return named

    def __repr__(self) -> str:
        sizes = [sum(p.size for p in ps) for ps in self._leaves]
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({hyper}; {len(sizes)} group(s), {sum(sizes)} elements)"

    # -- copy.deepcopy and pickle: the parameters, groups and state; a fresh lock and guards,
    # and no kernel table, so the copy's first step checks every array anew --

    def __getstate__(self) -> dict[str, Any]:
        busy = self._exclusive("copying or pickling")
        try:
            transient = ("_busy", "_guards", "_checked", "_plan", "_spans")
            return {k: v for k, v in self.__dict__.items() if k not in transient}
        finally:
            busy.release()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._busy = threading.Lock()
        self._checked = {}
        self._guards = _guards([x for leaves in self._leaves for x in leaves])


def _is_group_list(params: Any) -> bool:
    return (
        isinstance(params, (list, tuple))
        and len(params) > 0
        and all(isinstance(g, dict) and "params" in g for g in params)
    )


def _lists(value: Any, expected: list[int]) -> bool:
    """Whether ``value`` is a list or tuple of exactly the integers ``expected``."""
    return (
        isinstance(value, (list, tuple))
        and len(value) == len(expected)
        and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v == e
            for v, e in zip(value, expected, strict=True)
        )
    )


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else f"{shown[:20]}...{shown[-8:]}"


def _check_parameter(where: str, x: FloatArray) -> None:
    """A parameter must be a float32 or float64 array that can be written in place (its dtype
    and flags can change after construction: ``x.dtype = ...``, ``x.flags.writeable = False``)."""
    if x.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"{where}: dtype {x.dtype} is not supported; use float32 or float64")
    if not x.flags.writeable:
        raise ValueError(f"{where}: the array is read-only; parameters are updated in place")


class StateLayout(NamedTuple):
    """What one parameter's state record may hold, besides its ``step`` count (an int in
    [0, 2**63)): arrays by name (shape, dtype), other int entries (compact state's ``seed``),
    and whether the arrays come all together or none (compact state) or each may be missing
    or None until the first step makes it (float state)."""

    arrays: dict[str, tuple[tuple[int, ...], np.dtype[Any]]]
    counters: tuple[str, ...]
    whole: bool


def _checked_record(where: str, record: Any, layout: StateLayout) -> list[tuple[str, FloatArray]]:
    """The state arrays of the record of the parameter at ``where``, checked against
    ``layout``: a dict with ``step`` (an int in [0, 2**63)), and plain writeable arrays of
    the layout's shapes and dtypes. The same checks for every state format: the kernels take
    these arrays' addresses."""
    if type(record) is not dict:
        raise ValueError(f"state of {where}: expected a dict, got {type(record).__name__}")
    arrays = []
    for key in ("step", *layout.counters):
        value = record.get(key)
        if (key == "step" or value is not None) and (
            type(value) is not int or not 0 <= value <= MAX_STEP
        ):
            raise ValueError(
                f"state of {where}: {key!r} must be an int in [0, 2**63), got {_short(value)}"
            )
    for key, value in record.items():
        if key == "step" or key in layout.counters:
            continue
        if key not in layout.arrays:
            raise ValueError(
                f"state of {where}: unknown key {key!r}; expected some of "
                f"{['step', *layout.counters, *layout.arrays]}"
            )
        if value is None and not layout.whole:
            continue
        shape, dtype = layout.arrays[key]
        if type(value) is not np.ndarray or value.shape != shape or value.dtype != dtype:
            raise ValueError(
                f"state of {where}: {key!r} must be an array of shape {shape} and dtype "
                f"{dtype}, got {describe(value)}"
            )
        if not value.flags.writeable:
            raise ValueError(f"state of {where}: {key!r} is read-only")
        arrays.append((key, value))
    if layout.whole and arrays and len(arrays) != len(layout.arrays):
        missing = sorted(set(layout.arrays) - {key for key, _ in arrays})
        raise ValueError(
            f"state of {where}: {missing} missing; this state holds all of "
            f"{list(layout.arrays)} or none"
        )
    return arrays


def _check_disjoint(named: Sequence[tuple[str, FloatArray]]) -> None:
    """Raise naming two arrays of ``named`` that share memory (the same array twice, or two
    views of one buffer: each step would update that memory twice). One sweep over the arrays
    sorted by their first byte; ``np.shares_memory`` decides for arrays whose bounds overlap
    (interleaved views such as ``a[::2]`` and ``a[1::2]`` share none)."""
    bounds = []
    for i, (_, a) in enumerate(named):
        if a.size:
            low, high = np.lib.array_utils.byte_bounds(a)
            bounds.append((low, high, i))
    bounds.sort()
    open_: list[tuple[int, int]] = []  # (end, index) of the arrays whose bytes may still overlap
    for low, high, i in bounds:
        open_ = [(end, j) for end, j in open_ if end > low]
        for _, j in open_:
            if _share(named[i][1], named[j][1]):
                first, second = sorted((i, j))
                relation = "is" if named[i][1] is named[j][1] else "shares memory with"
                raise ValueError(
                    f"{named[second][0]} {relation} {named[first][0]}: each array of an "
                    "optimizer must have memory of its own (pass one view of a buffer once)"
                )
        open_.append((high, i))


def _spans(named: Sequence[tuple[str, FloatArray]]) -> tuple[list[int], list[int]]:
    """The bytes of the arrays of ``named``: spans merged where they overlap, sorted (starts,
    ends)."""
    starts: list[int] = []
    ends: list[int] = []
    for low, high in sorted(np.lib.array_utils.byte_bounds(a) for _, a in named if a.size):
        if ends and low < ends[-1]:
            ends[-1] = max(ends[-1], high)
        else:
            starts.append(low)
            ends.append(high)
    return starts, ends


def _check_apart(optimizer: _RuleOptimizer, grads: list[list[FloatArray]]) -> None:
    """Raise if a gradient shares memory with a parameter or a state array (the kernel would
    read elements it has written; the rule would not, but both paths refuse it alike); the
    parameter itself, element for element, is taken (each is read before it is written). A
    gradient costs its bounds and a bisection of ``optimizer._spans``; one that falls in a span
    is compared with each array exactly (``np.shares_memory``)."""
    starts, ends = optimizer._spans
    for paths, group_grads in zip(optimizer._names, grads, strict=True):
        for path, g in zip(paths, group_grads, strict=True):
            if not g.size or not starts:
                continue
            if g.flags.c_contiguous:
                first = kernels.address(g)
                last = first + g.nbytes
            else:
                first, last = np.lib.array_utils.byte_bounds(g)
            i = bisect.bisect_left(starts, last) - 1
            if i < 0 or ends[i] <= first:
                continue
            for name, a in optimizer._named():
                itself = name == path and g.strides == a.strides
                same = itself and first == np.lib.array_utils.byte_bounds(a)[0]
                if _share(g, a) and not same:
                    raise ValueError(
                        f"gradient for {path} shares memory with {name}: a step writes "
                        "that memory while it reads the gradient; pass a gradient of its own "
                        "(e.g. a copy). Nothing was changed."
                    )


def _share(a: FloatArray, b: FloatArray) -> bool:
    try:
        # max_work bounds the search (the stubs know only the -1 and 0 of NumPy's constants)
        return bool(np.shares_memory(a, b, max_work=100_000))  # type: ignore[arg-type]
    except np.exceptions.TooHardError:  # too costly to decide: take it as shared
        return True


def _guards(arrays: Sequence[FloatArray]) -> list[weakref.ref[FloatArray]]:
    """Weak references to ``arrays`` and to the arrays whose memory they view. NumPy refuses
    to resize an array that has a weak reference (even with ``refcheck=False``), so the memory
    of these arrays stays where the optimizer checked it as long as the references live."""
    guards = []
    for array in arrays:
        a: Any = array
        while isinstance(a, np.ndarray):
            guards.append(weakref.ref(a))
            a = a.base
    return guards


def _check_finite(paths: list[list[str]], grads: list[list[FloatArray]]) -> None:
    """Raise NonFiniteGradientError naming the first gradient that holds NaN or infinity.

    One parallel pass of :func:`adadelta.kernels.first_non_finite` over all the gradients,
    before anything is updated.
    """
    flat_grads = [g for group_grads in grads for g in group_grads]
    bad = kernels.first_non_finite(flat_grads)
    if bad >= 0:
        flat_names = [path for group_paths in paths for path in group_paths]
        raise _non_finite(flat_names[bad], flat_grads[bad])


def _non_finite(path: str, g: FloatArray) -> NonFiniteGradientError:
    count = int(g.size - np.count_nonzero(np.isfinite(g)))
    return NonFiniteGradientError(
        f"gradient for {path}: {count} of {g.size} entries are NaN or infinite; nothing was changed"
    )


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --- the optimizers ---


class _Fused(NamedTuple):
    """Arrays of one group and dtype that one kernel call updates."""

    group: int
    indices: list[int]  # in the group
    positions: list[int]  # in ``optimizer.state``
    batch: kernels.Batch


class _Plan(NamedTuple):
    """How an optimizer's arrays are updated: by kernels, or by the rule (``reference``: group,
    index in the group, position in ``optimizer.state``)."""

    fused: bool  # the optimizer's ``fused`` when the plan was made
    batches: list[_Fused]
    reference: list[tuple[int, int, int]]
    size: int  # the number of parameters


class _RuleOptimizer(Optimizer):
    """An optimizer whose step applies a rule of :mod:`adadelta.rules` to each array, through
    its fused kernel of :mod:`adadelta.kernels` where the arrays allow."""

    rule: ClassVar[Callable[..., tuple[FloatArray, Any]]]
    State: ClassVar[Any]  # the rule's state record, a NamedTuple
    _kernel: ClassVar[kernels.Kernel]
    # False: every array goes through the rule (the reference) instead of the kernel
    fused: bool = True
    _plan: _Plan | None = None
    # the parameters' and state arrays' bytes (merged spans, sorted): see _check_apart
    _spans: tuple[list[int], list[int]] = ([], [])

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.state_fields = cls.State._fields

    def _apply(self, grads: list[list[FloatArray]]) -> None:
        plan = self._plan
        kept = plan is not None and self._current(plan)
        if not kept or (plan is not None and plan.reference):
            # a new plan, or arrays that go through the rule: check every array as it is now
            # (the kernels' arrays of a kept plan are checked by Batch.current)
            self._check_arrays()
            self._spans = _spans(self._named())
        if not kept or plan is None or plan.reference or len(plan.batches) > 1:
            # the one batch of a kept plan checks its gradients' addresses itself, cheaper
            _check_apart(self, grads)
        # The default fast path: one batch holds every array, so its kernel call scans the
        # gradients before it updates anything (a refused step changes nothing); otherwise
        # one scan of all the gradients comes first.
        folded = (
            kept
            and plan is not None
            and self.check_finite
            and len(plan.batches) == 1
            and not plan.reference
        )
        if self.check_finite and not folded:
            _check_finite(self._names, grads)
        if plan is None or not kept:
            plan = self._plan = self._make_plan()
            self._spans = _spans(self._named())  # with the state arrays the plan made
        # the rule's results first (the rule allocates new arrays: it can fail, e.g. out of
        # memory, and nothing must have been written then), then the kernels, then the writes
        updates = []
        for g, i, position in plan.reference:
            group, x, state = self.param_groups[g], self._leaves[g][i], self.state[position]
            hyper = {k: group[k] for k in self.hyperparameters}
            record = self.State(*(state.get(f) for f in self.state_fields))
            updates.append((x, state, type(self).rule(x, grads[g][i], record, **hyper)))
        for g, indices, _, batch in plan.batches:
            gs = grads[g] if len(indices) == len(grads[g]) else [grads[g][i] for i in indices]
            try:
                bad = batch.step(self.param_groups[g], gs, folded)
            except kernels.SharedMemoryError:
                _check_apart(self, grads)  # raises, naming the arrays
                raise
            if bad >= 0:
                raise _non_finite(self._names[g][indices[bad]], grads[g][indices[bad]])
        for x, state, (new_x, new_record) in updates:
            x[...] = new_x
            for k, v in new_record._asdict().items():
                if v is not None:  # NumPy arithmetic turns 0-d arrays into scalars: undo it
                    state[k] = np.asarray(v) if isinstance(v, np.generic) else v

    def _make_plan(self) -> _Plan:
        batches, reference, position = [], [], 0
        for g, (group, params) in enumerate(zip(self.param_groups, self._leaves, strict=True)):
            by_dtype: dict[np.dtype[Any], list[tuple[int, int]]] = {}
            for i, x in enumerate(params):
                if self.fused and kernels.fusable(x, self.state[position]):
                    by_dtype.setdefault(x.dtype, []).append((i, position))
                else:
                    reference.append((g, i, position))
                position += 1
            for members in by_dtype.values():
                indices, positions = [i for i, _ in members], [p for _, p in members]
                params_ = [params[i] for i in indices]
                batch = kernels.Batch(
                    self._kernel, group, params_, [self.state[p] for p in positions]
                )
                batches.append(_Fused(g, indices, positions, batch))
        return _Plan(self.fused, batches, reference, position)

    def _current(self, plan: _Plan) -> bool:
        """Whether ``plan`` still holds: the same ``fused``, and each batch's state records
        and arrays as it made them (see :meth:`kernels.Batch.current`: a loaded state dict, a
        replaced, reshaped or read-only array call for a new plan, checked anew)."""
        if plan.fused != self.fused or plan.size != len(self.state):
            return False
        state = self.state
        for b in plan.batches:
            for position, s in zip(b.positions, b.batch.states, strict=True):
                if state[position] is not s:
                    return False
            if not b.batch.current(self.param_groups[b.group]):
                return False
        return True


class Adadelta(_RuleOptimizer):
    r"""ADADELTA (Zeiler, 2012): Algorithm 1 exactly, with the paper's defaults.

    .. math::

        E[g^2]_t = \rho E[g^2]_{t-1} + (1-\rho) g_t^2, \qquad
        \Delta x_t = -\frac{\sqrt{E[\Delta x^2]_{t-1} + \epsilon}}
                         {\sqrt{E[g^2]_t + \epsilon}}\, g_t, \qquad
        E[\Delta x^2]_t = \rho E[\Delta x^2]_{t-1} + (1-\rho) \Delta x_t^2

    and ``x += lr * dx`` (see :func:`adadelta.rules.adadelta`).

    Parameters
    ----------
    params : array, or list / tuple / dict (nested) of arrays, or list of group dicts
        The float32 or float64 arrays to optimize, updated in place by :meth:`step`.
    lr : float, optional
        Scales the applied step only (not the accumulated :math:`E[\Delta x^2]`). ``None``
        (the default) takes the preset's: 1.0 for ``"paper"``, ``"torch"`` and ``"optax"``,
        0.001 for ``"keras"`` and ``"tf1"``.
    rho : float in [0, 1), optional
        Decay rate of both running averages. ``None`` takes the preset's: 0.95 for ``"paper"``,
        ``"keras"`` and ``"tf1"``, 0.9 for ``"torch"`` and ``"optax"``.
    eps : float > 0, optional
        Added inside both square roots; :math:`\sqrt{\epsilon}` sets the size of the first
        steps. ``None`` takes the preset's: 1e-6 for ``"paper"``, ``"torch"`` and ``"optax"``,
        1e-7 for ``"keras"``, 1e-8 for ``"tf1"``.
    weight_decay : float >= 0, default 0.0
        L2 penalty: added to the gradient as ``weight_decay * x`` (``"keras"``: decoupled,
        ``x -= x * weight_decay * lr`` before the step).
    maximize : bool, default False
        Ascend the objective instead of descending it.
    preset : {"paper", "torch", "optax", "keras", "tf1"}, default "paper"
        Whose defaults to use (:data:`adadelta.PRESETS`); arguments given explicitly override
        the preset's values.
    check_finite : bool, keyword-only, default True
        Refuse a step whose gradients hold NaN or infinity
        (:class:`NonFiniteGradientError`, nothing changed); ``False`` skips the check.

    Examples
    --------
    >>> x = np.array([1.0, -2.0])
    >>> opt = Adadelta(x)
    >>> opt.step(np.array([0.5, 0.5]))
    >>> print(np.round(x, 6))
    [ 0.995528 -2.004472]

    ``state_dtype`` keeps E[g^2] and E[dx^2] compact, for float32 parameters (see the README's
    "Compact state" and :mod:`adadelta.kernels.compact`): None (the default) in the parameters'
    dtype; ``"bfloat16"`` (4 bytes a parameter instead of 8) or ``"float8"`` (2.03 bytes),
    written back with stochastic rounding whose random bits follow from ``seed``, the step and
    the element. :func:`adadelta.convert_state` moves a state dict between formats.
    """

    rule = staticmethod(rules.adadelta)
    _kernel = kernels.ADADELTA
    State = rules.AdadeltaState
    non_negative_state = frozenset({"E_g2", "E_dx2"})
    hyperparameters: ClassVar[dict[str, Check]] = {
        "lr": non_negative,
        "rho": unit_interval,
        "eps": positive,
        "weight_decay": non_negative,
        "decoupled_weight_decay": boolean,
        "maximize": boolean,
    }

    def __init__(
        self,
        params: Any,
        lr: float | None = None,
        rho: float | None = None,
        eps: float | None = None,
        weight_decay: float = 0.0,
        maximize: bool = False,
        preset: str = "paper",
        *,
        check_finite: bool = True,
        state_dtype: str | None = None,
        seed: int = 0,
    ) -> None:
        if state_dtype is not None and state_dtype not in compact.FORMATS:
            raise _invalid("state_dtype", state_dtype, f"None or one of {list(compact.FORMATS)}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise _invalid("seed", seed, "a non-negative integer")
        self.state_dtype = state_dtype
        self._compact = None if state_dtype is None else compact.Stepper(state_dtype, int(seed))
        if preset not in PRESETS:
            raise ValueError(f"Invalid preset value: {preset!r} (must be one of {sorted(PRESETS)})")
        p = PRESETS[preset]
        defaults = {
            "lr": p.lr if lr is None else lr,
            "rho": p.rho if rho is None else rho,
            "eps": p.eps if eps is None else eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": p.decoupled_weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults, check_finite=check_finite)

    # -- compact state (state_dtype): everything else is the float path's --

    def _add_group(self, param_group: Any) -> None:
        if self.state_dtype is not None and isinstance(param_group, dict):
            for path, leaf in leaves_with_paths(param_group.get("params", [])):
                if isinstance(leaf, np.ndarray) and leaf.dtype == np.float64:
                    raise TypeError(
                        f"{self._prefix(len(self.param_groups))}{path}: "
                        f"state_dtype={self.state_dtype!r} needs float32 "
                        "parameters, got float64"
                    )
        super()._add_group(param_group)

    def _state_layout(self, x: FloatArray) -> StateLayout:
        if self.state_dtype is None:
            return super()._state_layout(x)
        return StateLayout(compact.layout(x, self.state_dtype), ("seed",), True)

    def _apply(self, grads: list[list[FloatArray]]) -> None:
        stepper = self._compact
        if stepper is None:
            return super()._apply(grads)
        # the float path's checks: every array as it is now, unless the stepper's address
        # tables still describe every parameter and state array (then only the gradients')
        kept = stepper.kept(self._leaves, self.state, self.fused)
        if not kept:
            self._check_arrays()
            self._spans = _spans(self._named())
        _check_apart(self, grads)
        bad = stepper.step(
            self.param_groups, self._leaves, self.state, grads, self.fused, self.check_finite
        )
        if not kept:
            self._spans = _spans(self._named())  # with the state arrays the step made
        if bad >= 0:
            flat_names = [path for group_paths in self._names for path in group_paths]
            raise _non_finite(flat_names[bad], [g for gs in grads for g in gs][bad])

    def _loaded_state(self, i: int, saved: Any, p: FloatArray) -> dict[str, Any]:
        saved_format = compact.format_of(saved)
        if saved_format != self.state_dtype and isinstance(saved, Mapping) and "E_g2" in saved:
            raise ValueError(
                f"state dict: state of parameter {i} is in format {saved_format or 'float'}, "
                f"this optimizer keeps state_dtype={self.state_dtype!r}; convert it first with "
                f"adadelta.convert_state(state_dict, {self.state_dtype!r})"
            )
        if self.state_dtype is None:
            return super()._loaded_state(i, saved, p)
        where = f"state dict: state of parameter {i}"
        if not isinstance(saved, Mapping):
            raise ValueError(f"{where}: expected a dict")
        return compact.checked_state(where, saved, p, self.state_dtype)


def convert_state(
    state_dict: Mapping[str, Any], state_dtype: str | None, *, seed: int = 0
) -> dict[str, Any]:
    """``state_dict`` of an :class:`Adadelta` with its state in another format: a new dict
    that an optimizer built with ``state_dtype`` loads (``None``: float32 arrays, the default
    optimizer's; ``"bfloat16"``, ``"float8"``). Values are rounded once, to nearest;
    converting to float32 is exact. Parameters that get compact state for the first time get
    the seed that an optimizer built with ``seed`` gives them; others keep theirs.

    ``state_dict`` is checked first, as :meth:`Adadelta.load_state_dict` checks it (in its own
    format, on parameters of the shapes its state has): what a load would refuse, the
    conversion refuses with the same error, and ``state_dict`` is never changed."""
    if state_dtype is not None and state_dtype not in compact.FORMATS:
        raise _invalid("state_dtype", state_dtype, f"None or one of {list(compact.FORMATS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise _invalid("seed", seed, "a non-negative integer")
    checker = _checker(state_dict)
    checker.load_state_dict(state_dict)
    return compact.convert_state(checker.state_dict(), state_dtype, seed=int(seed))


def _checker(state_dict: Any) -> Adadelta:
    """An :class:`Adadelta` whose load_state_dict checks ``state_dict``: in the format of its
    first state with arrays, with a parameter of each state's shape in each group (zero-stride
    stand-ins: no memory of their size)."""
    if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
        raise ValueError("state dict: expected a dict with exactly 'state' and 'param_groups'")
    saved, groups = state_dict["state"], state_dict["param_groups"]
    if not isinstance(saved, Mapping):
        raise ValueError("state dict: 'state' must be a dict of the parameters' states")
    if not isinstance(groups, (list, tuple)) or not groups:
        raise ValueError("state dict: 'param_groups' must be a non-empty list of groups")
    for i, group in enumerate(groups):
        if not isinstance(group, Mapping) or not isinstance(group.get("params"), (list, tuple)):
            raise ValueError(f"state dict: parameter group {i} must list its parameters")
        if not group["params"]:
            raise ValueError(f"state dict: parameter group {i} holds no parameters")
    formats = [compact.format_of(record) for record in saved.values()]
    source = next((f for f in formats if f is not None), None)
    stand_ins = []
    for i in range(sum(len(group["params"]) for group in groups)):
        record = saved.get(i)
        value = record.get("E_g2", record.get("E_dx2")) if isinstance(record, Mapping) else None
        shape = value.shape if isinstance(value, np.ndarray) else ()
        dtype = np.dtype(np.float32)
        if source is None and isinstance(value, np.ndarray) and value.dtype in SUPPORTED_DTYPES:
            dtype = value.dtype
        stand_ins.append(
            np.lib.stride_tricks.as_strided(
                np.zeros(1, dtype), shape, (0,) * len(shape), writeable=True
            )
        )
    parts, first = [], 0
    for group in groups:
        parts.append({"params": stand_ins[first : first + len(group["params"])]})
        first += len(group["params"])
    return Adadelta(parts, state_dtype=source)


class SGD(_RuleOptimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``
    (same arguments, defaults and arithmetic; see :func:`adadelta.rules.sgd`).

    The paper's MOMENTUM baseline is ``SGD(params, lr, momentum=...)``.

    Parameters
    ----------
    params : array, or list / tuple / dict (nested) of arrays, or list of group dicts
        The float32 or float64 arrays to optimize, updated in place by :meth:`step`.
    lr : float >= 0, default 1e-3
        Learning rate.
    momentum : float >= 0, default 0.0
        Momentum factor; 0 is plain SGD.
    dampening : float in [0, 1], default 0.0
        Dampening of the gradient's share in the momentum buffer.
    weight_decay : float >= 0, default 0.0
        L2 penalty, added to the gradient as ``weight_decay * x``.
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    maximize : bool, default False
        Ascend the objective instead of descending it.
    check_finite : bool, keyword-only, default True
        Refuse a step whose gradients hold NaN or infinity
        (:class:`NonFiniteGradientError`, nothing changed); ``False`` skips the check.
    """

    rule = staticmethod(rules.sgd)
    _kernel = kernels.SGD
    State = rules.SGDState
    hyperparameters: ClassVar[dict[str, Check]] = {
        "lr": non_negative,
        "momentum": non_negative,
        "dampening": unit_interval_closed,
        "weight_decay": non_negative,
        "nesterov": boolean,
        "maximize": boolean,
    }

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
        *,
        check_finite: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults, check_finite=check_finite)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")


class Adagrad(_RuleOptimizer):
    """Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad`` (same arguments, defaults and
    arithmetic; see :func:`adadelta.rules.adagrad`).

    Parameters
    ----------
    params : array, or list / tuple / dict (nested) of arrays, or list of group dicts
        The float32 or float64 arrays to optimize, updated in place by :meth:`step`.
    lr : float >= 0, default 1e-2
        Learning rate.
    lr_decay : float >= 0, default 0.0
        The learning rate at step ``t`` is ``lr / (1 + (t - 1) * lr_decay)``.
    weight_decay : float >= 0, default 0.0
        L2 penalty, added to the gradient as ``weight_decay * x``.
    initial_accumulator_value : float >= 0, default 0.0
        Starting value of the sum of squared gradients.
    eps : float > 0, default 1e-10
        Added to the root of the sum, outside it.
    maximize : bool, default False
        Ascend the objective instead of descending it.
    check_finite : bool, keyword-only, default True
        Refuse a step whose gradients hold NaN or infinity
        (:class:`NonFiniteGradientError`, nothing changed); ``False`` skips the check.
    """

    rule = staticmethod(rules.adagrad)
    _kernel = kernels.ADAGRAD
    State = rules.AdagradState
    non_negative_state = frozenset({"sum"})
    hyperparameters: ClassVar[dict[str, Check]] = {
        "lr": non_negative,
        "lr_decay": non_negative,
        "weight_decay": non_negative,
        "initial_accumulator_value": non_negative,
        "eps": positive,
        "maximize": boolean,
    }

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        maximize: bool = False,
        *,
        check_finite: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "eps": eps,
            "maximize": maximize,
        }
        super().__init__(params, defaults, check_finite=check_finite)


class RMSprop(_RuleOptimizer):
    """RMSprop (Tieleman and Hinton, 2012), as ``torch.optim.RMSprop`` (same arguments,
    defaults and arithmetic; see :func:`adadelta.rules.rmsprop`).

    Parameters
    ----------
    params : array, or list / tuple / dict (nested) of arrays, or list of group dicts
        The float32 or float64 arrays to optimize, updated in place by :meth:`step`.
    lr : float >= 0, default 1e-2
        Learning rate.
    alpha : float in [0, 1), default 0.99
        Decay rate of the running average of squared gradients.
    eps : float > 0, default 1e-8
        Added to the root of the average, outside it.
    weight_decay : float >= 0, default 0.0
        L2 penalty, added to the gradient as ``weight_decay * x``.
    momentum : float >= 0, default 0.0
        Momentum factor applied to the scaled step.
    centered : bool, default False
        Divide by the root of the variance (the average minus the squared mean gradient).
    maximize : bool, default False
        Ascend the objective instead of descending it.
    check_finite : bool, keyword-only, default True
        Refuse a step whose gradients hold NaN or infinity
        (:class:`NonFiniteGradientError`, nothing changed); ``False`` skips the check.
    """

    rule = staticmethod(rules.rmsprop)
    _kernel = kernels.RMSPROP
    State = rules.RMSpropState
    non_negative_state = frozenset({"square_avg"})
    hyperparameters: ClassVar[dict[str, Check]] = {
        "lr": non_negative,
        "alpha": unit_interval,
        "eps": positive,
        "weight_decay": non_negative,
        "momentum": non_negative,
        "centered": boolean,
        "maximize": boolean,
    }

    def __init__(
        self,
        params: Any,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        maximize: bool = False,
        *,
        check_finite: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "alpha": alpha,
            "eps": eps,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "centered": centered,
            "maximize": maximize,
        }
        super().__init__(params, defaults, check_finite=check_finite)


class Adam(_RuleOptimizer):
    """Adam (Kingma and Ba, 2015), with optional AMSGrad, as ``torch.optim.Adam`` (same
    arguments, defaults and arithmetic; see :func:`adadelta.rules.adam`).

    Parameters
    ----------
    params : array, or list / tuple / dict (nested) of arrays, or list of group dicts
        The float32 or float64 arrays to optimize, updated in place by :meth:`step`.
    lr : float >= 0, default 1e-3
        Learning rate.
    betas : (float, float), each in [0, 1), default (0.9, 0.999)
        Decay rates of the running averages of the gradient and of its square.
    eps : float > 0, default 1e-8
        Added to the root of the bias-corrected second moment, outside it.
    weight_decay : float >= 0, default 0.0
        L2 penalty, added to the gradient as ``weight_decay * x``.
    amsgrad : bool, default False
        Use the running maximum of the second moment (AMSGrad).
    maximize : bool, default False
        Ascend the objective instead of descending it.
    check_finite : bool, keyword-only, default True
        Refuse a step whose gradients hold NaN or infinity
        (:class:`NonFiniteGradientError`, nothing changed); ``False`` skips the check.
    """

    rule = staticmethod(rules.adam)
    _kernel = kernels.ADAM
    State = rules.AdamState
    non_negative_state = frozenset({"exp_avg_sq", "max_exp_avg_sq"})
    hyperparameters: ClassVar[dict[str, Check]] = {
        "lr": non_negative,
        "betas": betas,
        "eps": positive,
        "weight_decay": non_negative,
        "amsgrad": boolean,
        "maximize": boolean,
    }

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
        *,
        check_finite: bool = True,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": tuple(betas) if isinstance(betas, list) else betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
        }
        super().__init__(params, defaults, check_finite=check_finite)


OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {  # name -> optimizer class
    cls.__name__: cls for cls in (Adadelta, SGD, Adagrad, RMSprop, Adam)
}
