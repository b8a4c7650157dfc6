"""The generic matrix over every optimizer configuration (``optimizer_matrix.CONFIGS``), the
refused inputs (``optimizer_matrix.ERROR_INPUTS`` and bad parameters and gradients), and the
known numbers of ADADELTA (Zeiler, 2012, Algorithm 1)."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adadelta
from adadelta import SGD, Adadelta, Adagrad, Adam, NonFiniteGradientError, Optimizer, RMSprop
from optimizer_matrix import CONFIGS, ERROR_INPUTS, ErrorInput, OptimizerConfig, assert_identical

Tree = Any
config_ids = [c.id for c in CONFIGS]
params_config = pytest.mark.parametrize("config", CONFIGS, ids=config_ids)

# --- the test objectives ---

_rng = np.random.default_rng(20121222)
_N = 16
_A = _rng.standard_normal((_N, _N)) / math.sqrt(_N) + 2 * np.eye(_N)
_H = 5 * _A.T @ _A  # a well-conditioned Hessian, eigenvalues about 3.6 to 61
_X_STAR = _rng.standard_normal(_N)


def quadratic_params(dtype: type = np.float64) -> Tree:
    return {"w": np.zeros((3, 4), dtype), "b": [np.zeros(3, dtype), np.zeros((), dtype)]}


def _flat(tree: Tree) -> np.ndarray:
    return np.concatenate([tree["w"].ravel(), tree["b"][0], tree["b"][1].ravel()]).astype(float)


def quadratic_loss(tree: Tree) -> float:
    d = _flat(tree) - _X_STAR
    return float(0.5 * d @ _H @ d)


def quadratic_grad(tree: Tree) -> Tree:
    g = _H @ (_flat(tree) - _X_STAR)
    dtype = tree["w"].dtype
    return {
        "w": g[:12].reshape(3, 4).astype(dtype),
        "b": [g[12:15].astype(dtype), np.array(g[15], dtype)],
    }


def rosenbrock_params(dtype: type = np.float64) -> np.ndarray:
    return np.array([-1.2, 1.0], dtype)


def rosenbrock_loss(x: np.ndarray) -> float:
    a, b = float(x[0]), float(x[1])
    return (1 - a) ** 2 + 100 * (b - a * a) ** 2


def rosenbrock_grad(x: np.ndarray) -> np.ndarray:
    a, b = float(x[0]), float(x[1])
    return np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], x.dtype)


PROBLEMS: dict[str, tuple[Callable[..., Tree], Callable[[Tree], float], Callable[[Tree], Tree]]] = {
    "quadratic": (quadratic_params, quadratic_loss, quadratic_grad),
    "rosenbrock": (rosenbrock_params, rosenbrock_loss, rosenbrock_grad),
}


def _negate(tree: Tree) -> Tree:
    if isinstance(tree, dict):
        return {k: _negate(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_negate(v) for v in tree]
    return np.asarray(-tree)  # np.asarray: -a is a NumPy scalar when a is 0-d


def run(config: OptimizerConfig, problem: str, steps: int, **overrides: Any) -> tuple[float, float]:
    """The loss before and after ``steps`` steps. A maximize configuration gets the gradient of
    the negated loss, so that it too should lower the loss."""
    make_params, loss, grad = PROBLEMS[problem]
    params = make_params()
    opt = config.make(params, **overrides)
    before = loss(params)
    for _ in range(steps):
        g = grad(params)
        opt.step(_negate(g) if config.maximize else g)
    return before, loss(params)


def snapshot(opt: Optimizer, params: Tree) -> tuple[Tree, Tree]:
    return copy.deepcopy(opt.state_dict()), copy.deepcopy(params)


def assert_unchanged(opt: Optimizer, params: Tree, before: tuple[Tree, Tree]) -> None:
    state_dict, saved_params = before
    assert_identical(params, saved_params)
    assert_identical(opt.state_dict(), state_dict)


# --- the generic matrix ---


@params_config
@pytest.mark.parametrize("problem", PROBLEMS)
def test_lowers_the_loss(config: OptimizerConfig, problem: str) -> None:
    before, after = run(config, problem, config.steps)
    assert after < before
    if config.descent_overrides:
        before, after = run(config, problem, config.steps, **config.descent_overrides)
    assert after < 0.5 * before, f"{config.id} on {problem}: loss {before:.4g} -> {after:.4g}"


@pytest.mark.parametrize("config", [c for c in CONFIGS if c.maximize], ids=lambda c: c.id)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_maximize_climbs_the_gradient_it_is_given(config: OptimizerConfig, problem: str) -> None:
    make_params, loss, grad = PROBLEMS[problem]
    params = make_params()
    opt = config.make(params, **config.descent_overrides)
    before = loss(params)
    for _ in range(5):  # ascending Rosenbrock's function soon overflows
        opt.step(grad(params))
    assert loss(params) > before


@params_config
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keeps_dtypes_and_updates_in_place(config: OptimizerConfig, dtype: type) -> None:
    params = quadratic_params(dtype)
    leaves = [params["w"], *params["b"]]
    opt = config.make(params, **config.descent_overrides)
    for _ in range(5):
        g = quadratic_grad(params)
        opt.step(_negate(g) if config.maximize else g)
    assert all(a is b for a, b in zip([params["w"], *params["b"]], leaves, strict=True))
    for leaf, state in zip(leaves, opt.state, strict=True):
        assert leaf.dtype == dtype
        assert np.isfinite(leaf).all()
        assert state["step"] == 5
        for value in (v for k, v in state.items() if k != "step"):
            assert value.dtype == dtype and value.shape == leaf.shape
    assert not np.array_equal(params["w"], np.zeros((3, 4))), "the parameters did not move"


def _mixed_params() -> Tree:
    rng = np.random.default_rng(7)
    return {
        "w": rng.standard_normal((3, 4)),
        "b": rng.standard_normal(5).astype(np.float32),
        "s": np.array(0.5),
    }


def _mixed_grads(step: int) -> Tree:
    rng = np.random.default_rng(100 + step)
    scale = 10.0 ** rng.uniform(-3, 2)
    return {
        "w": scale * rng.standard_normal((3, 4)),
        "b": (scale * rng.standard_normal(5)).astype(np.float32),
        "s": np.array(scale * rng.standard_normal()),
    }


@params_config
def test_state_dict_round_trip_resumes_bit_for_bit(config: OptimizerConfig, tmp_path: Path) -> None:
    params = _mixed_params()
    opt = config.make(params)
    for t in range(7):
        opt.step(_mixed_grads(t))
    path = tmp_path / "opt.npz"
    adadelta.save(path, opt.state_dict())
    params2 = copy.deepcopy(params)
    opt2 = config.make(params2)
    opt2.load_state_dict(adadelta.load(path))
    assert_identical(opt2.state_dict(), opt.state_dict())
    for t in range(7, 12):
        opt.step(_mixed_grads(t))
        opt2.step(_mixed_grads(t))
    assert_identical(params2, params)
    assert_identical(opt2.state_dict(), opt.state_dict())


@params_config
def test_state_dict_is_a_snapshot_and_load_copies(config: OptimizerConfig) -> None:
    params = _mixed_params()
    opt = config.make(params)
    opt.step(_mixed_grads(0))
    opt.step(_mixed_grads(1))
    saved = opt.state_dict()
    frozen = copy.deepcopy(saved)
    opt.step(_mixed_grads(2))
    assert_identical(saved, frozen)  # later steps do not reach into a state dict given out
    other = config.make(copy.deepcopy(params))
    other.load_state_dict(saved)
    for state in saved["state"].values():  # nor does changing it reach into the optimizer
        for value in state.values():
            if isinstance(value, np.ndarray):
                value[...] = 123.0
    assert_identical(other.state_dict()["state"], frozen["state"])


@params_config
@pytest.mark.parametrize("layout", ["transposed", "strided", "reversed", "fortran", "parameter"])
def test_any_gradient_layout_gives_the_same_step(config: OptimizerConfig, layout: str) -> None:
    """Gradients need not be C-contiguous (nor distinct from the parameter): the steps are the
    same as with a contiguous copy. 200 x 200 is big enough for the parallel kernels."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((200, 200))
    y = x.copy()
    opt, reference = config.make(x), config.make(y)
    for _ in range(3):
        wide = rng.standard_normal((200, 400))
        g = {
            "transposed": wide[:, :200].T,
            "strided": wide[:, ::2],
            "reversed": wide[::-1, 200:],
            "fortran": np.asfortranarray(wide[:, :200]),
            "parameter": x,
        }[layout]
        reference.step(y.copy() if layout == "parameter" else np.ascontiguousarray(g))
        opt.step(g)
    assert_identical(x, y)


