"""The NumPy optimizers attacked as a careless or hostile user would (issue 12, classes 1, 3, 6
and 7): structures changed behind the optimizer's back, arrays resized, reshaped, aliased or made
read-only, corrupt state dicts, NumPy subclasses, extreme numbers, two threads at once.

What must hold (README, "Guarantees / Optimizers"): a refused call raises a documented error
naming the problem and changes nothing, byte for byte; the kernels only ever touch the checked
arrays; the fused kernels agree with the rules on every finite input.
"""

from __future__ import annotations

import copy
import os
import re
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adadelta import SGD, Adadelta, Adam, Optimizer
from adadelta.optimizers import NonFiniteGradientError
from optimizer_matrix import CONFIGS, OptimizerConfig, assert_identical

# the exception types that the optimizers document for refused input (README, "Errors")
DOCUMENTED = (TypeError, ValueError, KeyError, RuntimeError)
pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
FAST = settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


def snapshot(opt: Optimizer, arrays: list[np.ndarray]) -> tuple[Any, ...]:
    """Everything a refused call must leave as it was: the bytes of ``arrays`` (the
    parameters), and the optimizer's groups and state records, arrays by value."""
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    state = [
        {
            k: (v.dtype, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v
            for k, v in s.items()
        }
        for s in opt.state
    ]
    return [(a.dtype, a.shape, a.tobytes()) for a in arrays], copy.deepcopy(groups), state


def stepped(config: OptimizerConfig, params: Any, grads: Any, fused: bool = True) -> Optimizer:
    opt = config.make(params)
    opt.fused = fused  # type: ignore[attr-defined]
    opt.step(grads)
    return opt


ADADELTA = CONFIGS[0]
PATHS = pytest.mark.parametrize("fused", [True, False], ids=["kernel", "rule"])


# --- class 1: the kernels only touch the current, checked arrays ---


@PATHS
def test_a_replaced_parameter_is_refused(fused: bool) -> None:
    # was: the gradient was checked against the new array, the kernel updated the old one at
    # its old size, reading far past the end of the 10-element gradient
    params = {"W": np.zeros(1000), "b": np.zeros(3)}
    old = params["W"]
    opt = stepped(ADADELTA, params, {"W": np.ones(1000), "b": np.ones(3)}, fused)
    params["W"] = np.zeros(10)
    before = snapshot(opt, [old, params["W"], params["b"]])
    with pytest.raises(ValueError, match=r"params\['W'\]: replaced after the optimizer was built"):
        opt.step({"W": np.ones(10), "b": np.ones(3)})
    assert snapshot(opt, [old, params["W"], params["b"]]) == before


@PATHS
def test_an_appended_or_removed_parameter_is_refused(fused: bool) -> None:
    # was: an appended array was silently never updated; a removed one gave an IndexError
    params = [np.zeros(4), np.zeros(5)]
    opt = stepped(ADADELTA, params, [np.ones(4), np.ones(5)], fused)
    params.append(np.zeros(6))
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match=r"params\[2\]: added after the optimizer was built"):
        opt.step([np.ones(4), np.ones(5), np.ones(6)])
    with pytest.raises(ValueError, match=r"params\[2\]: added"):  # the old gradients too
        opt.step([np.ones(4), np.ones(5)])
    assert snapshot(opt, params) == before
    del params[1:]
    with pytest.raises(ValueError, match=r"params\[1\]: removed after the optimizer was built"):
        opt.step([np.ones(4)])
    assert snapshot(opt, params) == (before[0][:1], *before[1:])


def test_a_replaced_group_structure_is_refused() -> None:
    a, b = np.zeros(3), np.zeros(3)
    opt = stepped(ADADELTA, [a], [np.ones(3)])
    opt.param_groups[0]["params"] = [b]
    with pytest.raises(ValueError, match=r"params\[0\]: replaced"):
        opt.step([np.ones(3)])
    opt.param_groups.append({"params": [np.zeros(1)], **opt.defaults})
    with pytest.raises(ValueError, match="param_groups: holds 2 groups, this optimizer has 1"):
        opt.step([np.ones(3)])


def test_parameters_and_their_bases_cannot_be_resized_under_an_optimizer() -> None:
    # was: x.resize(..., refcheck=False) succeeded and the next step wrote the freed buffer
    x = np.zeros(1000)
    base = np.zeros(1000)
    view = base[:500]
    opt = stepped(ADADELTA, [x, view], [np.ones(1000), np.ones(500)])
    for array in (x, base):
        with pytest.raises(ValueError, match="cannot resize"):
            array.resize(10, refcheck=False)
        with pytest.raises(ValueError, match="cannot resize"):
            array.resize(4000, refcheck=False)
    for state in opt.state:  # the state arrays the kernel writes too
        with pytest.raises(ValueError, match="cannot resize"):
            state["E_g2"].resize(10_000, refcheck=False)
    opt.step([np.ones(1000), np.ones(500)])


