"""adadelta.optax: the optax transformation against the NumPy optimizers (float64 to the
conformance tolerance of tests/test_agreement.py, float32 and compact state bit for bit), optax's
own demands of a transformation, and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")

import jax.numpy as jnp  # noqa: E402

import adadelta  # noqa: E402
from adadelta.optax import AdadeltaState, Float8, scale_by_adadelta, state_bytes  # noqa: E402
from adadelta.optax import adadelta as optax_adadelta  # noqa: E402
from optimizer_matrix import CONFIGS, OptimizerConfig  # noqa: E402
from test_agreement import (  # noqa: E402
    TOLERANCE,
    X0,
    elementwise_rel_diff,
    lockstep,
    rel_diff,
    report,
)
from test_agreement import optax_x64 as optax_x64  # noqa: E402 (the fixture)

FORMATS = [None, "bfloat16", "float8"]
MIXED = {"E_g2": "bfloat16", "E_dx2": "float8"}  # both compact formats in one state


def _loss(x: Any) -> Any:
    return jnp.sum(x**2)


def _descend(transform: Any, steps: int = 200) -> float:
    """|x|^2 after ``steps`` steps from (3, -2) (|x|^2 = 13)."""

    def step(carry: Any, _: Any) -> Any:
        x, state = carry
        updates, state = transform.update(jax.grad(_loss)(x), state, x)
        return (optax.apply_updates(x, updates), state), None

    x = jnp.array([3.0, -2.0])
    (x, _), _ = jax.lax.scan(step, (x, transform.init(x)), length=steps)
    return float(_loss(x))


@pytest.mark.parametrize(
    "make",
    [
        optax_adadelta,
        lambda: optax_adadelta(preset="optax"),
        lambda: optax_adadelta(state_dtype="bfloat16"),
        lambda: optax_adadelta(state_dtype="float8"),
        lambda: optax.chain(scale_by_adadelta(), optax.scale_by_learning_rate(1.0)),
        pytest.param(
            optax.adadelta,
            marks=pytest.mark.xfail(
                strict=True, reason="optax.adadelta() without a learning rate ascends the loss"
            ),
        ),
    ],
    ids=["default", "preset-optax", "bfloat16", "float8", "chain", "optax.adadelta()"],
)
def test_descends_by_default(make: Any) -> None:
    assert _descend(make()) < 13.0 - 1.0


# --- conformance: float64 against the NumPy rule and optax.adadelta, the shared numbers ---

conformance_configs = [
    config for config in CONFIGS if config.cls is adadelta.Adadelta and not config.maximize
]


def _ours(config: OptimizerConfig) -> Any:
    kwargs = dict(config.kwargs)
    if "lr" in kwargs:
        kwargs["learning_rate"] = kwargs.pop("lr")
    return optax_adadelta(**kwargs)


@pytest.mark.parametrize("config", conformance_configs, ids=[c.id for c in conformance_configs])
def test_float64_agrees_with_the_rule_and_optax(config: OptimizerConfig, optax_x64: Any) -> None:
    d = config.make(np.zeros(1)).defaults
    peers = {"ours": _ours(config)}
    if not d["decoupled_weight_decay"]:  # optax.adadelta, its sign corrected by a learning rate
        peers["optax"] = optax.adadelta(d["lr"], d["rho"], d["eps"], d["weight_decay"])
    params = {name: {k: jnp.asarray(v) for k, v in X0.items()} for name in peers}
    states = {name: t.init(params[name]) for name, t in peers.items()}
    updates = {name: jax.jit(t.update) for name, t in peers.items()}
    worst = {name: 0.0 for name in peers}
    worst_state = 0.0
    for g, ours_numpy, opt in lockstep(config):
        for name in peers:
            grads = {k: jnp.asarray(v) for k, v in g.items()}
            u, states[name] = updates[name](grads, states[name], params[name])
            params[name] = optax.apply_updates(params[name], u)
            theirs = {k: np.asarray(v) for k, v in params[name].items()}
            assert theirs["W"].dtype == np.float64
            worst[name] = max(worst[name], rel_diff(ours_numpy, theirs))
        state = states["ours"]
        for numpy_state, key in zip(opt.state, X0, strict=True):
            for field in ("E_g2", "E_dx2"):
                ours_value = np.asarray(getattr(state, field)[key])
                worst_state = max(worst_state, elementwise_rel_diff(numpy_state[field], ours_value))
    for name, value in worst.items():
        report("jax", f"{config.id} ({name})", value, worst_state if name == "ours" else None)
        assert value <= TOLERANCE
    assert worst_state <= TOLERANCE
    assert int(states["ours"].count) == 250


def test_first_step_is_the_known_number(optax_x64: Any) -> None:
    g, rho, eps = np.array([2.0, -0.5, 1e-3]), 0.9, 1e-4
    transform = optax_adadelta(rho=rho, eps=eps)
    updates, _ = transform.update(jnp.asarray(g), transform.init(jnp.zeros(3)))
    expected = -np.sqrt(eps) / np.sqrt((1 - rho) * g**2 + eps) * g
    np.testing.assert_allclose(np.asarray(updates), expected, rtol=1e-15)


# --- float32 and compact state: the NumPy optimizer's bits ---

SHAPES = [(3, 300), (5,), (), (700,)]  # blocks of 256 cut inside arrays, a scalar


def _gradients(rng: np.random.Generator) -> list[np.ndarray]:
    """float32 gradients whose elements' scales span 1e-4 to 1e3 (float8's subnormal codes)."""
    return [
        np.asarray(rng.standard_normal(s) * 10.0 ** rng.uniform(-4, 3, s), np.float32).reshape(s)
        for s in SHAPES
    ]


@pytest.mark.parametrize(
    "kwargs",
    [{"preset": "torch"}, {"learning_rate": 0.5, "rho": 0.99, "eps": 1e-7, "weight_decay": 0.1}],
    ids=["torch", "lr-wd"],
)
@pytest.mark.parametrize("state_dtype", FORMATS, ids=["float32", "bfloat16", "float8"])
def test_same_bits_as_the_numpy_optimizer(kwargs: dict[str, Any], state_dtype: Any) -> None:
    """float32 parameters, 12 steps under one jit with apply_updates: the parameters and the
    state equal adadelta.Adadelta's (its fused kernels) bit for bit, for the same seed."""
    rng = np.random.default_rng(5)
    x0 = [np.asarray(rng.standard_normal(s), np.float32).reshape(s) for s in SHAPES]
    numpy_params = [x.copy() for x in x0]
    numpy_kwargs = {("lr" if k == "learning_rate" else k): v for k, v in kwargs.items()}
    reference = adadelta.Adadelta(numpy_params, state_dtype=state_dtype, seed=11, **numpy_kwargs)
    transform = optax_adadelta(state_dtype=state_dtype, seed=11, **kwargs)

    @jax.jit
    def step(params: Any, state: Any, grads: Any) -> Any:
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    params = [jnp.asarray(x) for x in x0]
    state = transform.init(params)
    for _ in range(12):
        grads = _gradients(rng)
        reference.step([g.copy() for g in grads])
        params, state = step(params, state, [jnp.asarray(g) for g in grads])
    for i, (ours, theirs) in enumerate(zip(params, numpy_params, strict=True)):
        assert np.asarray(ours).tobytes() == theirs.tobytes(), f"params[{i}]"
        for field in ("E_g2", "E_dx2"):
            saved, stored = reference.state[i], getattr(state, field)[i]
            if state_dtype == "float8":
                assert np.asarray(stored.codes).tobytes() == saved[field].tobytes()
                assert np.asarray(stored.scales).tobytes() == saved[f"{field}_scale"].tobytes()
            else:
                assert np.asarray(stored).tobytes() == saved[field].tobytes(), f"{field}[{i}]"
    assert int(state.count) == reference.state[0]["step"] == 12