@params_config
def test_param_groups_each_get_their_hyperparameters(config: OptimizerConfig) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(4), rng.standard_normal((2, 3))
    a1, b1 = a.copy(), b.copy()
    lr2 = 0.5 * config.make([np.zeros(1)]).defaults["lr"]
    grouped = config.make([{"params": a}, {"params": {"b": b}, "lr": lr2}])
    alone_a, alone_b = config.make(a1), config.make({"b": b1}, lr=lr2)
    for t in range(5):
        ga, gb = rng.standard_normal(4), rng.standard_normal((2, 3)) * 10.0**t
        grouped.step([ga, {"b": gb}])
        alone_a.step(ga)
        alone_b.step({"b": gb})
    assert_identical([a, b], [a1, b1])
    assert [g["lr"] for g in grouped.state_dict()["param_groups"]] == [2 * lr2, lr2]


@params_config
def test_changed_hyperparameter_takes_effect(config: OptimizerConfig) -> None:
    x, y = np.ones(3), np.ones(3)
    opt, reference = config.make(x), config.make(y)
    g = np.array([0.5, -1.0, 2.0])
    opt.step(g)
    reference.step(g)
    opt.param_groups[0]["lr"] = 0.0  # as a scheduler would
    opt.step(g)
    assert_identical(x, y)  # lr = 0 leaves the parameters where they were
    assert opt.state[0]["step"] == 2