@PATHS
def test_replaced_state_arrays_are_checked(fused: bool) -> None:
    # was: a state array of another size went into the kernel's table (writing past its end)
    params = [np.zeros(64), np.zeros(64)]
    grads = [np.ones(64), np.ones(64)]
    opt = stepped(ADADELTA, params, grads, fused)
    bad: list[tuple[Any, type[Exception], str]] = [
        (np.zeros(2), ValueError, r"'E_g2' must be an array of shape \(64,\)"),
        (np.zeros(64, np.float32), ValueError, "and dtype float64"),
        (np.zeros((8, 8)), ValueError, r"shape \(64,\)"),
        (np.matrix(np.zeros(64)), ValueError, "numpy.matrix"),
        (np.ma.zeros(64), ValueError, "MaskedArray"),
        ([0.0] * 64, ValueError, "got list"),
        (params[1], ValueError, r"params\[1\] is state 'E_g2' of params\[0\]"),
        (
            opt.state[1]["E_dx2"],
            ValueError,
            r"state 'E_dx2' of params\[1\] is state 'E_g2' of params\[0\]",
        ),
        (np.zeros(128)[::2], ValueError, "params"),  # not C-contiguous: fine for the rule
    ]
    for value, error, message in bad[:-1]:
        record = opt.state[0]
        saved = record["E_g2"]
        record["E_g2"] = value
        before = snapshot(opt, params)
        with pytest.raises(error, match=message):
            opt.step(grads)
        assert snapshot(opt, params) == before
        record["E_g2"] = saved
    frozen = opt.state[0]["E_dx2"]
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"state of params\[0\]: 'E_dx2' is read-only"):
        opt.step(grads)
    frozen.flags.writeable = True
    opt.state[0]["E_g2"] = bad[-1][0]  # a strided copy of the right shape: taken (the rule)
    opt.step(grads)


@PATHS
def test_corrupt_state_records_are_refused(fused: bool) -> None:
    # was: the kernel wrote, then `state["step"] += 1` raised a bare TypeError
    params = [np.zeros(3), np.zeros(3, np.float32)]
    grads = [np.ones(3), np.ones(3, np.float32)]
    opt = stepped(ADADELTA, params, grads, fused)
    cases: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda s: s.__setitem__("step", "3"), "'step' must be an int"),
        (lambda s: s.__setitem__("step", -1), "'step' must be an int"),
        (lambda s: s.__setitem__("step", 2**64), "'step' must be an int"),
        (lambda s: s.__setitem__("step", 2.0), "'step' must be an int"),
        (lambda s: s.pop("step"), "'step' must be an int"),
        (lambda s: s.__setitem__("momentum_buffer", np.zeros(3)), "unknown key 'momentum_buffer'"),
    ]
    for mutate, message in cases:
        record = opt.state[1]  # the second batch (float32): the first must not be written
        saved = dict(record)
        mutate(record)
        before = snapshot(opt, params)
        with pytest.raises(ValueError, match=rf"state of params\[1\]: {message}"):
            opt.step(grads)
        assert snapshot(opt, params) == before
        record.clear()
        record.update(saved)
    opt.state[1] = "nothing"  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"state of params\[1\]: expected a dict"):
        opt.step(grads)


def test_a_parameter_reshaped_or_retyped_in_place_is_refused() -> None:
    # was: the kernel went on treating the memory as it was (int64 bits as float64 numbers)
    x, y = np.zeros(6), np.zeros(4)
    opt = stepped(ADADELTA, [x, y], [np.ones(6), np.ones(4)])
    x.shape = (2, 3)
    with pytest.raises(ValueError, match=r"state of params\[0\]: 'E_g2' must be an array of shape"):
        opt.step([np.ones((2, 3)), np.ones(4)])
    x.shape = (6,)
    y.dtype = np.int64
    before = snapshot(opt, [x, y])
    with pytest.raises(TypeError, match=r"params\[1\]: dtype int64 is not supported"):
        opt.step([np.ones(6), np.ones(4, np.int64)])
    assert snapshot(opt, [x, y]) == before
    y.dtype = np.float64
    opt.step([np.ones(6), np.ones(4)])


# --- class 3: a refused step changes nothing, on every path ---


@PATHS
@pytest.mark.parametrize("config", CONFIGS[::4], ids=[c.id for c in CONFIGS[::4]])
def test_a_parameter_made_read_only_after_construction_is_refused(
    config: OptimizerConfig, fused: bool
) -> None:
    # was: `a` updated, its step counted, then a NumPy error naming no parameter
    params = {"a": np.zeros(5), "b": np.zeros(5)}
    grads = {"a": np.ones(5), "b": np.ones(5)}
    opt = stepped(config, params, grads, fused)
    params["b"].flags.writeable = False
    before = snapshot(opt, list(params.values()))
    with pytest.raises(ValueError, match=r"params\['b'\]: the array is read-only"):
        opt.step(grads)
    assert snapshot(opt, list(params.values())) == before


@PATHS
def test_a_deleted_or_renamed_hyperparameter_is_refused_naming_it(fused: bool) -> None:
    # was: a bare KeyError (after the kernels had written), or the old value silently used
    params = [np.zeros(3)]
    opt = stepped(ADADELTA, params, [np.ones(3)], fused)
    group = opt.param_groups[0]
    before = snapshot(opt, params)
    del group["rho"]
    with pytest.raises(ValueError, match=r"param_groups\[0\]: missing key\(s\) \['rho'\]"):
        opt.step([np.ones(3)])
    group["rho"] = 0.95
    value = group.pop("maximize")
    group["maximise"] = value  # the same object, in the same place: only the key differs
    with pytest.raises(ValueError, match=r"missing key\(s\) \['maximize'\], unknown .*'maximise'"):
        opt.step([np.ones(3)])
    del group["params"]
    with pytest.raises(ValueError, match=r"missing key\(s\) \['maximize', 'params'\]"):
        opt.step([np.ones(3)])
    assert snapshot(opt, params)[0] == before[0]


