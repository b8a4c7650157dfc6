"""Property tests (hypothesis) over shapes (0-d and empty included), float32 / float64 and the
hyperparameters: the optimizers' in-place step is the pure rule's output (bit for bit through the
rule, within a few ulps through the fused kernel), the first ADADELTA step is the paper's
formula, and every ADADELTA step obeys the bound the formula gives.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from adadelta import Adadelta, rules
from optimizer_matrix import CONFIGS, OptimizerConfig, assert_close, assert_identical

DTYPES: list[np.dtype[Any]] = [np.dtype(np.float32), np.dtype(np.float64)]
SETTINGS = settings(max_examples=50, deadline=None)

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
dtypes = st.sampled_from(DTYPES)
rhos = st.floats(0.0, 0.999)
epsilons = st.floats(1e-10, 1e-1)
learning_rates = st.floats(0.0, 10.0)


def float_arrays(
    dtype: np.dtype[Any], shape: tuple[int, ...], bound: float = 1e3
) -> st.SearchStrategy[np.ndarray]:
    width: Literal[32, 64] = 32 if dtype == np.float32 else 64
    return hnp.arrays(dtype, shape, elements=st.floats(-bound, bound, width=width))


@st.composite
def problems(draw: st.DrawFn, steps: int = 3) -> tuple[np.ndarray, list[np.ndarray]]:
    """A parameter array and a few gradients of its shape and dtype."""
    dtype, shape = draw(dtypes), draw(shapes)
    x = draw(float_arrays(dtype, shape, 10.0))
    grads = [draw(float_arrays(dtype, shape)) for _ in range(draw(st.integers(1, steps)))]
    return x, grads


def _as_array(value: Any) -> Any:
    return np.asarray(value) if isinstance(value, np.generic) else value


@SETTINGS
@given(
    problem=problems(),
    rho=rhos,
    eps=epsilons,
    lr=learning_rates,
    weight_decay=st.sampled_from([0.0, 1e-3, 0.5]),
    preset=st.sampled_from(["paper", "keras"]),
    maximize=st.booleans(),
)
def test_adadelta_step_is_the_rule(
    problem: tuple[np.ndarray, list[np.ndarray]],
    rho: float,
    eps: float,
    lr: float,
    weight_decay: float,
    preset: str,
    maximize: bool,
) -> None:
    x0, grads = problem
    xs = [x0.copy(), x0.copy()]
    fused, reference = (
        Adadelta(x, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                 preset=preset)
        for x in xs
    )  # fmt: skip
    reference.fused = False
    expected, state = x0.copy(), rules.AdadeltaState(0, None, None)
    for g in grads:
        before = expected
        fused.step(g.copy())
        reference.step(g.copy())
        expected, state = rules.adadelta(
            expected,
            g,
            state,
            lr=lr,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=preset == "keras",
            maximize=maximize,
        )
        expected = np.asarray(expected)
        assert_identical(xs[1], expected)
        assert_close(xs[0], expected, operands=before)
    assert xs[0].dtype == x0.dtype
    expected_state = {k: _as_array(v) for k, v in sorted(state._asdict().items())}
    assert_identical({k: reference.state[0][k] for k in sorted(reference.state[0])}, expected_state)
    assert fused.state[0]["step"] == state.step
    for key in ("E_g2", "E_dx2"):
        assert_close(fused.state[0][key], expected_state[key])


@settings(max_examples=100, deadline=None)
@given(config=st.sampled_from(CONFIGS), problem=problems(), scale=st.floats(1e-4, 1e3))
def test_every_optimizer_step_is_its_rule(
    config: OptimizerConfig, problem: tuple[np.ndarray, list[np.ndarray]], scale: float
) -> None:
    """The in-place step of every configuration of the matrix is its pure rule's output: bit
    for bit through the rule, within a few ulps through the fused kernel."""
    x0, grads = problem
    xs = [x0.copy(), x0.copy()]
    fused, reference = config.make(xs[0]), config.make(xs[1])
    reference.fused = False  # type: ignore[attr-defined]
    rule, state_type = type(fused).rule, type(fused).State  # type: ignore[attr-defined]
    hyper = {k: fused.param_groups[0][k] for k in fused.hyperparameters}
    expected, state = x0.copy(), state_type(0, *[None] * (len(state_type._fields) - 1))
    for g in grads:
        g = np.asarray(g * scale, g.dtype)
        if not np.isfinite(g).all():
            continue
        before = expected
        fused.step(g.copy())
        reference.step(g.copy())
        expected, state = rule(expected, g, state, **hyper)
        expected = np.asarray(expected)
        assert_identical(xs[1], expected)
        assert_close(xs[0], expected, operands=before)
    expected = {k: _as_array(v) for k, v in state._asdict().items() if v is not None}
    for opt, check in [(reference, assert_identical), (fused, assert_close)]:
        assert sorted(opt.state[0]) == sorted(expected)
        for key in expected:
            (assert_identical if key == "step" else check)(opt.state[0][key], expected[key])


@SETTINGS
@given(dtype=dtypes, shape=shapes, data=st.data(), rho=rhos, eps=epsilons, lr=learning_rates)
def test_first_adadelta_step_is_the_papers(
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    data: st.DataObject,
    rho: float,
    eps: float,
    lr: float,
) -> None:
    """dx_1 = -sqrt(eps) / sqrt((1 - rho) g^2 + eps) * g (E[g^2]_0 = E[dx^2]_0 = 0)."""
    g = data.draw(float_arrays(dtype, shape))
    x = np.zeros(shape, dtype)
    Adadelta(x, lr=lr, rho=rho, eps=eps).step(g.copy())
    assert x.dtype == dtype
    g64 = g.astype(np.float64)
    formula = lr * (-math.sqrt(eps) / np.sqrt((1 - rho) * g64 * g64 + eps) * g64)
    if dtype == np.float64:
        # a handful of roundings on either side (the kernel takes one square root of the
        # quotient where the formula divides two): a few ulps apart
        np.testing.assert_array_max_ulp(x, np.asarray(formula), maxulp=4)
    else:  # float32 arithmetic against the float64 formula
        tiny = float(np.finfo(np.float32).smallest_normal)  # lr * dx may underflow
        np.testing.assert_allclose(x, formula, rtol=1e-5, atol=tiny)
    # and its bound: |dx_1| <= lr * min(|g|, sqrt(eps / (1 - rho)))
    # (plus one unit of the subnormal grid: lr * dx = 1.5 * 1e-45 rounds to 3e-45)
    slack, unit = 1 + 8 * np.finfo(dtype).eps, float(np.finfo(dtype).smallest_subnormal)
    assert np.all(np.abs(x) <= lr * np.abs(g64) * slack + unit)
    assert np.all(np.abs(x) <= lr * math.sqrt(eps / (1 - rho)) * slack + unit)


@SETTINGS
@given(dtype=dtypes, shape=shapes, data=st.data(), rho=rhos, eps=epsilons)
def test_every_adadelta_step_is_bounded(
    dtype: np.dtype[Any], shape: tuple[int, ...], data: st.DataObject, rho: float, eps: float
) -> None:
    """Since E[g^2]_t >= (1 - rho) g_t^2, every step obeys
    |dx_t| <= RMS[dx]_{t-1} / sqrt(1 - rho) = sqrt((E[dx^2]_{t-1} + eps) / (1 - rho)),
    and it points against the gradient; the accumulators stay non-negative."""
    state = rules.AdadeltaState(
        data.draw(st.integers(0, 100)),
        np.abs(data.draw(float_arrays(dtype, shape, 1e4))),
        np.abs(data.draw(float_arrays(dtype, shape, 1e2))),
    )
    g = data.draw(float_arrays(dtype, shape))
    zero = np.zeros(shape, dtype)
    dx, new = rules.adadelta(
        zero, g, state, lr=1.0, rho=rho, eps=eps, weight_decay=0.0,
        decoupled_weight_decay=False, maximize=False,
    )  # fmt: skip
    dx = np.asarray(dx)  # from x = 0 with lr = 1, the new x is the step itself
    assert dx.dtype == dtype
    assert state.E_dx2 is not None and new.E_g2 is not None and new.E_dx2 is not None
    bound = np.sqrt((state.E_dx2.astype(np.float64) + eps) / (1 - rho))
    assert np.all(np.abs(dx) <= bound * (1 + 8 * np.finfo(dtype).eps))
    assert np.all(dx * g <= 0)
    assert np.all(new.E_g2 >= 0) and np.all(new.E_dx2 >= 0)
    assert np.isfinite(new.E_dx2).all() and new.step == state.step + 1


@SETTINGS
@given(problem=problems(), rho=rhos, eps=epsilons)
def test_maximize_is_descent_on_the_negated_gradient(
    problem: tuple[np.ndarray, list[np.ndarray]], rho: float, eps: float
) -> None:
    x0, grads = problem
    up, down = x0.copy(), x0.copy()
    climb, descend = Adadelta(up, rho=rho, eps=eps, maximize=True), Adadelta(down, rho=rho, eps=eps)
    for g in grads:
        climb.step(g.copy())
        descend.step(np.asarray(-g))
    assert_identical(up, down)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_empty_and_zero_d_parameters_step(dtype: np.dtype[Any]) -> None:
    """The edge shapes the strategies above cover, written out once."""
    empty, scalar = np.zeros((0, 3), dtype), np.array(1.0, dtype)
    opt = Adadelta([empty, scalar])
    opt.step([np.zeros((0, 3), dtype), np.array(2.0, dtype)])
    assert empty.shape == (0, 3) and scalar.shape == () and scalar.dtype == dtype
    assert scalar < 1.0
    assert all(isinstance(v, np.ndarray) for s in opt.state for k, v in s.items() if k != "step")