# --- refused hyperparameters ---

_CLASS_TAG = {cls: cls.__name__ for cls in (Adadelta, SGD, Adagrad, RMSprop, Adam)}
error_ids = [e.id for e in ERROR_INPUTS]
group_errors = [e for e in ERROR_INPUTS if not e.constructor_only]


@pytest.mark.parametrize("error", ERROR_INPUTS, ids=error_ids)
def test_constructor_refuses(error: ErrorInput) -> None:
    x = np.ones(3)
    with pytest.raises(error.error_type, match=error.error_regex):
        error.cls(x, **error.kwargs)
    if not error.constructor_only:
        with pytest.raises(error.error_type, match=error.error_regex):
            make: Callable[..., Optimizer] = error.cls
            make([{"params": x, **error.kwargs}])
    assert_identical(x, np.ones(3))


def _stepped(cls: Callable[..., Optimizer]) -> tuple[Optimizer, list[np.ndarray]]:
    params = [np.linspace(-1, 1, 5), np.array([[2.0, -3.0]])]
    opt = cls([{"params": params}])
    for t in range(3):
        opt.step([[np.full(5, 0.5 * t - 1), np.array([[1.0, 2.0]])]])
    return opt, params


@pytest.mark.parametrize("error", group_errors, ids=[e.id for e in group_errors])
def test_add_param_group_refuses(error: ErrorInput) -> None:
    opt, params = _stepped(error.cls)
    before = snapshot(opt, params)
    extra = np.ones(2)
    with pytest.raises(error.error_type, match=error.error_regex):
        opt.add_param_group({"params": extra, **error.kwargs})
    assert len(opt.param_groups) == 1
    assert_unchanged(opt, params, before)
    assert_identical(extra, np.ones(2))
    opt.step([[np.ones(5), np.ones((1, 2))]])  # still usable, still one group


@pytest.mark.parametrize("error", group_errors, ids=[e.id for e in group_errors])
def test_step_refuses_invalid_hyperparameter_set_in_param_groups(error: ErrorInput) -> None:
    opt, params = _stepped(error.cls)
    before = snapshot(opt, params)
    opt.param_groups[0].update(error.kwargs)
    with pytest.raises(error.error_type, match=error.error_regex):
        opt.step([[np.ones(5), np.ones((1, 2))]])
    assert_identical(params, before[1])
    assert_identical(opt.state_dict()["state"], before[0]["state"])


@pytest.mark.parametrize("error", group_errors, ids=[e.id for e in group_errors])
def test_load_state_dict_refuses_invalid_hyperparameter(error: ErrorInput) -> None:
    opt, params = _stepped(error.cls)
    before = snapshot(opt, params)
    bad = copy.deepcopy(before[0])
    bad["param_groups"][0].update(error.kwargs)
    with pytest.raises(error.error_type, match=error.error_regex):
        opt.load_state_dict(bad)
    assert_unchanged(opt, params, before)


# --- refused parameters ---

_shared = np.ones(2)
bad_params = [
    pytest.param(
        {"w": np.ones(3, np.int64)},
        TypeError,
        "params['w']: dtype int64 is not supported; use float32 or float64",
        id="integer",
    ),
    pytest.param(
        [np.ones(2), np.ones(2, np.float16)],
        TypeError,
        "params[1]: dtype float16 is not supported",
        id="float16",
    ),
    pytest.param(
        {"w": [1.0, 2.0]},
        TypeError,
        "params['w'][0]: expected a NumPy float array, got float",
        id="list-of-floats",
    ),
    pytest.param(2.0, TypeError, "params: expected a NumPy float array, got float", id="float"),
    pytest.param(None, TypeError, "params: expected a NumPy float array, got NoneType", id="None"),
    pytest.param([], ValueError, "a parameter group holds no parameters", id="empty"),
    pytest.param(
        [_shared, _shared],
        ValueError,
        "params[1] is params[0]: each array of an optimizer must have memory of its own",
        id="duplicate",
    ),
]