def test_per_accumulator_formats_and_their_memory() -> None:
    params = {"w": jnp.zeros((1000, 1000)), "b": jnp.zeros(1000)}
    n = 1_001_000
    per_parameter = {
        name: state_bytes(optax_adadelta(state_dtype=form).init(params)) / n
        for name, form in [
            ("float32", None),
            ("bfloat16", "bfloat16"),
            ("float8", "float8"),
            ("mixed", {"E_g2": "bfloat16", "E_dx2": "float8"}),
        ]
    }
    assert per_parameter["float32"] == pytest.approx(8.0, abs=1e-4)
    assert per_parameter["bfloat16"] == pytest.approx(4.0, abs=1e-4)
    assert 2.0 < per_parameter["float8"] <= 2.1
    assert 3.0 < per_parameter["mixed"] <= 3.05
    state = optax_adadelta(state_dtype={"E_g2": "bfloat16", "E_dx2": "float8"}).init(params)
    assert state.E_g2["w"].dtype == jnp.bfloat16 and isinstance(state.E_dx2["w"], Float8)
    assert _descend(optax_adadelta(state_dtype={"E_g2": "float32", "E_dx2": "float8"})) < 12.0


# --- what optax asks of a transformation ---


def _mixed_params() -> dict[str, Any]:
    return {
        "dense": {"w": jnp.ones((4, 300), jnp.float32), "b": jnp.zeros(300, jnp.float32)},
        "embed": jnp.full((7, 3), 0.5, jnp.bfloat16),
        "scale": jnp.asarray(2.0, jnp.float16),
        "list": [jnp.ones(3, jnp.float32)],
    }


