"""Compact ADADELTA state (``Adadelta(params, state_dtype=...)``): the formats, the exactness of
the step against the float32 step on the dequantized state, stochastic rounding, state dicts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numba
import numpy as np
import pytest

import adadelta
from adadelta import Adadelta, convert_state, rules
from adadelta.kernels import compact

FORMATS = compact.FORMATS
CONFIGS = [
    {},
    {"lr": 0.5, "rho": 0.9, "eps": 1e-8, "weight_decay": 0.01},
    {"rho": 0.99, "eps": 1e-4, "maximize": True, "preset": "keras", "weight_decay": 0.1},
    {"lr": 0.5, "maximize": True},  # with the two above, every flag on and off
]


def _data(n: int, seed: int = 0) -> tuple[np.ndarray[Any, Any], list[np.ndarray[Any, Any]]]:
    """Parameters, and gradients whose sizes span many orders of magnitude (as E[dx^2] does)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(np.float32)
    grads = [
        (rng.standard_normal(n) * np.exp(rng.uniform(-6, 2, n))).astype(np.float32)
        for _ in range(4)
    ]
    return x, grads


def _nearest_bfloat16(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Round-to-nearest (ties up) bfloat16 bits, chosen by comparing the two neighbours."""
    u = values.astype(np.float32).view(np.uint32)
    low = u & np.uint32(0xFFFF0000)
    low_f = low.view(np.float32).astype(np.float64)
    high_f = (low + np.uint32(0x10000)).view(np.float32).astype(np.float64)
    up = high_f - values >= 0
    up &= (values - low_f) >= (high_f - values)
    return ((low >> np.uint32(16)) + up).astype(np.uint16)  # type: ignore[no-any-return]


def _nearest_float8(values: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], Any]:
    """Nearest float8 codes and the scales: each block's largest value over 1.875."""
    flat = values.astype(np.float32).ravel()
    blocks = -(-flat.size // compact.BLOCK)
    scales = np.array(
        [flat[b * 256 : (b + 1) * 256].max() for b in range(blocks)], np.float32
    ) / np.float32(compact.FLOAT8_MAX)
    table = compact.FLOAT8_VALUES.astype(np.float64)
    codes = np.empty(flat.size, np.uint8)
    for b in range(blocks):
        part = flat[b * 256 : (b + 1) * 256]
        inverse = np.float32(1) / scales[b] if scales[b] > 0 else np.float32(0)
        q = (part * inverse).astype(np.float64)
        distance = np.abs(q[:, None] - table[None, :])
        # ties go up: the last of the equally near codes
        codes[b * 256 : b * 256 + part.size] = 255 - np.argmin(distance[:, ::-1], axis=1)
    return codes.reshape(values.shape), scales


def _float32_twin(opt: Adadelta, x: np.ndarray[Any, Any], fused: bool) -> Adadelta:
    """A float32-state optimizer on a copy of ``x`` whose state is ``opt``'s, dequantized."""
    twin = Adadelta(x.copy(), **{k: v for k, v in opt.defaults.items() if k in _KEYS})
    twin.param_groups[0].update({k: v for k, v in opt.param_groups[0].items() if k != "params"})
    twin.load_state_dict(convert_state(opt.state_dict(), None))
    twin.fused = fused
    return twin


_KEYS = ("lr", "rho", "eps", "weight_decay", "maximize")


# --- the formats ---


def test_float8_codes_are_an_increasing_log_scale() -> None:
    values = compact.FLOAT8_VALUES.astype(np.float64)
    assert values[0] == 0 and values[255] == compact.FLOAT8_MAX
    assert np.all(np.diff(values) > 0)
    assert values[8] == 2.0**-30  # the smallest normal code: 9 decades below the largest
    gaps = values[9:] / values[8:-1] - 1
    assert 0.06 < gaps.min() and gaps.max() <= 0.125  # at most 12.5% apart


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_nearest_rounding_is_the_nearest_code(state_dtype: str) -> None:
    rng = np.random.default_rng(1)
    values = (np.exp(rng.uniform(-30, 3, 3000))).astype(np.float32)
    values[::97] = 0
    stored = compact.quantize(values, compact.NEAREST, state_dtype)
    if state_dtype == "bfloat16":
        np.testing.assert_array_equal(stored["codes"], _nearest_bfloat16(values))
    else:
        codes, scales = _nearest_float8(values)
        np.testing.assert_array_equal(stored["scales"], scales)
        np.testing.assert_array_equal(stored["codes"], codes)
    state = {"E": stored["codes"], "E_g2_scale": stored.get("scales")}
    back = compact.dequantize(
        {"E_g2": state["E"], "E_g2_scale": state["E_g2_scale"]}, "E_g2", state_dtype
    )
    big = values > values.max() * 1e-8  # float8: the values above its 9 decades' floor
    relative = np.abs(back[big] / values[big] - 1)
    assert relative.max() <= (2.0**-8 if state_dtype == "bfloat16" else 1 / 16) * 1.001


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_stochastic_rounding_is_unbiased(state_dtype: str) -> None:
    # one value, rounded with 4000 keys: the mean of the stored values is the value
    values = np.full(4000, 0.3537, np.float32)
    values[::256] = 1.0  # float8: each block's scale
    rest = np.arange(values.size) % 256 != 0
    means = []
    for key in range(40):
        bits = compact.random_bits(compact.stream_key(7, key), values.size) & np.uint64(0xFFFF)
        stored = compact.quantize(values, bits, state_dtype)
        state = {"E_g2": stored["codes"], "E_g2_scale": stored.get("scales")}
        means.append(compact.dequantize(state, "E_g2", state_dtype)[rest].mean())
    gap = 2.0**-9 if state_dtype == "bfloat16" else 0.3537 / 10
    assert abs(np.mean(means) - 0.3537) < gap / 100
    nearest = compact.quantize(values, compact.NEAREST, state_dtype)
    state = {"E_g2": nearest["codes"], "E_g2_scale": nearest.get("scales")}
    assert abs(compact.dequantize(state, "E_g2", state_dtype)[rest].mean() - 0.3537) > gap / 20


# --- the step: exactness, fused against reference, reproducibility ---


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("state_dtype", FORMATS)
def test_step_is_the_float32_step_on_the_dequantized_state_rounded_once(
    state_dtype: str, config: dict[str, Any], fused: bool
) -> None:
    """With stochastic rounding off, a compact step equals the float32 step (the fused kernel,
    or the rule) applied to the dequantized state, its new state rounded once to nearest."""
    x, grads = _data(40_001)  # parallel (>= PARALLEL_MIN), several chunks, a partial block
    opt = Adadelta(x, state_dtype=state_dtype, **config)
    opt.fused = fused
    assert opt._compact is not None
    opt._compact.stochastic = False
    for g in grads:
        twin = _float32_twin(opt, x, fused)
        twin_x = twin._leaves[0][0]
        opt.step(g)
        twin.step(g)
        np.testing.assert_array_equal(x, twin_x)  # bit for bit
        expected_g2, expected_dx2 = twin.state[0]["E_g2"], twin.state[0]["E_dx2"]
        state = opt.state[0]
        if state_dtype == "bfloat16":
            np.testing.assert_array_equal(state["E_g2"], _nearest_bfloat16(expected_g2))
            np.testing.assert_array_equal(state["E_dx2"], _nearest_bfloat16(expected_dx2))
        else:
            for key, expected in (("E_g2", expected_g2), ("E_dx2", expected_dx2)):
                codes, scales = _nearest_float8(expected)
                np.testing.assert_array_equal(state[f"{key}_scale"], scales)
                np.testing.assert_array_equal(state[key], codes)
        assert state["step"] == twin.state[0]["step"]


def _one_root_where_normal(
    x: np.ndarray[Any, Any],
    g: np.ndarray[Any, Any],
    E_g2: np.ndarray[Any, Any],
    E_dx2: np.ndarray[Any, Any],
    rho: float,
    eps: float,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The compact kernels' step in NumPy float32 (lr 1, no weight decay): the root of the
    quotient where it is a normal float32, the rule's two roots elsewhere, element by element.
    Returns (x, E[dx^2], where two roots were taken)."""
    f = np.float32
    Eg = f(rho) * E_g2 + f(1 - rho) * g * g
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        q = (E_dx2 + f(eps)) / (Eg + f(eps))
        normal = (q >= np.finfo(f).smallest_normal) & (q <= np.finfo(f).max)
        one = -np.sqrt(q) * g
    two = -(np.sqrt(E_dx2 + f(eps)) / np.sqrt(Eg + f(eps))) * g
    dx = np.where(normal, one, two)
    return x + f(1) * dx, f(rho) * E_dx2 + f(1 - rho) * dx * dx, ~normal


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("state_dtype", FORMATS)
def test_a_quotient_beyond_the_normal_range_takes_two_roots(state_dtype: str, fused: bool) -> None:
    """Where RMS[dx]^2 / RMS[g]^2 leaves float32's normal range (here eps 1e-30, E[dx^2] 1e10,
    E[g^2] 0: the quotient 1e40 is infinite), the compact step takes the rule's two roots for
    that element, and the root of the quotient for every other: it equals that step on the
    dequantized state, rounded once. (The root of the infinite quotient times a zero gradient
    was NaN.)"""
    n = 5000
    rng = np.random.default_rng(11)
    x = rng.standard_normal(n).astype(np.float32)
    opt = Adadelta(x, eps=1e-30, state_dtype=state_dtype)
    assert opt._compact is not None
    opt._compact.stochastic = False
    opt.step(rng.standard_normal(n).astype(np.float32))
    float_state = convert_state(opt.state_dict(), None)
    extreme = slice(1000, 1300)  # across blocks and chunks of each loop, not aligned with them
    float_state["state"][0]["E_dx2"][extreme] = 1e10
    float_state["state"][0]["E_g2"][extreme] = 0
    float_state["state"][0]["E_dx2"][4000:4010] = 1e-38  # a quotient below the normal range
    float_state["state"][0]["E_g2"][4000:4010] = 1e10
    opt.load_state_dict(convert_state(float_state, state_dtype))
    opt.fused = fused
    g = rng.standard_normal(n).astype(np.float32)
    g[extreme] = 0
    g[1100] = 1e-3  # one small gradient among them: a finite, large step
    old = convert_state(opt.state_dict(), None)["state"][0]
    expected_x, expected_dx2, two = _one_root_where_normal(
        x.copy(), g, old["E_g2"], old["E_dx2"], 0.95, 1e-30
    )
    assert two[4000:4010].all() and two[1000:1300].sum() == 299 and two.sum() == 309
    opt.step(g)
    assert np.isfinite(x).all()
    if fused:
        np.testing.assert_array_equal(x, expected_x)
    else:  # the rule: two roots everywhere
        np.testing.assert_array_equal(x[two], expected_x[two])
    if state_dtype == "bfloat16":
        codes = opt.state[0]["E_dx2"]
        expected = _nearest_bfloat16(expected_dx2)
        np.testing.assert_array_equal(
            codes if fused else codes[two], expected if fused else expected[two]
        )
    elif fused:
        codes, scales = _nearest_float8(expected_dx2)
        np.testing.assert_array_equal(opt.state[0]["E_dx2_scale"], scales)
        np.testing.assert_array_equal(opt.state[0]["E_dx2"], codes)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("state_dtype", FORMATS)
def test_fused_step_draws_the_reference_bits(state_dtype: str, config: dict[str, Any]) -> None:
    """The kernel and the reference (the rule, two square roots where the kernel takes one)
    round with the same random bits: their states agree but where the rule's value and the
    kernel's (an ulp or two apart) fall on two sides of a rounding threshold."""
    x, grads = _data(50_000, seed=2)
    x_ref = x.copy()
    fused, reference = (Adadelta(v, state_dtype=state_dtype, **config) for v in (x, x_ref))
    reference.fused = False
    for g in grads:
        fused.step(g)
        reference.step(g)
    # where a code differs, the parameter's next steps differ by up to a code's gap
    assert np.mean(~np.isclose(x, x_ref, rtol=1e-5, atol=1e-7)) < 2e-3
    for key in ("E_g2", "E_dx2"):
        a, b = (o.state[0][key].astype(np.int64) for o in (fused, reference))
        assert np.mean(a != b) < 1e-3 and np.abs(a - b).max() <= 1


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_runs_are_reproducible_and_independent_of_threads(state_dtype: str) -> None:
    x, grads = _data(100_000, seed=3)
    results = []
    for threads, seed in [(2, 0), (1, 0), (2, 1)]:
        y = x.copy()
        opt = Adadelta(y, state_dtype=state_dtype, seed=seed)
        previous = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
        try:
            for g in grads:
                opt.step(g)
        finally:
            numba.set_num_threads(previous)
        results.append((y, opt.state[0]["E_dx2"]))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert np.mean(results[0][1] != results[2][1]) > 0.1  # another seed, other bits


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_equal_shares_of_mixed_arrays_on_two_threads_give_one_threads_bits(
    state_dtype: str,
) -> None:
    """Arrays of mixed sizes, enough work for both threads: the shares of the work cut the
    arrays and float8's blocks elsewhere than one thread's pass does; the bits are the same."""
    sizes = (900_001, 3, 5000, 200_003, 256, 70_000)
    parts = adadelta.kernels.parallel._threads(sum(sizes))
    assert parts == min(2, numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    results = []
    for threads in (2, 1):
        rng = np.random.default_rng(21)
        params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        opt = Adadelta(params, state_dtype=state_dtype, seed=4)
        previous = numba.get_num_threads()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
        try:
            for _ in range(3):
                opt.step([(rng.standard_normal(n) * 1e-2).astype(np.float32) for n in sizes])
        finally:
            numba.set_num_threads(previous)
        results.append((params, opt.state_dict()["state"]))
    (two, two_state), (one, one_state) = results
    for i in range(len(sizes)):
        assert two[i].tobytes() == one[i].tobytes(), i
        for key, value in one_state[i].items():
            assert np.asarray(two_state[i][key]).tobytes() == np.asarray(value).tobytes(), key


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_resumed_run_draws_the_same_bits(state_dtype: str, tmp_path: Path) -> None:
    x, grads = _data(40_000, seed=4)
    y = x.copy()
    straight = Adadelta(x, state_dtype=state_dtype, seed=5)
    for g in grads:
        straight.step(g)
    first = Adadelta(y, state_dtype=state_dtype, seed=5)
    for g in grads[:2]:
        first.step(g)
    adadelta.save(tmp_path / "state.npz", first.state_dict())
    resumed = Adadelta(y, state_dtype=state_dtype)  # another seed: the state dict's wins
    resumed.load_state_dict(adadelta.load(tmp_path / "state.npz"))
    for g in grads[2:]:
        resumed.step(g)
    np.testing.assert_array_equal(x, y)
    for key, value in straight.state[0].items():
        np.testing.assert_array_equal(resumed.state[0][key], value)


def test_stochastic_rounding_keeps_a_slow_average_moving() -> None:
    """rho 0.99: E[g^2] moves by 1% of its distance to g^2 a step, less than half a bfloat16
    gap near 1; rounded to nearest it stops short of 1, rounded stochastically it gets there."""
    means = {}
    for stochastic in (True, False):
        x = np.zeros(4096, np.float32)
        opt = Adadelta(x, rho=0.99, state_dtype="bfloat16")
        assert opt._compact is not None
        opt._compact.stochastic = stochastic
        for _ in range(800):
            opt.step(np.ones_like(x))
        means[stochastic] = compact.dequantize(opt.state[0], "E_g2", "bfloat16").mean()
    exact = 1 - 0.99**800
    assert abs(means[True] - exact) < 2e-3
    assert means[False] < 0.9


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_training_follows_the_float32_state(state_dtype: str) -> None:
    """A least-squares problem: the compact run gets where the float32 run does. (Run on, past
    the minimum, ADADELTA's steps grow again and the loss rises, with float8 state much
    faster: see the README's "Compact state".)"""
    rng = np.random.default_rng(6)
    A = rng.standard_normal((400, 100)).astype(np.float32)
    b = A @ rng.standard_normal(100).astype(np.float32)
    b += 0.1 * rng.standard_normal(400).astype(np.float32)
    losses = []
    for fmt in (None, state_dtype):
        w = np.zeros(100, np.float32)
        opt = Adadelta(w, state_dtype=fmt, eps=1e-4)
        for _ in range(200):
            opt.step(A.T @ (A @ w - b) / 400)
        losses.append(float(np.mean((A @ w - b) ** 2)))
    assert losses[0] < 0.01 and abs(losses[1] - losses[0]) < 0.1 * losses[0]


# --- bad input, state dicts, conversion, memory ---


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_state_bytes_and_dtypes(state_dtype: str) -> None:
    x = np.zeros(100_000, np.float32)
    opt = Adadelta(x, state_dtype=state_dtype)
    opt.step(np.ones_like(x))
    state = opt.state_dict()["state"][0]
    arrays = [v for v in state.values() if isinstance(v, np.ndarray)]
    per_parameter = sum(a.nbytes for a in arrays) / x.size
    if state_dtype == "bfloat16":
        assert per_parameter == 4 and state["E_g2"].dtype == np.uint16
    else:
        assert per_parameter <= 2.1 and state["E_g2"].dtype == np.uint8
        assert state["E_g2_scale"].shape == (-(-x.size // 256),)
    assert isinstance(state["seed"], int)


def test_bad_arguments() -> None:
    x = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="Invalid state_dtype value: 'int4'"):
        Adadelta(x, state_dtype="int4")
    with pytest.raises(ValueError, match="Invalid seed value: -1"):
        Adadelta(x, state_dtype="bfloat16", seed=-1)
    with pytest.raises(TypeError, match=r"params: state_dtype='float8' needs float32 parameters"):
        Adadelta(np.zeros(3), state_dtype="float8")
    opt = Adadelta([{"params": [x]}], state_dtype="bfloat16")
    with pytest.raises(TypeError, match="needs float32"):
        opt.add_param_group({"params": [np.zeros(2)]})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_non_finite_gradient_changes_nothing(state_dtype: str) -> None:
    x, grads = _data(50_000, seed=7)
    opt = Adadelta(x, state_dtype=state_dtype)
    opt.step(grads[0])
    before_x, before = x.copy(), opt.state_dict()
    bad = grads[1].copy()
    bad[-3] = np.nan
    with pytest.raises(adadelta.NonFiniteGradientError, match="1 of 50000"):
        opt.step(bad)
    np.testing.assert_array_equal(x, before_x)
    for key, value in before["state"][0].items():
        np.testing.assert_array_equal(opt.state[0][key], value)


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_kernel_checks_every_gradient_before_it_writes(state_dtype: str) -> None:
    """Steps after the first check the gradients inside the kernel's call (one group of
    contiguous arrays): a bad value anywhere, in any array, on either thread, changes nothing,
    and the error names that array. On the first step (no state yet) and with two groups the
    check is a pass of its own; it refuses the same way, and leaves no state behind."""
    sizes = (1000, 1 << 20, 3000)  # the second: both threads
    rng = np.random.default_rng(11)
    params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    assert sizes[1] >= adadelta.kernels.PARALLEL_MIN
    grads = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    first = Adadelta(params, state_dtype=state_dtype)
    bad = [g.copy() for g in grads]
    bad[1][-5] = np.inf  # the second thread's part
    with pytest.raises(adadelta.NonFiniteGradientError, match=r"params\[1\]: 1 of 1048576"):
        first.step(bad)
    assert first.state == [{"step": 0}] * 3
    opt = Adadelta(params, state_dtype=state_dtype)
    opt.step(grads)
    for where, value in [(1, np.inf), (1, np.nan), (2, -np.inf), (0, np.nan)]:
        before = [p.copy() for p in params]
        kept = opt.state_dict()
        bad = [g.copy() for g in grads]
        bad[where][where * 7] = value
        with pytest.raises(adadelta.NonFiniteGradientError, match=rf"params\[{where}\]"):
            opt.step(bad)
        for p, b in zip(params, before, strict=True):
            np.testing.assert_array_equal(p, b)
        for i, state in kept["state"].items():
            for key, saved in state.items():
                np.testing.assert_array_equal(opt.state[i][key], saved)
    two_groups = Adadelta([{"params": params[:1]}, {"params": params[1:]}], state_dtype=state_dtype)
    two_groups.step([grads[:1], grads[1:]])
    before = [p.copy() for p in params]
    bad_second = grads[1].copy()
    bad_second[-1] = np.nan
    with pytest.raises(
        adadelta.NonFiniteGradientError, match=r"param_groups\[1\]\['params'\]\[0\]: 1 of 1048576"
    ):
        two_groups.step([[grads[0]], [bad_second, grads[2]]])
    for p, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(p, b)


def test_load_refuses_another_format_and_changes_nothing() -> None:
    x, grads = _data(1000, seed=8)
    opts = {fmt: Adadelta(x.copy(), state_dtype=fmt) for fmt in (None, *FORMATS)}
    for opt in opts.values():
        opt.step(grads[0])
    dicts = {fmt: opt.state_dict() for fmt, opt in opts.items()}
    for target, opt in opts.items():
        kept = opt.state_dict()
        for source, state_dict in dicts.items():
            if source == target:
                continue
            with pytest.raises(ValueError, match=r"convert it first with adadelta.convert_state"):
                opt.load_state_dict(state_dict)
            for key, value in kept["state"][0].items():
                np.testing.assert_array_equal(opt.state[0][key], value)
    broken = dicts["float8"]
    kept_float8 = {k: np.copy(v) for k, v in opts["float8"].state[0].items()}
    broken["state"][0]["E_dx2_scale"] = broken["state"][0]["E_dx2_scale"][:-1]
    with pytest.raises(ValueError, match=r"'E_dx2_scale' must be a float32 array of shape \(4,\)"):
        opts["float8"].load_state_dict(broken)
    broken["state"][0]["E_dx2_scale"] = -np.ones(4, np.float32)
    with pytest.raises(ValueError, match="finite, non-negative scales"):
        opts["float8"].load_state_dict(broken)
    # a finite scale whose largest code decodes beyond float32 (3e38 x 1.875): the step would
    # make the state infinite, and the state dict after it would be refused
    broken["state"][0]["E_dx2_scale"] = np.full(4, 3e38, np.float32)
    broken["state"][0]["E_dx2"] = np.full(1000, 255, np.uint8)
    with pytest.raises(ValueError, match="'E_dx2' times 'E_dx2_scale' gives values beyond"):
        opts["float8"].load_state_dict(broken)
    np.testing.assert_array_equal(opts["float8"].state[0]["E_dx2"], kept_float8["E_dx2"])
    broken = dicts["bfloat16"]
    broken["state"][0]["E_g2"][5] = 0xFFC0  # a NaN
    with pytest.raises(ValueError, match="'E_g2' holds NaN, infinity or negative values"):
        opts["bfloat16"].load_state_dict(broken)


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_convert_state_moves_a_run_between_formats(state_dtype: str) -> None:
    x, grads = _data(3000, seed=9)
    y = x.copy()
    plain = Adadelta(x)
    for g in grads[:2]:
        plain.step(g)
    converted = convert_state(plain.state_dict(), state_dtype, seed=3)
    state = converted["state"][0]
    assert state["seed"] == compact.parameter_seed(3, 0)
    expected = compact.quantize(plain.state[0]["E_dx2"], compact.NEAREST, state_dtype)
    np.testing.assert_array_equal(state["E_dx2"], expected["codes"])
    compact_opt = Adadelta(y, state_dtype=state_dtype)
    compact_opt.load_state_dict(converted)
    y[...] = x
    for g in grads[2:]:
        compact_opt.step(g)
        plain.step(g)
    np.testing.assert_allclose(y, x, rtol=0, atol=0.01 * np.abs(x - y).max() + 1e-3)
    # and back: float32 state is the dequantized state, exactly
    back = convert_state(compact_opt.state_dict(), None)["state"][0]
    np.testing.assert_array_equal(
        back["E_g2"], compact.dequantize(compact_opt.state[0], "E_g2", state_dtype)
    )
    assert set(back) == {"step", "E_g2", "E_dx2"} and back["step"] == 4
    Adadelta(y.copy()).load_state_dict(convert_state(compact_opt.state_dict(), None))


def test_convert_state_checks_its_format() -> None:
    with pytest.raises(ValueError, match="Invalid state_dtype value: 'int8'"):
        convert_state({"state": {}, "param_groups": []}, "int8")


def test_rule_reference_is_the_paper_rule() -> None:
    """The reference step of a state that is exactly representable is the rule's step."""
    x = np.array([1.0, -2.0, 0.5], np.float32)
    state = {"step": 0, "seed": 1, **compact.empty_state(x, "bfloat16")}
    hyper = dict(lr=1.0, rho=0.95, eps=1e-6, weight_decay=0.0)
    g = np.array([0.5, 0.5, -1.0], np.float32)
    expected, _ = rules.adadelta(
        x.copy(),
        g,
        rules.AdadeltaState(0, None, None),
        decoupled_weight_decay=False,
        maximize=False,
        **hyper,
    )
    compact.reference_step(
        x, g, state, "bfloat16", {**hyper, "decoupled_weight_decay": False, "maximize": False}
    )
    np.testing.assert_array_equal(x, expected)
    assert state["step"] == 1


def test_experiments_take_a_state_dtype(tmp_path: Path) -> None:
    from adadelta.app import experiments

    spec = experiments.RunSpec.of("ADADELTA", {"rho": 0.95, "eps": 1e-6}, "relu", 0, "float8")
    assert spec.name == "relu-ADADELTA-rho0.95-eps1e-06-float8-seed0"
    params = {"W": np.zeros(3, np.float32)}
    optimizer = spec.optimizer(params)
    assert isinstance(optimizer, Adadelta) and optimizer.state_dtype == "float8"
    baseline = experiments.RunSpec.of("ADADELTA", {"rho": 0.9, "eps": 1e-6}, "relu", 0)
    optimizer = baseline.optimizer({"W": np.zeros(3, np.float32)})
    assert isinstance(optimizer, Adadelta) and optimizer.state_dtype is None
    # the formats are the API's: float32 state is None, as adadelta.Adadelta has it
    odd = experiments.RunSpec.of("ADADELTA", {"rho": 0.9, "eps": 1e-6}, "relu", 0, "float32")
    with pytest.raises(ValueError, match="Invalid state_dtype value: 'float32'"):
        odd.optimizer({"W": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="state_dtype is ADADELTA's only"):
        experiments.RunSpec.of("SGD", {"lr": 0.1}, "relu", 0, "bfloat16")
    ctx = experiments.Context(None, tmp_path, state_dtype="bfloat16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="state_dtype applies to"):
        experiments.reproduce(["table1"], ctx)
