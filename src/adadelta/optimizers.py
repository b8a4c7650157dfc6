"""The NumPy optimizers: one base class that owns parameters, groups, state and validation, and
one small subclass per optimizer that names its rule and its hyperparameters.

Usage::

    params = {"W": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)}
    opt = Adadelta(params)              # the paper's rho=0.95, eps=1e-6, no learning rate
    opt.step({"W": dW, "b": db})        # updates params in place

A ``step`` first checks every gradient (structure, shape, dtype, finiteness) and every
hyperparameter, and only then changes anything: a rejected step leaves the parameters and the
state exactly as they were.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np

from adadelta import kernels, rules
from adadelta._tree import describe, leaves_with_paths, match_gradients
from adadelta.kernels import compact
from adadelta.presets import PRESETS

FloatArray = rules.FloatArray
SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class NonFiniteGradientError(ValueError):
    """A gradient holds NaN or infinity; the step was refused and nothing was changed."""


# --- hyperparameter checks: each raises ValueError("Invalid <name> value: <value> (...)") ---

Check = Callable[[str, Any], None]


def _invalid(name: str, value: Any, requirement: str) -> ValueError:
    return ValueError(f"Invalid {name} value: {value!r} (must be {requirement})")


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _invalid(name, value, "a real number")
    if not math.isfinite(value):
        raise _invalid(name, value, "finite")
    return float(value)


def non_negative(name: str, value: Any) -> None:
    if _real(name, value) < 0:
        raise _invalid(name, value, ">= 0")


def positive(name: str, value: Any) -> None:
    if _real(name, value) <= 0:
        raise _invalid(name, value, "> 0")


def unit_interval(name: str, value: Any) -> None:
    if not 0 <= _real(name, value) < 1:
        raise _invalid(name, value, "in [0, 1)")


def unit_interval_closed(name: str, value: Any) -> None:
    if not 0 <= _real(name, value) <= 1:
        raise _invalid(name, value, "in [0, 1]")


def boolean(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise _invalid(name, value, "True or False")


def betas(name: str, value: Any) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _invalid(name, value, "a pair (beta1, beta2)")
    for i, beta in enumerate(value):
        unit_interval(f"beta parameter at index {i}", beta)


# --- the base class ---


class Optimizer:
    """Base class: holds the parameter groups and the per-parameter state, checks every input,
    and applies the subclass's update rule.

    Subclasses set ``hyperparameters`` (name -> check), ``state_fields`` (the names of the
    state record), and implement :meth:`_apply`.
    """

    hyperparameters: ClassVar[dict[str, Check]]
    state_fields: ClassVar[tuple[str, ...]]

    def __init__(self, params: Any, defaults: dict[str, Any], *, check_finite: bool = True) -> None:
        self._check_hyperparameters(defaults)
        self.defaults = dict(defaults)
        self.check_finite = check_finite
        self.param_groups: list[dict[str, Any]] = []
        self.state: list[dict[str, Any]] = []  # one record per parameter, in group order
        self._leaves: list[list[FloatArray]] = []  # the parameters of each group, flattened
        self._paths: list[list[str]] = []
        self._checked: dict[int, list[Any]] = {}  # id(group) -> the values that last passed
        self._grouped = _is_group_list(params)
        for group in params if self._grouped else [{"params": params}]:
            self._add_group(group)

    # -- parameter groups --

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
        self._add_group(param_group)

    def _add_group(self, param_group: Any) -> None:
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError("a parameter group must be a dict with a 'params' entry")
        unknown = set(param_group) - {"params"} - set(self.defaults)
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {sorted(unknown)} for {type(self).__name__}; "
                f"expected some of {sorted(self.defaults)}"
            )
        group = {**self.defaults, **param_group}
        self._check_hyperparameters(group)
        paths, leaves = [], []
        seen = {id(p) for group_leaves in self._leaves for p in group_leaves}
        for path, leaf in leaves_with_paths(group["params"]):
            where = f"params{path}"
            if not isinstance(leaf, np.ndarray):
                raise TypeError(f"{where}: expected a NumPy float array, got {describe(leaf)}")
            if leaf.dtype not in SUPPORTED_DTYPES:
                raise TypeError(
                    f"{where}: dtype {leaf.dtype} is not supported; use float32 or float64"
                )
            if not leaf.flags.writeable:
                raise ValueError(
                    f"{where}: the array is read-only; parameters are updated in place"
                )
            if id(leaf) in seen:
                raise ValueError(f"{where}: this array appears more than once among the parameters")
            seen.add(id(leaf))
            paths.append(path)
            leaves.append(leaf)
        if not leaves:
            raise ValueError("a parameter group holds no parameters")
        self.param_groups.append(group)
        self._leaves.append(leaves)
        self._paths.append(paths)
        self.state.extend({"step": 0} for _ in leaves)

    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        """Check ``group``'s hyperparameters and turn NumPy scalars into Python numbers (a NumPy
        float64 would otherwise promote float32 parameters and state to float64)."""
        for name, check in self.hyperparameters.items():
            check(name, group[name])
            group[name] = _python_number(group[name])
        self._validate_group(group)

    def _validate_group(self, group: Mapping[str, Any]) -> None:
        """Checks across hyperparameters (e.g. Nesterov needs momentum); none by default."""

    def _check_hyperparameters_if_changed(self, group: dict[str, Any]) -> None:
        """:meth:`_check_hyperparameters`, skipped while every hyperparameter is still the very
        object that passed the last check (checked values are immutable Python numbers, bools and
        tuples, so the same object is the same value). Saves a few microseconds a step."""
        if not kernels.same_objects(group, self._checked.get(id(group), ())):
            self._check_hyperparameters(group)
            self._checked[id(group)] = list(group.values())

    # -- the step --

    def step(self, grads: Any) -> None:
        """Update every parameter in place from ``grads``, which has the parameters' structure
        (for an optimizer built from a list of groups: a list of one structure per group).

        Raises before changing anything if a gradient's structure, shape or dtype differs from
        its parameter's, if a gradient holds NaN or infinity (unless ``check_finite=False``),
        or if a hyperparameter was set to an invalid value.
        """
        per_group = grads if self._grouped else [grads]
        if self._grouped and (
            not isinstance(grads, (list, tuple)) or len(grads) != len(self._leaves)
        ):
            raise ValueError(
                f"gradients: expected a list of {len(self._leaves)} gradient structures, "
                f"one per parameter group, got {describe(grads)}"
            )
        grad_leaves = []
        for group, group_grads in zip(self.param_groups, per_group, strict=True):
            self._check_hyperparameters_if_changed(group)
            grad_leaves.append(match_gradients(group["params"], group_grads))
        self._apply(grad_leaves)

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
        groups, first = [], 0
        for group, params in zip(self.param_groups, self._leaves, strict=True):
            hyper = {k: _plain(v) for k, v in group.items() if k != "params"}
            groups.append({**hyper, "params": list(range(first, first + len(params)))})
            first += len(params)
        state = {
            i: {k: v.copy() if isinstance(v, np.ndarray) else int(v) for k, v in s.items()}
            for i, s in enumerate(self.state)
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`. Everything is checked first (keys, group sizes,
        hyperparameters, state shapes and dtypes); a refused state dict changes nothing."""
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
            if not isinstance(saved, Mapping) or list(saved.get("params", ())) != expected:
                raise ValueError(f"state dict: parameter group {i} must list parameters {expected}")
            hyper = {k: v for k, v in saved.items() if k != "params"}
            if set(hyper) != set(self.defaults):
                raise ValueError(
                    f"state dict: parameter group {i} has hyperparameters {sorted(hyper)}, "
                    f"expected {sorted(self.defaults)}"
                )
            hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in hyper.items()}
            self._check_hyperparameters(hyper)
            new_groups.append(hyper)

        saved_state = state_dict["state"]
        params = [p for group_params in self._leaves for p in group_params]
        if not isinstance(saved_state, Mapping) or set(saved_state) != set(range(len(params))):
            raise ValueError(f"state dict: 'state' must have the keys 0..{len(params) - 1}")
        new_state = [self._checked_state(i, saved_state[i], p) for i, p in enumerate(params)]

        for group, hyper in zip(self.param_groups, new_groups, strict=True):
            group.update(hyper)
        self.state = new_state

    def _checked_state(self, i: int, saved: Any, p: FloatArray) -> dict[str, Any]:
        """A checked copy of parameter ``i``'s saved state."""
        return _checked_state(i, saved, p, self.state_fields)

    def __repr__(self) -> str:
        sizes = [sum(p.size for p in ps) for ps in self._leaves]
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({hyper}; {len(sizes)} group(s), {sum(sizes)} elements)"