@pytest.mark.parametrize(("params", "error_type", "message"), bad_params)
@pytest.mark.parametrize("cls", list(_CLASS_TAG), ids=list(_CLASS_TAG.values()))
def test_refuses_bad_params(
    cls: Callable[..., Optimizer], params: Any, error_type: type[Exception], message: str
) -> None:
    with pytest.raises(error_type, match=re.escape(message)):
        cls(params)


def test_refuses_read_only_params() -> None:
    x = np.ones(3)
    x.flags.writeable = False
    with pytest.raises(ValueError, match=re.escape("params: the array is read-only")):
        Adadelta(x)


def test_add_param_group_needs_an_optimizer_built_from_groups() -> None:
    x = np.ones(3)
    opt = Adadelta(x)
    before = snapshot(opt, x)
    with pytest.raises(TypeError, match=re.escape("add_param_group needs an optimizer built from")):
        opt.add_param_group({"params": np.ones(2)})
    assert len(opt.param_groups) == 1
    assert_unchanged(opt, x, before)


def test_add_param_group_takes_the_defaults_and_its_own_values() -> None:
    a, b = np.ones(2), np.ones(3)
    opt = Adadelta([{"params": a}], rho=0.9)
    opt.add_param_group({"params": b, "eps": 1e-3})
    assert opt.param_groups[1]["rho"] == 0.9 and opt.param_groups[1]["eps"] == 1e-3
    opt.step([np.ones(2), np.ones(3)])
    expected = 1 - math.sqrt(1e-3) / math.sqrt(0.1 + 1e-3)
    np.testing.assert_allclose(b, expected, rtol=1e-15)
    with pytest.raises(ValueError, match=re.escape("unknown hyperparameter(s) ['alpha']")):
        opt.add_param_group({"params": np.ones(1), "alpha": 0.5})
    with pytest.raises(
        ValueError,
        match=re.escape("param_groups[2]['params'][0] is param_groups[0]['params']: each array"),
    ):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError, match="a parameter group must be a dict with a 'params' entry"):
        opt.add_param_group({"lr": 1.0})
    assert len(opt.param_groups) == 2


# --- refused gradients: nothing changes ---


def _tree_params() -> Tree:
    return {"w": np.linspace(-1, 1, 12).reshape(3, 4), "b": [np.ones(4), np.array(0.5)]}


def _tree_grads(scale: float = 1.0) -> Tree:
    return {"w": np.full((3, 4), 0.5 * scale), "b": [np.full(4, -scale), np.array(2.0 * scale)]}


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Tree], Tree]:
    def change(grads: Tree) -> Tree:
        node = grads
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(node[path[-1]]) if callable(value) else value
        return grads

    return change


