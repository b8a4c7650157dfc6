"""The table of optimizer configurations and invalid inputs that the generic tests run over.

In the spirit of PyTorch's ``OptimizerInfo``: one row per configuration worth testing, and one
row per invalid hyperparameter setting with the exact exception and message. Any test (of the
NumPy optimizers, of the fused kernels, of the PyTorch drop-in) can import it::

    from optimizer_matrix import CONFIGS, ERROR_INPUTS

Every configuration's ``kwargs`` make it clearly lower the test objectives of
``tests/test_optimizers.py`` (a quadratic and Rosenbrock's function) within ``steps`` steps;
a ``maximize`` configuration is given the gradient of the *negated* loss, so it too lowers it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adadelta import SGD, Adadelta, Adagrad, Adam, Optimizer, RMSprop


@dataclass(frozen=True)
class OptimizerConfig:
    """One valid configuration: ``cls(params, **kwargs)``."""

    id: str
    cls: type[Optimizer]
    kwargs: Mapping[str, Any]
    steps: int = 300  # steps in which the descent test expects the loss at least halved
    # Arguments that replace ``kwargs`` in the descent test only: the Keras and TF1 presets'
    # lr=1e-3 moves a parameter by about 1e-6 a step, too little to see in a few hundred steps.
    descent_overrides: Mapping[str, Any] = field(default_factory=dict)

    def make(self, params: Any, **overrides: Any) -> Optimizer:
        return self.cls(params, **{**self.kwargs, **overrides})

    @property
    def maximize(self) -> bool:
        return bool(self.kwargs.get("maximize", False))

    def torch_equivalent(self) -> tuple[str, dict[str, Any]] | None:
        """The ``torch.optim`` class name and arguments that compute the same steps, or None
        where PyTorch has no equivalent (decoupled, Keras-style, weight decay)."""
        defaults = self.make([np.zeros(1)]).defaults  # the preset resolved
        if defaults.get("decoupled_weight_decay") and defaults["weight_decay"] != 0:
            return None
        kwargs = {k: v for k, v in defaults.items() if k != "decoupled_weight_decay"}
        return self.cls.__name__, kwargs


def _adadelta(
    id: str, descent_lr: float | None = None, steps: int = 300, **kwargs: Any
) -> OptimizerConfig:
    overrides = {} if descent_lr is None else {"lr": descent_lr}
    return OptimizerConfig(f"Adadelta-{id}", Adadelta, kwargs, steps, overrides)


CONFIGS: list[OptimizerConfig] = [
    _adadelta("paper"),
    _adadelta("preset-paper", preset="paper"),
    _adadelta("preset-torch", preset="torch"),
    _adadelta("preset-optax", preset="optax"),
    _adadelta("preset-keras", 1.0, preset="keras"),
    _adadelta("preset-tf1", 1.0, 1000, preset="tf1"),  # eps=1e-8: a slower start
    _adadelta("lr0.5-rho0.9-eps1e-4", lr=0.5, rho=0.9, eps=1e-4),
    _adadelta("rho0", rho=0.0),
    _adadelta("weight_decay", weight_decay=0.1),
    _adadelta("maximize", maximize=True),
    _adadelta("weight_decay-maximize", weight_decay=0.05, maximize=True),
    _adadelta("preset-keras-weight_decay", 1.0, preset="keras", weight_decay=1e-3),
    OptimizerConfig("SGD-plain", SGD, {"lr": 1e-3}),
    OptimizerConfig("SGD-momentum", SGD, {"lr": 1e-3, "momentum": 0.9}),
    OptimizerConfig("SGD-dampening", SGD, {"lr": 1e-3, "momentum": 0.9, "dampening": 0.5}),
    OptimizerConfig("SGD-nesterov", SGD, {"lr": 1e-3, "momentum": 0.9, "nesterov": True}),
    OptimizerConfig("SGD-weight_decay", SGD, {"lr": 1e-3, "weight_decay": 0.1}),
    OptimizerConfig("SGD-maximize", SGD, {"lr": 1e-3, "momentum": 0.5, "maximize": True}),
    OptimizerConfig("Adagrad-plain", Adagrad, {"lr": 0.1}),
    OptimizerConfig("Adagrad-lr_decay", Adagrad, {"lr": 0.1, "lr_decay": 1e-3}),
    OptimizerConfig(
        "Adagrad-initial_accumulator_value", Adagrad, {"lr": 0.1, "initial_accumulator_value": 0.1}
    ),
    OptimizerConfig("Adagrad-weight_decay", Adagrad, {"lr": 0.1, "weight_decay": 0.1}),
    OptimizerConfig("Adagrad-maximize", Adagrad, {"lr": 0.1, "maximize": True}),
    OptimizerConfig("RMSprop-plain", RMSprop, {"lr": 1e-2}),
    OptimizerConfig("RMSprop-centered", RMSprop, {"lr": 1e-2, "centered": True}),
    OptimizerConfig("RMSprop-momentum", RMSprop, {"lr": 1e-3, "momentum": 0.9}),
    OptimizerConfig(
        "RMSprop-centered-momentum", RMSprop, {"lr": 1e-3, "momentum": 0.5, "centered": True}
    ),
    OptimizerConfig("RMSprop-weight_decay", RMSprop, {"lr": 1e-2, "weight_decay": 0.1}),
    OptimizerConfig("RMSprop-maximize", RMSprop, {"lr": 1e-2, "alpha": 0.9, "maximize": True}),
    OptimizerConfig("Adam-plain", Adam, {"lr": 1e-2}),
    OptimizerConfig("Adam-amsgrad", Adam, {"lr": 1e-2, "amsgrad": True}),
    OptimizerConfig("Adam-weight_decay", Adam, {"lr": 1e-2, "weight_decay": 0.1}),
    OptimizerConfig("Adam-maximize", Adam, {"lr": 1e-2, "betas": (0.8, 0.99), "maximize": True}),
]


@dataclass(frozen=True)
class ErrorInput:
    """Invalid hyperparameters: ``cls(params, **kwargs)`` raises ``error_type`` matching
    ``error_regex``. Unless ``constructor_only``, the same values are also refused by
    ``add_param_group``, by ``step`` after being set in ``param_groups``, and by
    ``load_state_dict``."""

    id: str
    cls: type[Optimizer]
    kwargs: Mapping[str, Any]
    error_type: type[Exception]
    error_regex: str
    constructor_only: bool = False


def _invalid(cls: type[Optimizer], name: str, value: Any, requirement: str) -> ErrorInput:
    """The base class's message: ``Invalid <name> value: <value!r> (must be <requirement>)``."""
    message = f"Invalid {name} value: {value!r} (must be {requirement})"
    return ErrorInput(
        f"{cls.__name__}-{name}={value!r}", cls, {name: value}, ValueError, re.escape(message)
    )