def _is_group_list(params: Any) -> bool:
    return (
        isinstance(params, (list, tuple))
        and len(params) > 0
        and all(isinstance(g, dict) and "params" in g for g in params)
    )


def _check_finite(paths: list[list[str]], grads: list[list[FloatArray]]) -> None:
    """Raise NonFiniteGradientError naming the first gradient that holds NaN or infinity.

    One parallel pass of :func:`adadelta.kernels.first_non_finite` over all the gradients,
    before anything is updated.
    """
    flat_grads = [g for group_grads in grads for g in group_grads]
    bad = kernels.first_non_finite(flat_grads)
    if bad >= 0:
        flat_paths = [path for group_paths in paths for path in group_paths]
        raise _non_finite(flat_paths[bad], flat_grads[bad])


def _non_finite(path: str, g: FloatArray) -> NonFiniteGradientError:
    count = int(g.size - np.count_nonzero(np.isfinite(g)))
    return NonFiniteGradientError(
        f"gradient for params{path}: {count} of {g.size} entries are NaN or infinite; "
        "nothing was changed"
    )


def _checked_state(i: int, saved: Any, p: FloatArray, fields: tuple[str, ...]) -> dict[str, Any]:
    where = f"state dict: state of parameter {i}"
    if not isinstance(saved, Mapping):
        raise ValueError(f"{where}: expected a dict")
    unknown = set(saved) - set(fields)
    if unknown or "step" not in saved:
        raise ValueError(
            f"{where}: has keys {sorted(saved)}, expected 'step' and some of {list(fields)}"
        )
    step = saved["step"]
    if isinstance(step, np.ndarray) and step.shape == ():
        step = step.item()
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"{where}: 'step' must be a non-negative integer, got {step!r}")
    state: dict[str, Any] = {"step": int(step)}
    for key, value in saved.items():
        if key == "step":
            continue
        if not isinstance(value, np.ndarray) or value.shape != p.shape or value.dtype != p.dtype:
            raise ValueError(
                f"{where}: {key!r} must be an array of shape {p.shape} and dtype {p.dtype}, "
                f"got {describe(value)}"
            )
        state[key] = value.copy()
    return state