def _with_nan_at(index: tuple[int, ...], value: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(g: np.ndarray) -> np.ndarray:
        g = g.copy()
        g[index] = value
        return g

    return change


bad_gradients = [
    pytest.param(
        lambda g: [g["w"], g["b"]],
        TypeError,
        "gradients: expected a dict, got list",
        id="list-for-dict",
    ),
    pytest.param(
        lambda g: {"w": g["w"]},
        KeyError,
        "gradients: keys differ from the parameters' (missing ['b'], extra [])",
        id="missing-key",
    ),
    pytest.param(
        lambda g: {**g, "c": g["w"]},
        KeyError,
        "gradients: keys differ from the parameters' (missing [], extra ['c'])",
        id="extra-key",
    ),
    pytest.param(
        _set(("b",), lambda b: b[:1]),
        ValueError,
        "gradients['b']: expected 2 items (one per parameter), got 1",
        id="too-few",
    ),
    pytest.param(
        _set(("b",), lambda b: [*b, b[0]]),
        ValueError,
        "gradients['b']: expected 2 items (one per parameter), got 3",
        id="too-many",
    ),
    pytest.param(
        _set(("b",), lambda b: b[0]),
        TypeError,
        "gradients['b']: expected a list or tuple, got ndarray",
        id="array-for-list",
    ),
    pytest.param(
        _set(("w",), lambda w: w.T.copy()),
        ValueError,
        "gradient for params['w']: shape (4, 3) differs from the parameter's (3, 4)",
        id="shape",
    ),
    pytest.param(
        _set(("b", 1), lambda s: s.reshape(1)),
        ValueError,
        "gradient for params['b'][1]: shape (1,) differs from the parameter's ()",
        id="0-d-shape",
    ),
    pytest.param(
        _set(("b", 0), lambda b: b.astype(np.float32)),
        TypeError,
        "gradient for params['b'][0]: dtype float32 differs from the parameter's float64",
        id="dtype",
    ),
    pytest.param(
        _set(("w",), lambda w: w.tolist()),
        TypeError,
        "gradient for params['w']: expected a NumPy array, got list",
        id="list-for-array",
    ),
    pytest.param(
        _set(("b", 1), None),
        TypeError,
        "gradient for params['b'][1]: expected a NumPy array, got NoneType",
        id="None",
    ),
    pytest.param(
        _set(("b", 1), np.float64(2.0)),
        TypeError,
        "gradient for params['b'][1]: expected a NumPy array, got float64",
        id="numpy-scalar",
    ),
    pytest.param(
        _set(("w",), _with_nan_at((1, 2), np.nan)),
        NonFiniteGradientError,
        "gradient for params['w']: 1 of 12 entries are NaN or infinite; nothing was changed",
        id="nan",
    ),
    pytest.param(
        _set(("w",), _with_nan_at((0, 0), -np.inf)),
        NonFiniteGradientError,
        "gradient for params['w']: 1 of 12 entries are NaN or infinite",
        id="inf",
    ),
    pytest.param(
        _set(("b", 1), lambda s: np.array(np.nan)),
        NonFiniteGradientError,
        "gradient for params['b'][1]: 1 of 1 entries are NaN or infinite",
        id="nan-in-the-last-parameter",
    ),
    pytest.param(
        _set(("b", 0), lambda b: np.full(4, np.inf)),
        NonFiniteGradientError,
        "gradient for params['b'][0]: 4 of 4 entries are NaN or infinite",
        id="all-inf",
    ),
]


@pytest.mark.parametrize(("corrupt", "error_type", "message"), bad_gradients)
@pytest.mark.parametrize("cls", list(_CLASS_TAG), ids=list(_CLASS_TAG.values()))
def test_step_refuses_bad_gradients(
    cls: Callable[..., Optimizer],
    corrupt: Callable[[Tree], Tree],
    error_type: type[Exception],
    message: str,
) -> None:
    params = _tree_params()
    opt = cls(params)
    opt.step(_tree_grads())
    opt.step(_tree_grads(3.0))
    before = snapshot(opt, params)
    with pytest.raises(error_type, match=re.escape(message)):
        opt.step(corrupt(_tree_grads(-2.0)))
    assert_unchanged(opt, params, before)
    opt.step(_tree_grads())  # and it goes on as if nothing had happened
    assert all(s["step"] == 3 for s in opt.state)


@pytest.mark.parametrize(
    ("grads", "message"),
    [
        ({"layers": [{"W": np.ones(2)}, [np.ones(2)]]}, "gradients['layers'][1]: expected a dict"),
        (
            {"layers": [{"W": np.ones(2)}, {"W": [np.ones(2)]}]},
            "gradient for params['layers'][1]['W']: expected a NumPy array, got list",
        ),
        ({"layers": [{"W": np.ones(2)}, {"V": np.ones(2)}]}, "gradients['layers'][1]: keys differ"),
    ],
    ids=["dict", "leaf", "keys"],
)
def test_structure_errors_name_the_whole_path(grads: Tree, message: str) -> None:
    params = {"layers": [{"W": np.ones(2)}, {"W": np.ones(2)}]}
    with pytest.raises((TypeError, KeyError), match=re.escape(message)):
        Adadelta(params).step(grads)


def test_grouped_step_refuses_wrong_group_count_and_a_bad_last_group() -> None:
    a, b = np.ones(3), np.ones(2)
    opt = Adadelta([{"params": a}, {"params": {"b": b}, "rho": 0.5}])
    opt.step([np.ones(3), {"b": np.ones(2)}])
    before = snapshot(opt, [a, b])
    for grads in ([np.ones(3)], np.ones(3), [np.ones(3), {"b": np.ones(2)}, np.ones(1)]):
        with pytest.raises(ValueError, match="expected a list of 2 gradient structures"):
            opt.step(grads)
    with pytest.raises(
        NonFiniteGradientError, match=re.escape("gradient for param_groups[1]['params']['b']")
    ):
        opt.step([np.ones(3), {"b": np.array([1.0, np.nan])}])  # the first group was fine
    assert_unchanged(opt, [a, b], before)


@pytest.mark.parametrize("cls", list(_CLASS_TAG), ids=list(_CLASS_TAG.values()))
def test_check_finite_false_skips_the_check(cls: Callable[..., Optimizer]) -> None:
    params = _tree_params()
    opt = cls(params, check_finite=False)
    grads = _tree_grads()
    grads["w"][1, 2] = np.nan
    grads["b"][0][0] = np.inf
    opt.step(grads)  # no error: the NaN and infinity go through
    assert np.isnan(params["w"][1, 2])
    assert not np.isfinite(params["b"][0][0])
    assert np.isfinite(params["b"][1]) and np.isfinite(np.delete(params["w"], 6)).all()


# --- load_state_dict refuses what does not fit: nothing changes ---


def _corrupt_state(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return change


def _drop(d: dict[str, Any], key: Any) -> None:
    del d[key]


bad_state_dicts = [
    pytest.param(
        lambda sd: sd.pop("state"),
        "expected a dict with exactly 'state' and 'param_groups'",
        id="no-state",
    ),
    pytest.param(lambda sd: sd.update(extra=1), "expected a dict with exactly", id="extra-entry"),
    pytest.param(
        lambda sd: sd["param_groups"].append(copy.deepcopy(sd["param_groups"][0])),
        "state dict: has 2 parameter groups, this optimizer has 1",
        id="group-count",
    ),
    pytest.param(
        lambda sd: sd["param_groups"][0].update(params=[0, 1]),
        "state dict: parameter group 0 must list parameters [0, 1, 2]",
        id="group-params",
    ),
    pytest.param(
        lambda sd: sd["param_groups"][0].pop("rho"),
        "state dict: parameter group 0 has hyperparameters",
        id="missing-hyperparameter",
    ),
    pytest.param(
        lambda sd: sd["param_groups"][0].update(alpha=0.9),
        "state dict: parameter group 0 has hyperparameters",
        id="unknown-hyperparameter",
    ),
    pytest.param(
        lambda sd: sd["state"].pop(2),
        "state dict: 'state' must have the keys 0..2",
        id="missing-state",
    ),
    pytest.param(
        lambda sd: sd["state"].update({"0": sd["state"].pop(0)}),
        "state dict: 'state' must have the keys 0..2",
        id="str-state-key",
    ),
    pytest.param(
        lambda sd: sd["state"][1].update(E_g2=sd["state"][1]["E_g2"].T.copy()),
        "state dict: state of parameter 1: 'E_g2' must be an array of shape (3, 4) and dtype "
        "float64, got array of shape (4, 3) and dtype float64",
        id="state-shape",
    ),
    pytest.param(
        lambda sd: sd["state"][0].update(E_dx2=sd["state"][0]["E_dx2"].astype(np.float32)),
        "state dict: state of parameter 0: 'E_dx2' must be an array of shape (3,) and dtype "
        "float64, got array of shape (3,) and dtype float32",
        id="state-dtype",
    ),
    pytest.param(
        lambda sd: sd["state"][2].update(E_g2=1.0),
        "state dict: state of parameter 2: 'E_g2' must be an array of shape () and dtype "
        "float64, got float",
        id="state-not-array",
    ),
    pytest.param(
        lambda sd: sd["state"][0].update(momentum_buffer=np.zeros(3)),
        "state dict: state of parameter 0: has keys ['E_dx2', 'E_g2', 'momentum_buffer', 'step']",
        id="state-unknown-key",
    ),
    pytest.param(
        lambda sd: sd["state"][0].pop("step"),
        "state dict: state of parameter 0: has keys",
        id="no-step",
    ),
    pytest.param(
        lambda sd: sd["state"][0].update(step=-1),
        "state dict: state of parameter 0: 'step' must be an integer in [0, 2**63), got -1",
        id="negative-step",
    ),
    pytest.param(
        lambda sd: sd["state"][0].update(step=2.5),
        "'step' must be an integer in [0, 2**63), got 2.5",
        id="float-step",
    ),
]


@pytest.mark.parametrize(("corrupt", "message"), bad_state_dicts)
def test_load_state_dict_refuses_what_does_not_fit(
    corrupt: Callable[[dict[str, Any]], Any], message: str
) -> None:
    params = [np.ones(3), np.linspace(0, 1, 12).reshape(3, 4), np.array(0.25)]
    opt = Adadelta(params, rho=0.9)
    source = Adadelta([np.asarray(p * 2) for p in params], rho=0.8)
    for t in range(3):
        grads = [np.full(3, t + 1.0), np.full((3, 4), -1.0), np.array(0.5)]
        opt.step(grads)
        source.step(grads)
    before = snapshot(opt, params)
    bad = source.state_dict()
    corrupt(bad)
    with pytest.raises(ValueError, match=re.escape(message)):
        opt.load_state_dict(bad)
    assert_unchanged(opt, params, before)
    opt.load_state_dict(source.state_dict())  # the uncorrupted one loads
    assert opt.param_groups[0]["rho"] == 0.8


def test_load_state_dict_refuses_a_non_dict() -> None:
    opt = SGD(np.ones(2))
    with pytest.raises(ValueError, match="expected a dict with exactly 'state' and 'param_groups'"):
        opt.load_state_dict([])  # type: ignore[arg-type]


# --- known numbers: ADADELTA, Algorithm 1 of Zeiler (2012) ---

_G = np.array([3.0, -0.5, 1e-4, -1e3, 0.0, 7.25e-8, 2.0**-30, 12345.678])


@pytest.mark.parametrize(("rho", "eps"), [(0.95, 1e-6), (0.9, 1e-6), (0.5, 1e-2), (0.0, 1e-8)])
def test_first_adadelta_step_is_the_papers(rho: float, eps: float) -> None:
    dx = -math.sqrt(eps) / np.sqrt((1 - rho) * _G**2 + eps) * _G
    x = np.zeros_like(_G)
    Adadelta(x, rho=rho, eps=eps).step(_G.copy())
    np.testing.assert_array_max_ulp(x, dx, maxulp=1)  # from 0, x is the step itself
    x0 = np.linspace(-2, 2, _G.size)
    x = x0.copy()
    Adadelta(x, rho=rho, eps=eps).step(_G.copy())
    np.testing.assert_array_max_ulp(x, x0 + dx, maxulp=1)


def _by_hand(x: float, gs: list[float], rho: float, eps: float, lr: float = 1.0) -> float:
    """Algorithm 1 in Python floats, one line per line of the paper."""
    E_g2 = E_dx2 = 0.0
    for g in gs:
        E_g2 = rho * E_g2 + (1 - rho) * g * g
        dx = -math.sqrt(E_dx2 + eps) / math.sqrt(E_g2 + eps) * g
        E_dx2 = rho * E_dx2 + (1 - rho) * dx * dx
        x = x + lr * dx
    return x


def test_second_adadelta_step_by_hand() -> None:
    rho, eps = 0.95, 1e-6
    g1, g2 = np.array([0.5, -4.0, 1e-3]), np.array([0.25, 3.0, 1e-3])
    x = np.array([1.0, 2.0, -3.0])
    opt = Adadelta(x)
    opt.step(g1)
    opt.step(g2)
    expected = [
        _by_hand(x0, [a, b], rho, eps) for x0, a, b in zip([1.0, 2.0, -3.0], g1, g2, strict=True)
    ]
    np.testing.assert_allclose(x, expected, rtol=4e-16)
    # the same in closed form: dx1 = -sqrt(eps) / sqrt(0.05 g1^2 + eps) g1, E[dx^2]_1 = 0.05 dx1^2
    dx1 = -math.sqrt(eps) / np.sqrt(0.05 * g1**2 + eps) * g1
    dx2 = -np.sqrt(0.05 * dx1**2 + eps) / np.sqrt(0.95 * 0.05 * g1**2 + 0.05 * g2**2 + eps) * g2
    np.testing.assert_allclose(x, np.array([1.0, 2.0, -3.0]) + dx1 + dx2, rtol=4e-16)
    np.testing.assert_allclose(opt.state[0]["E_dx2"], 0.95 * 0.05 * dx1**2 + 0.05 * dx2**2)


def test_lr_scales_the_applied_step_not_the_accumulated_one() -> None:
    gs = [0.5, -4.0, 2.0, 1.0]
    x = np.array([1.0])
    opt = Adadelta(x, lr=0.25)
    for g in gs:
        opt.step(np.array([g]))
    np.testing.assert_allclose(x[0], _by_hand(1.0, gs, 0.95, 1e-6, lr=0.25), rtol=1e-15)
    unscaled = _by_hand(0.0, gs, 0.95, 1e-6)
    assert x[0] - 1.0 == pytest.approx(0.25 * unscaled, rel=1e-12)


def test_weight_decay_coupled_and_decoupled_first_step() -> None:
    rho, eps, wd, lr = 0.9, 1e-6, 0.1, 0.5
    x0, g = np.array([2.0, -1.0]), np.array([0.3, 0.7])
    coupled = x0.copy()
    Adadelta(coupled, lr=lr, rho=rho, eps=eps, weight_decay=wd).step(g.copy())
    g_wd = g + wd * x0  # PyTorch and optax: added to the gradient
    dx = -math.sqrt(eps) / np.sqrt((1 - rho) * g_wd**2 + eps) * g_wd
    np.testing.assert_array_max_ulp(coupled, x0 + lr * dx, maxulp=1)

    decoupled = x0.copy()
    Adadelta(decoupled, lr=lr, rho=rho, eps=eps, weight_decay=wd, preset="keras").step(g.copy())
    shrunk = x0 - x0 * wd * lr  # Keras: taken off the parameter before the step
    dx = -math.sqrt(eps) / np.sqrt((1 - rho) * g**2 + eps) * g
    np.testing.assert_array_max_ulp(decoupled, shrunk + lr * dx, maxulp=1)


def test_maximize_steps_up_the_gradient() -> None:
    x, y = np.array([1.0, -1.0]), np.array([1.0, -1.0])
    g = np.array([0.5, 2.0])
    Adadelta(x, maximize=True).step(g.copy())
    Adadelta(y).step(-g)
    assert_identical(x, y)
    assert (x - 1.0)[0] > 0


# the defaults of each preset, written out independently of adadelta.PRESETS
PRESET_DEFAULTS = {
    "paper": (1.0, 0.95, 1e-6, False),
    "torch": (1.0, 0.9, 1e-6, False),
    "optax": (1.0, 0.9, 1e-6, False),
    "keras": (1e-3, 0.95, 1e-7, True),
    "tf1": (1e-3, 0.95, 1e-8, False),
}


@pytest.mark.parametrize("preset", PRESET_DEFAULTS)
def test_preset_defaults_and_overrides(preset: str) -> None:
    lr, rho, eps, decoupled = PRESET_DEFAULTS[preset]
    opt = Adadelta(np.ones(2), preset=preset)
    assert (opt.defaults["lr"], opt.defaults["rho"], opt.defaults["eps"]) == (lr, rho, eps)
    assert opt.defaults["decoupled_weight_decay"] is decoupled
    assert opt.defaults["weight_decay"] == 0.0 and opt.defaults["maximize"] is False
    override = Adadelta(np.ones(2), lr=0.5, rho=0.6, eps=1e-3, weight_decay=0.2, preset=preset)
    group = override.param_groups[0]
    assert (group["lr"], group["rho"], group["eps"], group["weight_decay"]) == (0.5, 0.6, 1e-3, 0.2)
    assert group["decoupled_weight_decay"] is decoupled
    # and the step uses them: the first step with this preset's lr, rho and eps
    x = np.array([1.0, -2.0])
    Adadelta(x, preset=preset).step(np.array([0.5, 0.5]))
    g = np.array([0.5, 0.5])
    expected = np.array([1.0, -2.0]) + lr * (-math.sqrt(eps) / np.sqrt((1 - rho) * g**2 + eps) * g)
    np.testing.assert_array_max_ulp(x, expected, maxulp=1)


def test_default_is_the_paper() -> None:
    assert Adadelta(np.ones(1)).defaults == Adadelta(np.ones(1), preset="paper").defaults
    assert set(adadelta.PRESETS) == set(PRESET_DEFAULTS)


def test_errors_name_a_parameter_with_its_group() -> None:
    """In an optimizer built from groups, each parameter is named with its group (the first
    parameter of every group was "params[0]"); built from one structure, plainly."""
    a, b = np.ones(3), np.ones(2)
    grouped = Adadelta([{"params": [a]}, {"params": [b]}])
    with pytest.raises(
        ValueError, match=re.escape("gradient for param_groups[1]['params'][0]: shape")
    ):
        grouped.step([[np.ones(3)], [np.ones(3)]])
    with pytest.raises(ValueError, match=re.escape("gradients[1]: expected 1 items")):
        grouped.step([[np.ones(3)], [np.ones(2), np.ones(2)]])
    with pytest.raises(
        NonFiniteGradientError, match=re.escape("for param_groups[0]['params'][0]:")
    ):
        grouped.step([[np.full(3, np.nan)], [np.ones(2)]])
    plain = Adadelta([a, b])
    with pytest.raises(NonFiniteGradientError, match=re.escape("gradient for params[1]:")):
        plain.step([np.ones(3), np.full(2, np.inf)])
    with pytest.raises(ValueError, match=re.escape("gradients: expected 2 items")):
        plain.step([np.ones(3)])