def test_an_invalid_hyperparameter_in_a_group_is_not_half_applied() -> None:
    # the group keeps its values when one of them is refused
    opt = stepped(ADADELTA, [np.zeros(3)], [np.ones(3)])
    group = opt.param_groups[0]
    group["lr"] = np.float32(0.5)
    group["rho"] = 2.0
    with pytest.raises(ValueError, match=re.escape("Invalid rho value: 2.0")):
        opt.step([np.ones(3)])
    assert type(group["lr"]) is np.float32


# --- class 6: the kernels agree with the rules on every finite input ---


def ordered(a: np.ndarray) -> np.ndarray:
    """Floats as integers in the same order (-0 and +0 one apart, inf next to the largest)."""
    bits = a.view(np.int32 if a.dtype == np.float32 else np.int64).astype(np.int64)
    low = np.iinfo(np.int32 if a.dtype == np.float32 else np.int64).min
    return np.where(bits < 0, low - bits, bits)


def assert_within_ulps(
    actual: np.ndarray, expected: np.ndarray, scale: np.ndarray, ulps: int = 4
) -> None:
    """At most ``ulps`` units in the last place apart (counted on the float grid, so that a
    subnormal and the largest number and infinity each have neighbours), or within ``ulps``
    ulps of ``scale`` (the magnitude of the operands of a sum that may cancel: x + lr * dx)."""
    assert actual.dtype == expected.dtype
    nan = np.isnan(expected)
    assert (np.isnan(actual) == nan).all(), (actual, expected)
    a, e = actual[~nan], expected[~nan]
    with np.errstate(over="ignore", invalid="ignore"):
        grid = np.abs(ordered(a) - ordered(e)) <= ulps
        near = np.abs(a.astype(np.float64) - e) <= ulps * np.spacing(scale[~nan].astype(e.dtype))
    assert (grid | near).all(), (a[~(grid | near)], e[~(grid | near)])


def one_step(
    dtype: Any, x: Any, g: Any, E_g2: Any, E_dx2: Any, fused: bool, **hyper: Any
) -> tuple[np.ndarray, ...]:
    x = np.array(x, dtype)
    opt = Adadelta(x, **hyper)
    opt.fused = fused
    state = {"step": 1, "E_g2": np.array(E_g2, dtype), "E_dx2": np.array(E_dx2, dtype)}
    saved = opt.state_dict()
    opt.load_state_dict({"state": {0: state}, "param_groups": saved["param_groups"]})
    with np.errstate(all="ignore"):
        opt.step(np.array(g, dtype))
    return x, opt.state[0]["E_g2"], opt.state[0]["E_dx2"]


def assert_kernel_matches_rule(
    dtype: Any, x: Any, g: Any, E_g2: Any, E_dx2: Any, **hyper: Any
) -> None:
    fused = one_step(dtype, x, g, E_g2, E_dx2, True, **hyper)
    rule = one_step(dtype, x, g, E_g2, E_dx2, False, **hyper)
    np.testing.assert_array_equal(fused[1], rule[1])  # E[g^2]: the same operations
    # E[dx^2] accumulates the square of the step, which doubles the step's difference: the
    # step within 4 ulps makes its square within 8, and the rounding of the sum one more
    assert_within_ulps(fused[2], rule[2], np.abs(rule[2]), ulps=9)
    lr = hyper.get("lr", 1.0)
    with np.errstate(all="ignore"):
        scale = np.maximum(np.abs(np.array(x, dtype)), np.abs(rule[0]))
        scale = np.maximum(scale, np.abs(lr * np.sqrt(rule[2] / (1 - hyper.get("rho", 0.95)))))
    assert_within_ulps(fused[0], rule[0], scale)