@pytest.mark.parametrize(
    "state_dtype",
    [None, "float32", MIXED],
    ids=["params-dtype", "float32", "mixed"],
)
def test_jit_shapes_dtypes_and_no_recompilation(state_dtype: Any) -> None:
    params = _mixed_params()
    transform = optax_adadelta(
        state_dtype=state_dtype, learning_rate=optax.linear_schedule(1, 0, 9)
    )
    state = transform.init(params)
    assert isinstance(state, AdadeltaState)
    abstract = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype), params)
    from_shapes = transform.init(abstract)
    kinds = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)  # noqa: E731
    assert kinds(from_shapes) == kinds(state)
    update = jax.jit(transform.update)
    grads = jax.tree.map(lambda p: jnp.full(p.shape, 0.25, p.dtype), params)
    for step in range(3):
        updates, new_state = update(grads, state, params)
        assert kinds(new_state) == kinds(state)  # stable dtypes
        assert kinds(updates) == kinds(params)
        params, state = optax.apply_updates(params, updates), new_state
        assert int(state.count) == step + 1
    assert update._cache_size() == 1  # the second and third calls reused the first compilation
    assert all(bool(jnp.all(u < 0)) for u in jax.tree.leaves(updates))


def test_learning_rate_schedule_scales_the_update_only() -> None:
    """The schedule's value at each step multiplies that step (powers of two: exactly); the
    state is the constant learning rate's."""
    scheduled = optax_adadelta(learning_rate=lambda count: 0.5**count)
    constant = optax_adadelta(learning_rate=1.0)
    x = jnp.linspace(-1.0, 1.0, 9)
    s1, s2 = scheduled.init(x), constant.init(x)
    update1, update2 = jax.jit(scheduled.update), jax.jit(constant.update)
    for k in range(4):
        g = jnp.cos(x + k)
        u1, s1 = update1(g, s1)
        u2, s2 = update2(g, s2)
        np.testing.assert_array_equal(np.asarray(u1), np.asarray(u2) * 0.5**k)
    np.testing.assert_array_equal(np.asarray(s1.E_dx2), np.asarray(s2.E_dx2))


def test_building_block_in_a_chain_equals_adadelta() -> None:
    params = [jnp.linspace(-2.0, 2.0, 50)]
    chained = optax.chain(scale_by_adadelta(rho=0.9), optax.scale_by_learning_rate(0.3))
    direct = optax_adadelta(learning_rate=0.3, rho=0.9)
    s1, s2 = chained.init(params), direct.init(params)
    update1, update2 = jax.jit(chained.update), jax.jit(direct.update)
    for k in range(3):
        grads = [jnp.sin(params[0] * (k + 1))]
        u1, s1 = update1(grads, s1)
        u2, s2 = update2(grads, s2)
        assert np.asarray(u1[0]).tobytes() == np.asarray(u2[0]).tobytes()