def _python_number(value: Any) -> Any:
    if isinstance(value, (tuple, list)):  # betas
        return tuple(_python_number(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


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
    kernel: ClassVar[kernels.Kernel]
    # False: every array goes through the rule (the reference) instead of the kernel
    fused: bool = True
    _plan: _Plan | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.state_fields = cls.State._fields

    def _apply(self, grads: list[list[FloatArray]]) -> None:
        plan = self._plan
        current = plan is not None and self._current(plan)
        # The default fast path: one batch holds every array, so its kernel call scans the
        # gradients before it updates anything (a refused step changes nothing); otherwise
        # one scan of all the gradients comes first.
        folded = (
            current
            and plan is not None
            and self.check_finite
            and len(plan.batches) == 1
            and not plan.reference
        )
        if self.check_finite and not folded:
            _check_finite(self._paths, grads)
        if plan is None or not current:
            plan = self._plan = self._make_plan()
        for g, indices, _, batch in plan.batches:
            gs = grads[g] if len(indices) == len(grads[g]) else [grads[g][i] for i in indices]
            bad = batch.step(self.param_groups[g], gs, folded)
            if bad >= 0:
                raise _non_finite(self._paths[g][indices[bad]], grads[g][indices[bad]])
        for g, i, position in plan.reference:
            group, x, state = self.param_groups[g], self._leaves[g][i], self.state[position]
            hyper = {k: group[k] for k in self.hyperparameters}
            record = self.State(*(state.get(f) for f in self.state_fields))
            new_x, new_record = type(self).rule(x, grads[g][i], record, **hyper)
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
                    self.kernel, group, params_, [self.state[p] for p in positions]
                )
                batches.append(_Fused(g, indices, positions, batch))
        return _Plan(self.fused, batches, reference, position)

    def _current(self, plan: _Plan) -> bool:
        """Whether ``plan`` still holds: the same ``fused``, parameters and state (a loaded
        state dict, a new group or a parameter made read-only call for a new one)."""
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

    ``preset`` picks the defaults of another implementation (see :data:`adadelta.PRESETS`:
    ``"paper"``, ``"torch"``, ``"optax"``, ``"keras"``, ``"tf1"``); any argument given
    explicitly overrides the preset. ``lr`` scales the applied step only. See
    :func:`adadelta.rules.adadelta` for the formula.

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
    kernel = kernels.ADADELTA
    State = rules.AdadeltaState
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
                        f"params{path}: state_dtype={self.state_dtype!r} needs float32 "
                        "parameters, got float64"
                    )
        super()._add_group(param_group)

    def _apply(self, grads: list[list[FloatArray]]) -> None:
        if self._compact is None:
            return super()._apply(grads)
        if self.check_finite:
            _check_finite(self._paths, grads)
        self._compact.step(self.param_groups, self._leaves, self.state, grads, self.fused)

    def _checked_state(self, i: int, saved: Any, p: FloatArray) -> dict[str, Any]:
        saved_format = compact.format_of(saved)
        if saved_format != self.state_dtype and isinstance(saved, Mapping) and "E_g2" in saved:
            raise ValueError(
                f"state dict: state of parameter {i} is in format {saved_format or 'float'}, "
                f"this optimizer keeps state_dtype={self.state_dtype!r}; convert it first with "
                f"adadelta.convert_state(state_dict, {self.state_dtype!r})"
            )
        if self.state_dtype is None:
            return super()._checked_state(i, saved, p)
        where = f"state dict: state of parameter {i}"
        if not isinstance(saved, Mapping):
            raise ValueError(f"{where}: expected a dict")
        return compact.checked_state(where, saved, p, self.state_dtype)


class SGD(_RuleOptimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    The paper's MOMENTUM baseline is ``SGD(params, lr, momentum=...)``.
    """

    rule = staticmethod(rules.sgd)
    kernel = kernels.SGD
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
    """Adagrad (Duchi et al., 2011), as ``torch.optim.Adagrad``."""

    rule = staticmethod(rules.adagrad)
    kernel = kernels.ADAGRAD
    State = rules.AdagradState
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
    """RMSprop (Tieleman and Hinton, 2012), as ``torch.optim.RMSprop``."""

    rule = staticmethod(rules.rmsprop)
    kernel = kernels.RMSPROP
    State = rules.RMSpropState
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
    """Adam (Kingma and Ba, 2015), with optional AMSGrad, as ``torch.optim.Adam``."""

    rule = staticmethod(rules.adam)
    kernel = kernels.ADAM
    State = rules.AdamState
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