@pytest.mark.parametrize(
    ("dtype", "E_g2", "E_dx2", "g", "eps"),
    [
        (np.float32, 0.0, 1e33, 1e-3, 1e-6),  # the case: the quotient overflows
        (np.float32, 0.0, 3e38, 1.0, 1e-6),
        (np.float32, 3e38, 0.0, 1e19, 1e-6),  # the quotient is subnormal
        (np.float32, 1e30, 0.0, 1.0, 1e-30),
        (np.float32, 0.0, 0.0, 1.0, 1e-45),  # a subnormal eps
        (np.float64, 0.0, 1e300, 1e-3, 1e-6),
        (np.float64, 1e300, 0.0, 1e150, 1e-300),
        (np.float64, 0.0, 0.0, 1.0, 5e-324),
    ],
)
def test_adadelta_kernel_matches_the_rule_where_the_quotient_leaves_the_normal_range(
    dtype: Any, E_g2: float, E_dx2: float, g: float, eps: float
) -> None:
    # was: the kernel's one square root of the quotient gave -inf where the rule's two roots
    # give -0.316 (float32, E_dx2 = 1e33, E_g2 = 0)
    n = 3000  # more than a block of the kernel, with the extreme element in the middle
    values = [np.full(n, v, dtype) for v in (0.5, 0.1, 0.01, 0.02)]
    for array, value in zip(values, (0.5, g, E_g2, E_dx2), strict=True):
        array[n // 2] = value
    assert_kernel_matches_rule(dtype, *values, eps=eps, rho=0.9)
    x = one_step(dtype, *values, True, eps=eps, rho=0.9)[0]
    assert np.isfinite(x[n // 2]) or not np.isfinite(
        one_step(dtype, *values, False, eps=eps, rho=0.9)[0][n // 2]
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adadelta_kernel_steps_again_from_the_old_values_when_the_gradient_is_the_parameter(
    dtype: Any,
) -> None:
    # the kernel writes a block, then steps it again with the rule's two roots if a quotient
    # left the normal range: from the old parameter, also where the gradient is the parameter
    n = 3000
    results = []
    for alias in (True, False):
        x = np.full(n, 0.5, dtype)
        x[n // 2] = 1e-3
        state = {"step": 1, "E_g2": np.full(n, 0.01, dtype), "E_dx2": np.full(n, 0.02, dtype)}
        state["E_g2"][n // 2] = 0.0
        state["E_dx2"][n // 2] = np.finfo(dtype).max / 4  # the quotient overflows
        opt = Adadelta(x, eps=1e-6, rho=0.9)
        saved = opt.state_dict()
        opt.load_state_dict({"state": {0: state}, "param_groups": saved["param_groups"]})
        opt.step(x if alias else x.copy())
        results.append((x, opt.state[0]["E_g2"], opt.state[0]["E_dx2"]))
    for aliased, copied in zip(*results, strict=True):
        np.testing.assert_array_equal(aliased, copied)
    assert np.isfinite(results[0][0]).all()


def test_the_pytorch_drop_in_gets_the_same_exactness() -> None:
    # was: adadelta.torch.Adadelta (the same kernel on CPU) gave -inf where torch.optim gives
    # a finite step
    torch = pytest.importorskip("torch", reason="the PyTorch drop-in needs the torch extra")
    from adadelta.torch import Adadelta as DropIn

    steps = []
    for cls in (DropIn, torch.optim.Adadelta):
        p = torch.zeros(5000)
        opt = cls([p], lr=1.0)
        p.grad = torch.full((5000,), 1e-3)
        opt.step()
        state = opt.state[p]
        state["square_avg"].zero_()
        state["acc_delta"].fill_(1e33)
        p.data.zero_()
        opt.step()
        steps.append(p.numpy().copy())
    assert np.isfinite(steps[0]).all()
    np.testing.assert_allclose(steps[0], steps[1], rtol=8 * np.finfo(np.float32).eps)


def finite_floats(dtype: Any, non_negative: bool = False) -> st.SearchStrategy[float]:
    """Finite floats of ``dtype`` from every part of the range: subnormal, tiny, ordinary,
    huge, and the largest."""
    info = np.finfo(dtype)
    width = 32 if dtype == np.float32 else 64
    values = st.floats(
        min_value=0.0 if non_negative else None,
        allow_nan=False,
        allow_infinity=False,
        allow_subnormal=True,
        width=width,
    )
    edges = st.sampled_from(
        [0.0, float(info.smallest_subnormal), float(info.tiny), float(info.max)]
    )
    ordinary = st.floats(float(dtype(1e-3)), float(dtype(1e3)), width=width)
    return st.one_of(values, edges, ordinary)


@FAST
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_adadelta_kernel_matches_the_rule_on_any_finite_input(data: Any, dtype: Any) -> None:
    def arrays(non_negative: bool = False) -> list[float]:
        element = finite_floats(dtype, non_negative)
        return data.draw(st.lists(element, min_size=1, max_size=4))

    n = 4
    x, g, E_g2, E_dx2 = ((arrays(k > 1) * n)[:n] for k in range(4))
    hyper = {
        "eps": data.draw(st.sampled_from([1e-6, 1e-8, 1e-30, 1e-45, 1e-3, 1.0, 1e20])),
        "rho": data.draw(st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.999])),
        "lr": data.draw(st.sampled_from([1.0, 0.5, 1e-3])),
        "weight_decay": data.draw(st.sampled_from([0.0, 0.1])),
        "maximize": data.draw(st.booleans()),
    }
    assert_kernel_matches_rule(dtype, x, g, E_g2, E_dx2, **hyper)


# --- class 7: types, state, aliasing, threads ---


@PATHS
def test_numpy_scalar_hyperparameters_keep_the_state_in_the_parameters_dtype(fused: bool) -> None:
    # was: np.longdouble hyperparameters promoted the rule's state to float128
    x = np.zeros(3, np.float32)
    opt = Adadelta(x, lr=np.longdouble(0.5), rho=np.longdouble(0.9), eps=np.float64(1e-6))
    opt.fused = fused
    opt.step(np.ones(3, np.float32))
    assert {type(opt.param_groups[0][k]) for k in ("lr", "rho", "eps")} == {float}
    assert x.dtype == np.float32
    assert all(opt.state[0][k].dtype == np.float32 for k in ("E_g2", "E_dx2"))
    opt.param_groups[0]["lr"] = np.longdouble(0.25)
    opt.step(np.ones(3, np.float32))
    assert all(opt.state[0][k].dtype == np.float32 for k in ("E_g2", "E_dx2"))


@pytest.mark.parametrize(
    "value",
    [10**400, -(10**400), np.longdouble("1e4000")],
    ids=["10**400", "-10**400", "longdouble"],
)
def test_hyperparameters_beyond_the_floats_are_invalid_values(value: Any) -> None:
    # was: OverflowError: int too large to convert to float
    with np.errstate(over="ignore"):
        with pytest.raises(ValueError, match=r"Invalid lr value: .* \(must be finite\)"):
            Adadelta(np.zeros(1), lr=value)
        opt = Adadelta([np.zeros(1)])
        opt.param_groups[0]["lr"] = value
        with pytest.raises(ValueError, match=r"Invalid lr value"):
            opt.step([np.ones(1)])
        with pytest.raises(ValueError, match=r"Invalid beta parameter at index 0 value"):
            Adam(np.zeros(1), betas=(value, 0.9))


SUBCLASSES = {
    "matrix": lambda a: np.matrix(a),
    "masked": lambda a: np.ma.masked_array(a, mask=np.eye(*a.shape, dtype=bool)),
    "memmap-like subclass": lambda a: a.view(type("Sub", (np.ndarray,), {})),
}


@PATHS
@pytest.mark.parametrize("kind", list(SUBCLASSES))
def test_ndarray_subclasses_are_refused_on_both_paths(kind: str, fused: bool) -> None:
    # was: a matrix or masked gradient was taken by the kernel (which ignores the mask and
    # multiplies elementwise) and computed differently by the rule (g * g a matrix product)
    make = SUBCLASSES[kind]
    x = np.ones((2, 2))
    opt = stepped(ADADELTA, x, np.ones((2, 2)), fused)
    before = snapshot(opt, [x])
    with pytest.raises(TypeError, match=r"subclasses of numpy\.ndarray are refused"):
        opt.step(make(np.ones((2, 2))))
    assert snapshot(opt, [x]) == before
    with pytest.raises(TypeError, match=r"params: expected a NumPy float array, got .*refused"):
        Adadelta(make(np.ones((2, 2))))
    saved = opt.state_dict()
    saved["state"][0]["E_g2"] = make(saved["state"][0]["E_g2"])
    with pytest.raises(ValueError, match="'E_g2' must be an array"):
        opt.load_state_dict(saved)


@pytest.mark.parametrize("config", CONFIGS, ids=[c.id for c in CONFIGS])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -1.0])
def test_load_state_dict_refuses_non_finite_or_negative_accumulators(
    config: OptimizerConfig, bad: float
) -> None:
    # was: accepted, and the next step turned the parameters into NaN
    x = np.ones(4)
    opt = stepped(config, x, np.ones(4))
    saved = opt.state_dict()
    fields = [k for k in saved["state"][0] if k != "step"]
    for field in fields:
        corrupt = copy.deepcopy(saved)
        corrupt["state"][0][field][1] = bad
        if bad == -1.0 and field not in type(opt).non_negative_state:
            opt.load_state_dict(corrupt)  # a momentum or a mean gradient may be negative
            opt.load_state_dict(saved)
            continue
        with pytest.raises(ValueError, match=rf"state of parameter 0: '{field}' holds"):
            opt.load_state_dict(corrupt)
        assert_identical(opt.state_dict(), saved)


@pytest.mark.parametrize("step", [2**63, 10**30, True, 1.5, np.float64(3), np.array([3])])
def test_load_state_dict_refuses_step_counts_that_are_not_counts(step: Any) -> None:
    opt = stepped(CONFIGS[-4], np.ones(2), np.ones(2))  # Adam: its bias correction reads them
    saved = opt.state_dict()
    corrupt = copy.deepcopy(saved)
    corrupt["state"][0]["step"] = step
    with pytest.raises(ValueError, match=r"'step' must be an integer in \[0, 2\*\*63\)"):
        opt.load_state_dict(corrupt)
    assert_identical(opt.state_dict(), saved)


@pytest.mark.parametrize(
    ("make", "accepted"),
    [
        (lambda a: [a, a[:]], False),
        (lambda a: [a[:6], a[4:]], False),
        (lambda a: {"W": a.reshape(2, 5), "b": a[9:]}, False),
        (lambda a: [a[:5], a[5:]], True),
        (lambda a: [a[::2], a[1::2]], True),  # interleaved: no element shared
    ],
    ids=["a-and-a[:]", "overlapping-slices", "reshape-and-slice", "halves", "interleaved"],
)
def test_views_of_one_buffer_that_share_memory_are_refused(make: Any, accepted: bool) -> None:
    # was: [a, a[:]] accepted as two parameters, each step updating the memory twice
    params = make(np.zeros(10))
    if accepted:
        Adadelta(params)
        return
    with pytest.raises(ValueError, match="shares memory with params"):
        Adadelta(params)
    opt = Adadelta([{"params": [np.zeros(10)]}])
    base = np.zeros(3)
    opt.add_param_group({"params": [base]})
    # each named with its group (both were "params[0]" before)
    shared = (
        r"param_groups\[2\]\['params'\]\[0\] shares memory with param_groups\[1\]\['params'\]\[0\]"
    )
    with pytest.raises(ValueError, match=shared):
        opt.add_param_group({"params": [base[1:]]})
    assert len(opt.param_groups) == 2 and len(opt.state) == 2


def test_a_step_from_a_second_thread_is_refused_while_one_runs() -> None:
    # was: two threads stepped one optimizer at once (updates lost silently)
    x = np.zeros(3)
    opt = SGD(x, lr=1.0)
    inside, release = threading.Event(), threading.Event()
    apply = opt._apply
    calls = []

    def slow_apply(grads: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            inside.set()
            release.wait(10)
        apply(grads)

    opt._apply = slow_apply  # type: ignore[method-assign]
    first = threading.Thread(target=opt.step, args=(np.ones(3),))
    first.start()
    try:
        assert inside.wait(10)
        for call in (
            lambda: opt.step(np.ones(3)),
            opt.state_dict,
            lambda: opt.load_state_dict({"state": {}, "param_groups": []}),
        ):
            with pytest.raises(RuntimeError, match="another call is running on this optimizer"):
                call()
    finally:
        release.set()
        first.join(10)
    np.testing.assert_array_equal(x, -1.0)  # one step taken, by the first thread
    assert opt.state[0]["step"] == 1
    opt.step(np.ones(3))  # and free again
    assert opt.state[0]["step"] == 2


def test_threads_stepping_one_optimizer_lose_no_update() -> None:
    x = np.zeros(1000)
    opt = SGD(x, lr=1.0)
    taken = [0, 0]

    def run(k: int) -> None:
        for _ in range(200):
            try:
                opt.step(np.ones(1000))
                taken[k] += 1
            except RuntimeError:
                pass

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert opt.state[0]["step"] == sum(taken)
    np.testing.assert_array_equal(x, -float(sum(taken)))


# --- fuzzing: refused steps and loads change nothing ---

OPTIMIZERS = [
    c
    for c in CONFIGS
    if c.id
    in {
        "Adadelta-paper",
        "SGD-momentum",
        "Adagrad-plain",
        "RMSprop-centered-momentum",
        "Adam-amsgrad",
    }
]


def _params(draw: Any) -> list[np.ndarray]:
    shapes = draw(st.lists(st.sampled_from([(), (0,), (3,), (2, 3), (5,)]), min_size=1, max_size=4))
    dtypes = draw(
        st.lists(
            st.sampled_from([np.float32, np.float64]), min_size=len(shapes), max_size=len(shapes)
        )
    )
    params = []
    for shape, dtype in zip(shapes, dtypes, strict=True):
        a = (np.arange(1, 1 + int(np.prod(shape))) / 7).astype(dtype).reshape(shape)
        if len(shape) == 2 and draw(st.booleans()):
            a = np.ascontiguousarray(a.T).T  # a transposed view: the rule's path
        params.append(a)
    return params


def _mutations(
    opt: Optimizer, params: list[np.ndarray], grads: list[np.ndarray]
) -> dict[str, Callable[[], Any]]:
    """Ways to make the next ``step(grads)`` invalid; each returns the gradients to step with."""
    i = len(params) - 1
    p = params[i]

    def replace() -> Any:
        params[i] = np.zeros(p.shape, p.dtype)
        return grads

    def append() -> Any:
        params.append(np.zeros(2))
        return [*grads, np.ones(2)]

    def state(key: str, value: Any) -> Callable[[], Any]:
        def set_() -> Any:
            record = opt.state[i]
            field = next((k for k in record if k != "step"), None)
            record[field if key == "field" and field else key] = value
            return grads

        return set_

    def read_only() -> Any:
        p.flags.writeable = False
        return grads

    def group(key: str, value: Any) -> Callable[[], Any]:
        def set_() -> Any:
            if value is None:
                del opt.param_groups[0][key]
            else:
                opt.param_groups[0][key] = value
            return grads

        return set_

    def grad(value: Any) -> Callable[[], Any]:
        return lambda: [*grads[:i], value, *grads[i + 1 :]]

    wrong = np.zeros(p.shape, np.float64 if p.dtype == np.float32 else np.float32)
    nan = np.full(p.shape, np.nan, p.dtype) if p.size else np.ones(1, p.dtype)
    return {
        "replace": replace,
        "append": append,
        "read-only": read_only,
        "state-wrong-size": state("field", np.zeros(p.size + 1, p.dtype)),
        "state-wrong-dtype": state("field", np.zeros(p.shape, wrong.dtype)),
        "state-alias": state("field", params[0] if i and p.size else np.zeros(1)),
        "state-step": state("step", -3),
        "state-unknown": state("bogus", np.zeros(p.shape, p.dtype)),
        "delete-lr": group("lr", None),
        "lr-nan": group("lr", float("nan")),
        "lr-huge": group("lr", 10**400),
        "grad-dtype": grad(wrong),
        "grad-shape": grad(np.zeros((*p.shape, 2), p.dtype)),
        "grad-matrix": grad(np.matrix(np.zeros((1, max(p.size, 1)), p.dtype))),
        "grad-list": grad(np.zeros(p.shape, p.dtype).tolist()),
        "grad-nan": grad(nan),
        "grads-missing": lambda: grads[:-1],
    }


@FAST
@given(data=st.data())
def test_fuzz_refused_steps_change_nothing(data: Any) -> None:
    config = data.draw(st.sampled_from(OPTIMIZERS))
    params = _params(data.draw)
    fused = data.draw(st.booleans())
    opt = config.make(params)
    opt.fused = fused  # type: ignore[attr-defined]
    grads = [np.full(p.shape, 0.5, p.dtype) for p in params]
    for _ in range(data.draw(st.integers(0, 2))):
        opt.step(grads)
    originals = list(params)
    mutations = _mutations(opt, params, grads)
    name = data.draw(st.sampled_from(sorted(mutations)))
    if name == "grad-nan" and params[-1].size == 0:
        return
    step_grads = mutations[name]()
    before = snapshot(opt, originals)
    with np.errstate(over="ignore"), pytest.raises(DOCUMENTED) as refused:
        opt.step(step_grads)
    assert snapshot(opt, originals) == before, (name, refused.value)
    assert str(refused.value)  # every refusal says why
    if name == "grad-nan":
        assert isinstance(refused.value, NonFiniteGradientError)


@FAST
@given(data=st.data())
def test_fuzz_refused_state_dicts_change_nothing(data: Any) -> None:
    config = data.draw(st.sampled_from(OPTIMIZERS))
    params = _params(data.draw)
    opt = config.make(params)
    grads = [np.full(p.shape, 0.5, p.dtype) for p in params]
    opt.step(grads)
    saved = opt.state_dict()
    corrupt = copy.deepcopy(saved)
    i = data.draw(st.integers(0, len(params) - 1))
    record = corrupt["state"][i]
    field = next(k for k in record if k != "step") if len(record) > 1 else None
    p = params[i]
    mutations: dict[str, Callable[[], None]] = {
        "no-state": lambda: corrupt.pop("state"),
        "extra-key": lambda: corrupt.__setitem__("extra", 1),
        "state-list": lambda: corrupt.__setitem__("state", [record]),
        "missing-record": lambda: corrupt["state"].pop(i),
        "record-not-dict": lambda: corrupt["state"].__setitem__(i, [1]),
        "step-negative": lambda: record.__setitem__("step", -1),
        "step-float": lambda: record.__setitem__("step", 1.0),
        "step-huge": lambda: record.__setitem__("step", 2**64),
        "step-missing": lambda: record.pop("step"),
        "unknown-field": lambda: record.__setitem__("bogus", np.zeros(p.shape, p.dtype)),
        "groups-missing": lambda: corrupt["param_groups"].clear(),
        "group-params": lambda: corrupt["param_groups"][0].__setitem__("params", [0.5]),
        "group-params-bool": lambda: corrupt["param_groups"][0].__setitem__(
            "params", [True] * len(params)
        ),
        "group-lr": lambda: corrupt["param_groups"][0].__setitem__("lr", 10**400),
        "group-unknown": lambda: corrupt["param_groups"][0].__setitem__("bogus", 1.0),
        "group-missing": lambda: corrupt["param_groups"][0].pop("lr"),
    }
    if field is not None:
        value = record[field]
        mutations |= {
            "field-shape": lambda: record.__setitem__(field, np.zeros(value.size + 1, value.dtype)),
            "field-dtype": lambda: record.__setitem__(field, value.astype(np.float16)),
            "field-list": lambda: record.__setitem__(field, value.tolist()),
            "field-matrix": lambda: record.__setitem__(field, np.matrix(value.reshape(1, -1))),
            "field-nan": lambda: record.__setitem__(
                field, np.full(value.shape, np.nan, value.dtype)
            ),
            "field-inf": lambda: record.__setitem__(
                field, np.full(value.shape, np.inf, value.dtype)
            ),
        }
        if field in type(opt).non_negative_state:
            mutations["field-negative"] = lambda: record.__setitem__(field, -np.ones_like(value))
    name = data.draw(st.sampled_from(sorted(mutations)))
    if name in {"field-nan", "field-inf", "field-negative"} and value.size == 0:
        return
    mutations[name]()
    before = snapshot(opt, params)
    with pytest.raises(DOCUMENTED):
        opt.load_state_dict(corrupt)
    assert snapshot(opt, params) == before, name
    assert_identical(opt.state_dict(), saved)
    opt.step(grads)  # and the optimizer still works


# --- found by the review of issue 12: copies, aliasing gradients ---


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("config", CONFIGS[::3], ids=[c.id for c in CONFIGS[::3]])
@PATHS
def test_a_copied_or_pickled_optimizer_is_independent_and_checked(
    config: OptimizerConfig, how: str, fused: bool
) -> None:
    # was: TypeError: cannot pickle '_thread.lock' object (the lock and weak references)
    import pickle

    params = {"W": np.linspace(-1, 1, 12).reshape(3, 4), "b": np.ones(4, np.float32)}
    grads = {"W": np.full((3, 4), 0.25), "b": np.full(4, -0.5, np.float32)}
    opt = stepped(config, params, grads, fused)
    twin = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    assert twin.fused is fused  # type: ignore[attr-defined]
    twin_params = twin.param_groups[0]["params"]
    before = snapshot(opt, list(params.values()))
    assert snapshot(twin, list(twin_params.values())) == before
    twin.step(grads)  # the copy's step changes nothing of the original
    assert snapshot(opt, list(params.values())) == before
    opt.step(grads)  # and both step to the same bits
    assert snapshot(twin, list(twin_params.values())) == snapshot(opt, list(params.values()))
    for array in (twin_params["W"], twin.state[0][twin.state_fields[0]]):
        if isinstance(array, np.ndarray) and fused:  # guarded like the original's
            with pytest.raises(ValueError, match="cannot resize"):
                array.resize(1000, refcheck=False)
    with pytest.raises(ValueError, match="cannot resize"):
        twin_params["b"].resize(1000, refcheck=False)
    twin_params["W"] = np.zeros((3, 4))  # and checked like the original
    with pytest.raises(ValueError, match=r"params\['W'\]: replaced"):
        twin.step(grads)


def test_an_optimizer_is_not_copied_while_a_step_runs() -> None:
    opt = Adadelta([np.zeros(3)])
    with opt._busy, pytest.raises(RuntimeError, match="copying or pickling"):
        copy.deepcopy(opt)
    copy.deepcopy(opt)


def _aliasing_cases() -> list[tuple[str, Callable[[list[np.ndarray], Optimizer], list[Any]]]]:
    """(name, grads from the parameters and the stepped optimizer): each gradient list holds
    one gradient that shares memory with a parameter or a state array (a parameter as its own
    gradient is taken: tests/test_optimizers.py's test_any_gradient_layout_gives_the_same_step)."""

    def state_array(opt: Optimizer, i: int) -> np.ndarray:
        return next(v for v in opt.state[i].values() if isinstance(v, np.ndarray))

    return [
        ("another parameter", lambda ps, opt: [np.ones(4), ps[0], *ps[2:]]),
        ("a state array", lambda ps, opt: [state_array(opt, 0), *map(np.ones_like, ps[1:])]),
        ("another's state", lambda ps, opt: [np.ones(4), state_array(opt, 0), *ps[2:]]),
    ]


@pytest.mark.parametrize("many", [False, True], ids=["few", "many"])
@pytest.mark.parametrize("case", range(3), ids=[name for name, _ in _aliasing_cases()])
@pytest.mark.parametrize("config", CONFIGS[::5], ids=[c.id for c in CONFIGS[::5]])
@PATHS
def test_a_gradient_sharing_memory_with_a_parameter_or_state_is_refused(
    config: OptimizerConfig, case: int, many: bool, fused: bool
) -> None:
    # was: accepted; the kernel read gradient elements after writing them (e.g. Adadelta with
    # the gradient E[g^2]: -0.00479 on the kernel, -0.00480 on the rule)
    count = 20 if many else 2  # many: the kernel's batch searches the spans vectorized
    params = [np.linspace(0.5, 1, 4) for _ in range(count)]
    grads = [np.full(4, 0.5) for _ in range(count)]
    opt = stepped(config, params, grads, fused)
    opt.step(grads)  # a kept plan: the batch checks the addresses itself
    aliased = _aliasing_cases()[case][1](params, opt)
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match=r"gradient for params\[[01]\] shares memory with"):
        opt.step(aliased)
    assert snapshot(opt, params) == before
    opt.step(grads)  # and the optimizer works on


@PATHS
def test_a_gradient_sharing_memory_is_refused_across_groups_and_in_a_first_step(
    fused: bool,
) -> None:
    w, b = np.ones((3, 3)), np.ones(3, np.float32)
    opt = Adadelta([{"params": [w]}, {"params": [b], "lr": 0.5}])
    opt.fused = fused  # type: ignore[attr-defined]
    before = snapshot(opt, [w, b])
    shared = r"gradient for param_groups\[0\]\['params'\]\[0\] shares memory with param_groups"
    with pytest.raises(ValueError, match=shared):
        opt.step([[w[::-1]], [np.ones(3, np.float32)]])  # a reversed view: bounds, not address
    assert snapshot(opt, [w, b]) == before
    opt.step([[np.ones((3, 3))], [np.ones(3, np.float32)]])
    before = snapshot(opt, [w, b])
    state = opt.state[0]["E_g2"]
    with pytest.raises(
        ValueError, match=r"shares memory with state 'E_g2' of param_groups\[0\]\['params'\]\[0\]:"
    ):
        opt.step([[np.ones((3, 3))], [state.view(np.float32)[0, :3]]])  # bytes, another dtype
    assert snapshot(opt, [w, b]) == before


@PATHS
def test_gradients_that_share_memory_only_with_each_other_or_interleave_are_taken(
    fused: bool,
) -> None:
    buffer = np.linspace(1, 2, 16)
    x, y = buffer[::2], np.ones(8)  # x strided: the rule; y: the kernel
    g = buffer[1::2].copy()
    opt = Adadelta([x, y])
    opt.fused = fused  # type: ignore[attr-defined]
    twin, twin_y = np.linspace(1, 2, 16)[::2].copy(), np.ones(8)
    reference = Adadelta([twin, twin_y])
    reference.fused = fused  # type: ignore[attr-defined]
    opt.step([buffer[1::2], buffer[1::2]])  # interleaved with x: no byte in common; and reused
    reference.step([g, g])
    opt.step([x, y])  # each parameter its own gradient, element for element
    reference.step([twin.copy(), twin_y.copy()])
    assert x.tobytes() == twin.tobytes() and y.tobytes() == twin_y.tobytes()