@pytest.mark.parametrize("state_dtype", [None, MIXED], ids=["float32", "mixed"])
def test_multisteps_accumulates_then_steps(state_dtype: Any) -> None:
    """optax.MultiSteps(every_k_schedule=2): the first mini-step changes nothing, the second
    takes the step of the mean gradient."""
    params = {"w": jnp.linspace(-1.0, 1.0, 300).reshape(3, 100), "b": jnp.ones(3)}
    g1 = jax.tree.map(lambda p: jnp.cos(p), params)
    g2 = jax.tree.map(lambda p: jnp.sin(3 * p), params)
    multi = optax.MultiSteps(optax_adadelta(state_dtype=state_dtype), every_k_schedule=2)
    single = optax_adadelta(state_dtype=state_dtype)
    state = multi.init(params)
    update = jax.jit(multi.update)
    u, state = update(g1, state, params)
    assert all(not bool(jnp.any(leaf)) for leaf in jax.tree.leaves(u))
    u, state = update(g2, state, params)
    mean = jax.tree.map(lambda a, b: (a + b) / 2, g1, g2)
    expected, _ = jax.jit(single.update)(mean, single.init(params), params)
    for ours, theirs in zip(jax.tree.leaves(u), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-5, atol=1e-7)


def test_chain_with_clipping_and_weight_decay_descends() -> None:
    transform = optax.chain(optax.clip_by_global_norm(1.0), optax_adadelta(weight_decay=1e-3))
    assert _descend(transform, 100) < 12.5


# --- non-finite gradients: refused with check_finite=True, let through by default ---


@pytest.mark.parametrize("state_dtype", [None, MIXED], ids=["float32", "mixed"])
def test_non_finite_gradients_change_nothing(state_dtype: Any) -> None:
    params = {"a": jnp.ones(300), "b": jnp.ones((2, 2))}
    transform = optax_adadelta(state_dtype=state_dtype, check_finite=True)
    update = jax.jit(transform.update)
    good = jax.tree.map(jnp.ones_like, params)
    _, state = update(good, transform.init(params), params)
    for bad_value in (jnp.nan, jnp.inf):
        bad = {"a": good["a"], "b": good["b"].at[1, 0].set(bad_value)}
        updates, new_state = update(bad, state, params)
        assert all(not bool(jnp.any(leaf)) for leaf in jax.tree.leaves(updates))
        for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
            assert np.asarray(before).tobytes() == np.asarray(after).tobytes()
    for unchecked in (
        optax_adadelta(state_dtype=state_dtype, check_finite=False),
        optax_adadelta(state_dtype=state_dtype),  # the default: optax's behaviour
    ):
        updates, _ = jax.jit(unchecked.update)(bad, state, params)
        assert bool(jnp.isnan(updates["b"][1, 0])) and bool(jnp.isfinite(updates["a"]).all())


# --- errors ---


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rho": 1.0}, "Invalid rho value: 1.0 (must be in [0, 1))"),
        ({"eps": 0.0}, "Invalid eps value: 0.0 (must be > 0)"),
        ({"learning_rate": -1.0}, "Invalid learning_rate value: -1.0 (must be >= 0)"),
        ({"learning_rate": "0.1"}, "Invalid learning_rate value: '0.1' (must be a real number)"),
        ({"weight_decay": float("nan")}, "Invalid weight_decay value: nan (must be finite)"),
        ({"preset": "adam"}, "Invalid preset value: 'adam'"),
        ({"state_dtype": "float16"}, "Invalid state_dtype value: 'float16'"),
        ({"state_dtype": {"E_g2": "int8"}}, "Invalid state_dtype['E_g2'] value: 'int8'"),
        ({"state_dtype": {"E_x": "float8"}}, "Invalid state_dtype keys: ['E_x']"),
        ({"seed": -1}, "Invalid seed value: -1 (must be a non-negative integer)"),
        ({"check_finite": "yes"}, "Invalid check_finite value: 'yes' (must be True or False)"),
    ],
)
def test_invalid_arguments_raise_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        optax_adadelta(**kwargs)
    assert str(info.value).startswith(message)


