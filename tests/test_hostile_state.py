"""Compact state (``Adadelta(params, state_dtype=...)``) attacked as a careless or hostile user
would: state arrays replaced, parameters made read-only or retyped, aliasing gradients, copies,
0-d parameters, corrupt state dicts through ``convert_state``, and hyperparameters that vanish
in the parameters' dtype.

What must hold (``docs/guarantees-state.md``): compact state gets the checks float32 state gets,
through the same path; a refused call raises an error naming the problem and changes nothing,
byte for byte; the kernels only ever touch checked arrays.
"""

from __future__ import annotations

import copy
import os
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adadelta
from adadelta import Adadelta, Adam, RMSprop, convert_state
from adadelta.kernels import compact
from optimizer_matrix import assert_identical

FORMATS = compact.FORMATS
ALL_FORMATS = (None, *FORMATS)
DOCUMENTED = (TypeError, ValueError, KeyError, RuntimeError)
FAST = settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
PATHS = pytest.mark.parametrize("fused", [True, False], ids=["kernel", "rule"])
SHAPES = [(), (0,), (3,), (2, 3), (300,)]


def snapshot(opt: Adadelta, arrays: list[np.ndarray]) -> tuple[Any, ...]:
    """The bytes of ``arrays`` (the parameters) and of every state record."""
    state = [
        {
            k: (v.dtype, v.shape, v.tobytes()) if isinstance(v, np.ndarray) else v
            for k, v in s.items()
        }
        for s in opt.state
    ]
    return [(a.dtype, a.shape, a.tobytes()) for a in arrays], state


def stepped(params: Any, state_dtype: str | None, fused: bool = True, **kw: Any) -> Adadelta:
    opt = Adadelta(params, state_dtype=state_dtype, **kw)
    opt.fused = fused
    grads = (
        [[np.full(p.shape, 0.5, p.dtype) for p in g["params"]] for g in params]
        if isinstance(params[0], dict)
        else [np.full(p.shape, 0.5, p.dtype) for p in params]
    )
    opt.step(grads)
    return opt


# --- replaced state arrays: the float path's checks, for every format ---