_NESTEROV = "Nesterov momentum requires a momentum > 0 and zero dampening"

ERROR_INPUTS: list[ErrorInput] = [
    _invalid(Adadelta, "rho", 1.0, "in [0, 1)"),
    _invalid(Adadelta, "rho", 1.1, "in [0, 1)"),
    _invalid(Adadelta, "rho", -0.1, "in [0, 1)"),
    _invalid(Adadelta, "rho", float("nan"), "finite"),
    _invalid(Adadelta, "eps", 0.0, "> 0"),
    _invalid(Adadelta, "eps", -1e-6, "> 0"),
    _invalid(Adadelta, "lr", -1.0, ">= 0"),
    _invalid(Adadelta, "lr", float("nan"), "finite"),
    _invalid(Adadelta, "lr", float("inf"), "finite"),
    _invalid(Adadelta, "lr", "0.1", "a real number"),
    _invalid(Adadelta, "lr", True, "a real number"),
    _invalid(Adadelta, "weight_decay", -0.1, ">= 0"),
    _invalid(Adadelta, "maximize", "yes", "True or False"),
    ErrorInput(
        "Adadelta-preset='pytorch'",
        Adadelta,
        {"preset": "pytorch"},
        ValueError,
        re.escape("Invalid preset value: 'pytorch' (must be one of ['keras', 'optax', 'paper'"),
        constructor_only=True,
    ),
    _invalid(SGD, "lr", -0.1, ">= 0"),
    _invalid(SGD, "lr", float("nan"), "finite"),
    _invalid(SGD, "momentum", -0.9, ">= 0"),
    _invalid(SGD, "dampening", 1.5, "in [0, 1]"),
    _invalid(SGD, "weight_decay", -1.0, ">= 0"),
    _invalid(SGD, "nesterov", 1, "True or False"),
    ErrorInput("SGD-nesterov-no-momentum", SGD, {"nesterov": True}, ValueError, _NESTEROV),
    ErrorInput(
        "SGD-nesterov-dampening",
        SGD,
        {"nesterov": True, "momentum": 0.9, "dampening": 0.1},
        ValueError,
        _NESTEROV,
    ),
    _invalid(Adagrad, "lr", -0.01, ">= 0"),
    _invalid(Adagrad, "lr_decay", -1.0, ">= 0"),
    _invalid(Adagrad, "initial_accumulator_value", -0.1, ">= 0"),
    _invalid(Adagrad, "eps", 0.0, "> 0"),
    _invalid(Adagrad, "weight_decay", float("-inf"), "finite"),
    _invalid(RMSprop, "alpha", 1.0, "in [0, 1)"),
    _invalid(RMSprop, "alpha", -0.1, "in [0, 1)"),
    _invalid(RMSprop, "eps", -1e-8, "> 0"),
    _invalid(RMSprop, "momentum", -0.1, ">= 0"),
    _invalid(RMSprop, "centered", "no", "True or False"),
    _invalid(RMSprop, "lr", None, "a real number"),
    _invalid(Adam, "lr", -1e-3, ">= 0"),
    _invalid(Adam, "eps", 0.0, "> 0"),
    _invalid(Adam, "weight_decay", -0.1, ">= 0"),
    _invalid(Adam, "amsgrad", None, "True or False"),
    _invalid(Adam, "betas", (0.9,), "a pair (beta1, beta2)"),
    _invalid(Adam, "betas", "0.9, 0.999", "a pair (beta1, beta2)"),
    ErrorInput(
        "Adam-betas=(1.0, 0.999)",
        Adam,
        {"betas": (1.0, 0.999)},
        ValueError,
        re.escape("Invalid beta parameter at index 0 value: 1.0 (must be in [0, 1))"),
    ),
    ErrorInput(
        "Adam-betas=(0.9, -0.1)",
        Adam,
        {"betas": (0.9, -0.1)},
        ValueError,
        re.escape("Invalid beta parameter at index 1 value: -0.1 (must be in [0, 1))"),
    ),
    ErrorInput(
        "Adam-betas=(0.9, nan)",
        Adam,
        {"betas": (0.9, float("nan"))},
        ValueError,
        re.escape("Invalid beta parameter at index 1 value: nan (must be finite)"),
    ),
]