def test_mismatched_state_is_a_clear_error() -> None:
    params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
    grads = jax.tree.map(jnp.ones_like, params)
    bfloat16 = optax_adadelta(state_dtype="bfloat16")
    float32_state = optax_adadelta().init(params)
    with pytest.raises(ValueError, match=r"state\.E_g2\['b'\] must be a bfloat16 array"):
        bfloat16.update(grads, float32_state)
    with pytest.raises(ValueError, match=r"state\.E_g2 does not have the structure"):
        bfloat16.update({"w": grads["w"]}, bfloat16.init(params))
    with pytest.raises(ValueError, match=r"state\.E_g2\['w'\] must be a floating array of shape"):
        optax_adadelta().update({"w": jnp.ones((3, 2)), "b": grads["b"]}, float32_state)
    with pytest.raises(ValueError, match="must be the AdadeltaState that init returned"):
        optax_adadelta().update(grads, optax.adadelta(1.0).init(params))
    with pytest.raises(ValueError, match=r"Float8\(uint8 \(3,\), float32 \(1,\)\)"):
        optax_adadelta(state_dtype="float8").update(grads, bfloat16.init(params))
    with pytest.raises(ValueError, match=r"params\['n'\] has dtype int32"):
        optax_adadelta().init({"n": jnp.zeros(2, jnp.int32)})
    with pytest.raises(ValueError, match="weight_decay needs the params"):
        optax_adadelta(weight_decay=0.1).update(grads, float32_state)


# --- sharding: the state follows the parameters over two devices ---

SHARDING_SCRIPT = r"""
import json, jax, jax.numpy as jnp, numpy as np, optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from adadelta.optax import adadelta
assert len(jax.devices()) == 2, jax.devices()
sharding = NamedSharding(Mesh(np.array(jax.devices()), ("data",)), P("data"))
params = {"w": jax.device_put(jnp.linspace(-1.0, 1.0, 8 * 512).reshape(8, 512), sharding)}
grads = {"w": jax.device_put(jnp.cos(params["w"]), sharding)}
report = {}
for form in (None, "bfloat16", "float8"):
    t = adadelta(state_dtype=form)
    state = jax.jit(t.init)(params)
    step = jax.jit(lambda g, s, p: t.update(g, s, p))
    updates, state = step(grads, state, params)
    updates, state = step(grads, state, params)
    codes = lambda tree: tree["w"].codes if form == "float8" else tree["w"]
    local = jax.device_put(params, jax.devices()[0])
    local_step = jax.jit(lambda g, s, p: t.update(g, s, p))
    local_grads, t_state = jax.device_put(grads, jax.devices()[0]), t.init(local)
    for _ in range(2):
        expected, t_state = local_step(local_grads, t_state, local)
    report[str(form)] = {
        "updates": updates["w"].sharding.is_equivalent_to(sharding, 2),
        "E_g2": codes(state.E_g2).sharding.is_equivalent_to(sharding, 2),
        "E_dx2": codes(state.E_dx2).sharding.is_equivalent_to(sharding, 2),
        "same": bool((np.asarray(updates["w"]) == np.asarray(expected["w"])).all()),
    }
print(json.dumps(report))
"""


def test_state_is_sharded_like_the_parameters() -> None:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-c", SHARDING_SCRIPT], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {"updates": True, "E_g2": True, "E_dx2": True, "same": True}
    assert report == {form: expected for form in ("None", "bfloat16", "float8")}


def test_benchmark_runs_tiny_and_reports_every_peer(tmp_path: Any) -> None:
    """benchmarks/jax_step.py, tiny: every peer has a row cell (speed is not checked)."""
    out = tmp_path / "jax_step.md"
    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "jax_step.py")
    tiny = ["--sizes", "1000", "--mix", "3", "--mix-total", "3000", "--rounds", "1"]
    result = subprocess.run(
        [sys.executable, script, *tiny, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| 1e3",
        "| 3 tensors",
        "| first step (compiles), 3 tensors",
        "| state bytes / parameter",
    ]
    assert all(row.count(" | ") == 6 for row in rows)
    assert rows[-1].split(" | ")[1:4] == ["8.00", "8.00", "4.00"]  # float32, bfloat16 state