def _replacements(state_dtype: str, n: int) -> list[tuple[str, Any, str]]:
    """(key, value, message) that step must refuse, for a parameter of ``n`` float32 values."""
    codes = np.uint16 if state_dtype == "bfloat16" else np.uint8
    cases = [
        ("E_g2", np.zeros(10, codes), r"'E_g2' must be"),
        ("E_g2", np.zeros(n, np.float32), r"'E_g2' must be"),  # float32 where codes belong
        ("E_dx2", np.zeros(n + 1, codes), r"'E_dx2' must be"),
        ("E_g2", [0] * n, r"'E_g2' must be"),
        ("seed", "7", r"'seed' must be"),
        ("step", 2.0, r"'step' must be"),
        ("bogus", np.zeros(n, codes), r"unknown key 'bogus'"),
    ]
    if state_dtype == "float8":
        cases += [
            ("E_g2_scale", np.zeros(1, np.float32), r"'E_g2_scale' must be"),
            ("E_dx2_scale", np.zeros(-(-n // 256), np.float64), r"'E_dx2_scale' must be"),
        ]
    return cases


@PATHS
@pytest.mark.parametrize("state_dtype", FORMATS)
def test_replaced_compact_state_arrays_are_refused_naming_them(
    state_dtype: str, fused: bool
) -> None:
    # was: a shorter E_g2 went into the kernel's address table (SIGSEGV), one of another dtype
    # was misread
    n = 2000
    params = [np.ones(n, np.float32), np.ones(300, np.float32)]
    opt = stepped(params, state_dtype, fused)
    grads = [np.ones_like(p) for p in params]
    for key, value, message in _replacements(state_dtype, n):
        record = opt.state[0]
        saved = dict(record)
        record[key] = value
        before = snapshot(opt, params)
        with pytest.raises(ValueError, match=rf"state of params\[0\]: {message}"):
            opt.step(grads)
        assert snapshot(opt, params) == before, key
        record.clear()
        record.update(saved)
    del opt.state[1]["E_dx2"]  # half a state: all arrays or none
    with pytest.raises(ValueError, match=r"state of params\[1\]: .*'E_dx2'"):
        opt.step(grads)


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_compact_state_sharing_memory_is_refused(state_dtype: str) -> None:
    params = [np.ones(512, np.float32), np.ones(512, np.float32)]
    opt = stepped(params, state_dtype)
    grads = [np.ones_like(p) for p in params]
    before = snapshot(opt, params)
    opt.state[1]["E_g2"] = opt.state[0]["E_dx2"]
    with pytest.raises(ValueError, match=r"state 'E_g2' of params\[1\] is state 'E_dx2'"):
        opt.step(grads)
    opt.state[1]["E_g2"] = params[0].view(opt.state[0]["E_g2"].dtype)[:512]
    with pytest.raises(ValueError, match=r"shares memory with params\[0\]"):
        opt.step(grads)
    assert snapshot(opt, params)[0] == before[0]


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_compact_state_that_is_not_contiguous_or_read_only(state_dtype: str) -> None:
    """A strided copy of the codes is taken (the reference path), a read-only one refused."""
    x = np.linspace(-1, 1, 600, dtype=np.float32)
    y = x.copy()
    opt, twin = stepped([x], state_dtype), stepped([y], state_dtype)
    codes = opt.state[0]["E_g2"]
    strided = np.zeros(2 * codes.size, codes.dtype)[::2]
    strided[...] = codes
    opt.state[0]["E_g2"] = strided
    opt.step([np.ones_like(x)])
    twin.fused = False
    twin.step([np.ones_like(y)])
    np.testing.assert_array_equal(x, y)
    opt.state[0]["E_dx2"].flags.writeable = False
    before = snapshot(opt, [x])
    with pytest.raises(ValueError, match=r"'E_dx2' is read-only"):
        opt.step([np.ones_like(x)])
    assert snapshot(opt, [x]) == before


# --- parameters changed after construction: nothing stepped, no group half-stepped ---


@PATHS
@pytest.mark.parametrize("state_dtype", ALL_FORMATS)
def test_a_parameter_made_read_only_is_refused_before_any_group_steps(
    state_dtype: str | None, fused: bool
) -> None:
    # was (compact): group 0 stepped, then NumPy's "assignment destination is read-only"
    a, b = np.ones(300, np.float32), np.ones(300, np.float32)
    groups = [{"params": [a]}, {"params": [b]}]
    opt = stepped(groups, state_dtype, fused)
    b.flags.writeable = False
    before = snapshot(opt, [a, b])
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['params'\]\[0\]: the array is read"):
        opt.step([[np.ones_like(a)], [np.ones_like(b)]])
    assert snapshot(opt, [a, b]) == before
    assert [s["step"] for s in opt.state] == [1, 1]


@PATHS
@pytest.mark.parametrize("state_dtype", FORMATS)
def test_a_parameter_retyped_in_place_is_refused(state_dtype: str, fused: bool) -> None:
    # was: accepted, and its int32 bits updated as float32 numbers
    a, b = np.ones(300, np.float32), np.ones(300, np.float32)
    opt = stepped([a, b], state_dtype, fused)
    b.dtype = np.int32  # type: ignore[misc]
    before = snapshot(opt, [a, b])
    with pytest.raises(TypeError, match=r"params\[1\]: dtype int32 is not supported"):
        opt.step([np.ones_like(a), np.ones(300, np.int32)])
    assert snapshot(opt, [a, b]) == before


# --- gradients that share memory with parameters or state ---


def _aliased(params: list[np.ndarray], opt: Adadelta) -> dict[str, list[np.ndarray]]:
    a, b = params  # 600 and 150 elements: a's codes hold at least 150 float32 values
    own = opt.state[1]["E_dx2"].view(np.uint8)[:4].view(np.float32)
    return {
        "another parameter": [np.ones_like(a), a[:150]],
        "another's state": [np.ones_like(a), opt.state[0]["E_g2"].view(np.float32)[:150]],
        "its own state": [np.ones_like(a), np.broadcast_to(own, b.shape)],
    }


@PATHS
@pytest.mark.parametrize("case", ["another parameter", "another's state", "its own state"])
@pytest.mark.parametrize("state_dtype", FORMATS)
def test_a_gradient_sharing_memory_with_compact_state_or_parameters_is_refused(
    state_dtype: str, case: str, fused: bool
) -> None:
    # was: accepted; the kernel read what it had already written
    params = [np.linspace(1, 2, 600, dtype=np.float32), np.linspace(1, 2, 150, dtype=np.float32)]
    opt = stepped(params, state_dtype, fused)
    opt.step([np.ones_like(p) for p in params])
    grads = _aliased(params, opt)[case]
    before = snapshot(opt, params)
    with pytest.raises(ValueError, match=r"gradient for params\[1\] shares memory with"):
        opt.step(grads)
    assert snapshot(opt, params) == before


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_a_shifted_view_of_the_parameter_as_its_gradient_is_refused(state_dtype: str) -> None:
    buffer = np.linspace(1, 2, 1001, dtype=np.float32)
    x = buffer[:1000]
    opt = stepped([x], state_dtype)
    before = snapshot(opt, [x])
    with pytest.raises(ValueError, match=r"gradient for params\[0\] shares memory with params"):
        opt.step([buffer[1:]])
    assert snapshot(opt, [x]) == before
    opt.step([x])  # the parameter itself, element for element: taken


# --- copies ---


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("state_dtype", FORMATS)
def test_a_copied_compact_optimizer_steps_its_own_parameters(state_dtype: str, how: str) -> None:
    # was: the copy kept the original's address table, and stepped the original's parameters
    x = np.linspace(-1, 1, 1000, dtype=np.float32)
    opt = stepped([x], state_dtype)
    opt.step([np.ones_like(x)])
    twin = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    twin_x = twin.param_groups[0]["params"][0]
    before = snapshot(opt, [x])
    twin.step([np.ones_like(x)])
    assert snapshot(opt, [x]) == before
    opt.step([np.ones_like(x)])
    assert snapshot(twin, [twin_x]) == snapshot(opt, [x])


# --- 0-d parameters ---


@PATHS
@pytest.mark.parametrize("state_dtype", FORMATS)
def test_a_0d_parameter_with_compact_state_resumes_and_converts(
    state_dtype: str, fused: bool
) -> None:
    # was: after a rule step the state held 1-d codes, and the optimizer refused its own state
    # dict; convert_state(sd, None) gave NumPy scalars that float32 state refused
    t = np.array(0.5, np.float32)
    opt = stepped([t], state_dtype, fused)
    saved = opt.state_dict()
    assert saved["state"][0]["E_g2"].shape == ()
    resumed = Adadelta([np.array(0.5, np.float32)], state_dtype=state_dtype)
    resumed.load_state_dict(saved)
    as_float = convert_state(saved, None)
    assert isinstance(as_float["state"][0]["E_g2"], np.ndarray)
    plain = Adadelta([np.array(0.5, np.float32)])
    plain.load_state_dict(as_float)
    plain.step([np.array(0.5, np.float32)])
    back = convert_state(plain.state_dict(), state_dtype)
    Adadelta([np.array(0.5, np.float32)], state_dtype=state_dtype).load_state_dict(back)
    resumed.step([np.array(0.5, np.float32)])
    assert resumed.state_dict()["state"][0]["E_dx2"].shape == ()


# --- convert_state checks what it converts ---


def _corruptions(state_dtype: str | None, n: int) -> dict[str, Callable[[dict[str, Any]], None]]:
    def set_(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda sd: sd["state"][0].__setitem__(key, value)

    cases = {
        "step": set_("step", -1),
        "unknown": set_("bogus", 1),
        "lr": lambda sd: sd["param_groups"][0].__setitem__("lr", float("nan")),
        "groups": lambda sd: sd["param_groups"][0].__setitem__("params", [0, 0]),
        "missing": lambda sd: sd["state"].pop(0),
    }
    if state_dtype is None:
        cases |= {
            "nan": set_("E_g2", np.full(n, np.nan, np.float32)),
            "negative": set_("E_dx2", -np.ones(n, np.float32)),
            "shape": lambda sd: sd["state"][0].__setitem__("E_dx2", np.zeros(n + 1, np.float32)),
        }
    else:
        codes = compact._CODES[state_dtype]
        cases |= {
            "seed": set_("seed", -2),
            "shape": set_("E_dx2", np.zeros(n + 1, codes)),
            "no-seed": lambda sd: sd["state"][0].pop("seed"),
        }
        if state_dtype == "float8":
            cases |= {
                "scales-long": set_("E_g2_scale", np.zeros(-(-n // 256) + 1, np.float32)),
                "scales-negative": set_("E_dx2_scale", -np.ones(-(-n // 256), np.float32)),
            }
        else:
            cases["nan-codes"] = set_("E_g2", np.full(n, 0xFFC0, np.uint16))
    return cases


@pytest.mark.parametrize("target", ALL_FORMATS)
@pytest.mark.parametrize("source", ALL_FORMATS)
def test_convert_state_refuses_what_load_state_dict_refuses(
    source: str | None, target: str | None
) -> None:
    # was: a float8 dict with scales too long became a float32 dict that loaded silently
    n = 700
    opt = stepped([np.linspace(0, 1, n, dtype=np.float32)], source)
    for name, corrupt in _corruptions(source, n).items():
        broken = opt.state_dict()
        corrupt(broken)
        kept = copy.deepcopy(broken)
        with pytest.raises(ValueError) as refused:
            opt.load_state_dict(broken)
        with pytest.raises(ValueError) as converted:
            convert_state(broken, target)
        if name in ("groups", "missing"):  # the stand-ins' structure is the dict's own
            assert str(converted.value).startswith("state dict: "), name
        else:
            assert str(converted.value) == str(refused.value), name
        assert_identical(broken, kept)  # the input is left as it was


# --- hyperparameters that vanish in the parameters' dtype ---


@pytest.mark.parametrize("state_dtype", ALL_FORMATS)
def test_an_eps_that_is_zero_in_float32_is_refused(state_dtype: str | None) -> None:
    # was: eps=1e-46 passed `eps > 0` but is 0 in float32; a zero gradient made x NaN
    x = np.ones(10, np.float32)
    message = r"Invalid eps value: 1e-46 \(must be > 0 in float32"
    with pytest.raises(ValueError, match=message):
        Adadelta(x, eps=1e-46, state_dtype=state_dtype)
    opt = stepped([x], state_dtype)
    before = snapshot(opt, [x])
    opt.param_groups[0]["eps"] = 1e-46
    with pytest.raises(ValueError, match=message):
        opt.step([np.zeros_like(x)])
    assert snapshot(opt, [x]) == before
    opt.param_groups[0]["eps"] = 1e-6
    saved = opt.state_dict()
    saved["param_groups"][0]["eps"] = 1e-46
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(saved)
    opt.param_groups[0]["lr"] = 1e39  # infinite in float32
    with pytest.raises(ValueError, match=r"Invalid lr value: 1e\+39 \(must be finite in float32"):
        opt.step([np.zeros_like(x)])
    assert snapshot(opt, [x]) == before


def test_an_eps_that_is_zero_in_float32_is_taken_for_float64_and_refused_by_every_optimizer() -> (
    None
):
    x = np.ones(3)
    opt = Adadelta(x, eps=1e-46)
    opt.step(np.zeros(3))
    assert np.isfinite(x).all()
    for make in (Adam, RMSprop, adadelta.Adagrad):
        with pytest.raises(ValueError, match="Invalid eps value: 1e-46"):
            make([np.ones(3, np.float32)], eps=1e-46)
    groups = [{"params": [np.ones(3)]}, {"params": [np.ones(3, np.float32)], "eps": 1e-46}]
    with pytest.raises(ValueError, match=r"must be > 0 in float32"):
        Adadelta(groups)


# --- fuzzing: refusals change nothing, state dicts round trip, for every format ---


def _compact_mutations(
    opt: Adadelta, params: list[np.ndarray], grads: list[np.ndarray], draw: Any
) -> dict[str, Callable[[], list[np.ndarray]]]:
    i = draw(st.integers(0, len(params) - 1))
    p, record = params[i], opt.state[i]
    arrays = [k for k, v in record.items() if isinstance(v, np.ndarray)]

    def state(key: str, value: Any) -> Callable[[], list[np.ndarray]]:
        def set_() -> list[np.ndarray]:
            record[key] = value
            return grads

        return set_

    def read_only() -> list[np.ndarray]:
        p.flags.writeable = False
        return grads

    def retype() -> list[np.ndarray]:
        p.dtype = np.int32  # type: ignore[misc]
        return grads

    def grad(value: Any) -> Callable[[], list[np.ndarray]]:
        return lambda: [*grads[:i], value, *grads[i + 1 :]]

    mutations: dict[str, Callable[[], list[np.ndarray]]] = {
        "read-only": read_only,
        "retype": retype,
        "step": state("step", -1),
        "seed": state("seed", 1.5),
        "unknown": state("bogus", np.zeros(3)),
        "eps": lambda: (opt.param_groups[0].__setitem__("eps", 1e-50), grads)[1],
        "grad-dtype": grad(np.zeros(p.shape)),
    }
    if p.size:
        mutations["grad-nan"] = grad(np.full(p.shape, np.nan, np.float32))
    others = [q for j, q in enumerate(params) if j != i and q.size]
    if others:  # another parameter's memory, broadcast to the gradient's shape
        mutations["grad-alias"] = grad(np.broadcast_to(others[0].reshape(-1)[0, ...], p.shape))
    for key in arrays:
        value = record[key]
        wrong = np.float64 if value.dtype == np.float32 else np.float32
        mutations |= {
            f"{key}-long": state(key, np.zeros(value.size + 7, value.dtype)),
            f"{key}-dtype": state(key, value.astype(wrong)),
            f"{key}-frozen": state(
                key, np.frombuffer(value.tobytes(), value.dtype).reshape(value.shape)
            ),
        }
        if value.size:
            other = record[arrays[1] if key == arrays[0] else arrays[0]]
            mutations[f"{key}-short"] = state(key, value.ravel()[:-1])
            if other.dtype == value.dtype and other.shape == value.shape:
                mutations[f"{key}-alias"] = state(key, other)
    return mutations


@FAST
@given(data=st.data())
def test_fuzz_refused_compact_steps_change_nothing(data: Any) -> None:
    state_dtype = data.draw(st.sampled_from(ALL_FORMATS))
    shapes = data.draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    params = [np.linspace(0.5, 1, int(np.prod(s)), dtype=np.float32).reshape(s) for s in shapes]
    opt = Adadelta(params, state_dtype=state_dtype)
    opt.fused = data.draw(st.booleans())
    grads = [np.full(p.shape, 0.25, np.float32) for p in params]
    for _ in range(data.draw(st.integers(1, 2))):
        opt.step(grads)
    originals = list(params)
    mutations = _compact_mutations(opt, params, grads, data.draw)
    name = data.draw(st.sampled_from(sorted(mutations)))
    step_grads = mutations[name]()
    before = snapshot(opt, originals)
    with pytest.raises(DOCUMENTED) as refused:
        opt.step(step_grads)
    assert snapshot(opt, originals) == before, (name, refused.value)
    assert str(refused.value)


@FAST
@given(data=st.data())
def test_fuzz_state_dicts_round_trip_between_formats(data: Any) -> None:
    """Any run's state dict loads back into a new optimizer of its format and continues the
    run bit for bit; converted to float32 and back (to nearest) it loads too."""
    state_dtype = data.draw(st.sampled_from(FORMATS))
    shapes = data.draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    params = [np.linspace(-1, 1, int(np.prod(s)), dtype=np.float32).reshape(s) for s in shapes]
    twins = [p.copy() for p in params]
    opt = Adadelta(params, state_dtype=state_dtype)
    opt.fused = data.draw(st.booleans())
    grads = [np.full(p.shape, 0.25, np.float32) for p in params]
    for _ in range(data.draw(st.integers(0, 2))):
        opt.step(grads)
    for p, t in zip(params, twins, strict=True):
        t[...] = p
    resumed = Adadelta(twins, state_dtype=state_dtype)
    resumed.fused = opt.fused
    resumed.load_state_dict(opt.state_dict())
    opt.step(grads)
    resumed.step(grads)
    assert snapshot(resumed, twins) == snapshot(opt, params)
    other = data.draw(st.sampled_from(ALL_FORMATS))
    moved = convert_state(convert_state(opt.state_dict(), None), other)
    Adadelta([p.copy() for p in params], state_dtype=other).load_state_dict(moved)