MAXULP = 4


def assert_close(actual: Any, expected: Any, operands: Any = None) -> None:
    """Equal within MAXULP units in the last place, relative to each element, or to the
    largest magnitude of the array or of ``operands`` (the parameter before the step, where a
    step may cancel it): how close a fused kernel must stay to its rule.

    All kernels but ADADELTA's perform the rules' IEEE operations in the rules' order, so on
    x86-64 they agree to the bit; ADADELTA's takes one square root of the quotient where the
    rule divides two square roots, which moves the step by an ulp or two. An absolute bound
    scaled by the largest magnitude is needed where a sum cancels (x + lr * dx close to 0): its
    rounding error is relative to the operands, not to the result, so an ulp of the operands
    can be many ulps of a near-zero result (e.g. -3.5 + 3.266: one ulp of 3.266 is two of the
    result).
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    eps = np.finfo(expected.dtype).eps
    finite = np.isfinite(expected)
    magnitudes = [np.abs(expected[finite])]
    if operands is not None:
        magnitudes.append(np.abs(np.asarray(operands, np.float64)).ravel())
    scale = float(np.concatenate([m.ravel() for m in magnitudes]).max(initial=0.0))
    np.testing.assert_allclose(actual, expected, rtol=MAXULP * eps, atol=MAXULP * eps * scale)


def assert_identical(actual: Any, expected: Any, path: str = "") -> None:
    """Assert two nested structures are the same bit for bit: the same containers and keys,
    arrays of the same dtype, shape and bytes, equal scalars of the same type (NaN equals NaN)."""
    assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_identical(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_identical(a, e, f"{path}[{i}]")
    elif isinstance(expected, (np.ndarray, np.generic)):
        assert actual.dtype == expected.dtype, f"{path}: dtype {actual.dtype} != {expected.dtype}"
        assert actual.shape == expected.shape, f"{path}: shape {actual.shape} != {expected.shape}"
        assert actual.tobytes() == expected.tobytes(), f"{path}: values differ"
    elif isinstance(expected, float) and np.isnan(expected):
        assert np.isnan(actual), f"{path}: {actual!r} is not NaN"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
