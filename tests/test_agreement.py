"""Agreement with independent implementations, in float64, over 250 steps of gradients whose
scales span 1e-4 to 1e3: every configuration of the matrix against ``torch.optim``; ADADELTA
against ``optax.adadelta``; the Keras preset against the Keras formula written out here.

The measured differences are printed; to see them (xdist hides the workers' output)::

    python -m pytest tests/test_agreement.py -q -s -p no:xdist | grep "max rel diff"

The difference reported is, per parameter array, ``max |ours - theirs| / max |theirs|`` over
the *displacement* from the starting point (so that tiny steps are compared as strictly as
large ones), the largest over the arrays and over all steps.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from adadelta import Adadelta, Optimizer
from optimizer_matrix import CONFIGS, OptimizerConfig

STEPS = 250
TOLERANCE = 1e-10
SHAPES = {"W": (4, 5), "b": (4,)}
_N = 24

_rng = np.random.default_rng(1212_5701)
SCALES = np.logspace(-4, 3, _N)[_rng.permutation(_N)]  # each element its own gradient scale
_CURVATURE = _rng.uniform(0.2, 1.0, _N)
_X_STAR = _rng.standard_normal(_N)
_NOISE = 0.3 * _rng.standard_normal((STEPS, _N))
X0 = {"W": _rng.standard_normal((4, 5)), "b": _rng.standard_normal(4)}


def _flat(tree: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([tree["W"].ravel(), tree["b"]])


def gradient(params: dict[str, np.ndarray], t: int, sign: float = 1.0) -> dict[str, np.ndarray]:
    """The gradient at step ``t`` of a random diagonal quadratic plus noise, each element
    scaled by its own factor in [1e-4, 1e3]."""
    g = sign * SCALES * (_CURVATURE * (_flat(params) - _X_STAR) + _NOISE[t])
    return {"W": g[:20].reshape(4, 5), "b": g[20:]}


def rel_diff(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> float:
    worst = 0.0
    for key in SHAPES:
        d_ours, d_theirs = ours[key] - X0[key], theirs[key] - X0[key]
        worst = max(worst, float(np.abs(d_ours - d_theirs).max() / np.abs(d_theirs).max()))
    return worst


Arrays = dict[str, np.ndarray]


def lockstep(config: OptimizerConfig) -> Iterator[tuple[Arrays, Arrays, Optimizer]]:
    """Step our optimizer; yield each gradient it was given, its parameters after the step, and
    itself. The gradients are computed at our parameters, and the other implementation is given
    the same ones; a maximize configuration gets the gradient of the negated loss."""
    params = {k: v.copy() for k, v in X0.items()}
    opt = config.make(params)
    sign = -1.0 if config.maximize else 1.0
    for t in range(STEPS):
        g = gradient(params, t, sign)
        opt.step({k: v.copy() for k, v in g.items()})
        yield g, params, opt


def elementwise_rel_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    scale = np.maximum(np.abs(ours), np.abs(theirs))
    diff = np.abs(ours - theirs)
    return float(np.max(np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), 0.0)))


def report(kind: str, name: str, value: float, state: float | None = None) -> None:
    state_text = "" if state is None else f"  (state, elementwise: {state:.2e})"
    print(f"\nagreement vs {kind:5s} {name:48s} max rel diff {value:.2e}{state_text}")


# --- torch.optim ---

torch_configs = [c for c in CONFIGS if c.torch_equivalent() is not None]


@pytest.mark.parametrize("config", torch_configs, ids=[c.id for c in torch_configs])
def test_agrees_with_torch(config: OptimizerConfig) -> None:
    torch = pytest.importorskip("torch")
    equivalent = config.torch_equivalent()
    assert equivalent is not None
    name, kwargs = equivalent
    tensors = {k: torch.tensor(v.copy()) for k, v in X0.items()}
    torch_opt = getattr(torch.optim, name)(list(tensors.values()), **kwargs)
    worst = worst_state = 0.0
    for g, ours, opt in lockstep(config):
        for key, tensor in tensors.items():
            tensor.grad = torch.from_numpy(g[key].copy())
        torch_opt.step()
        theirs = {k: v.numpy() for k, v in tensors.items()}
        worst = max(worst, rel_diff(ours, theirs))
        for our_state, tensor in zip(opt.state, tensors.values(), strict=True):
            torch_state = torch_opt.state[tensor]
            for field, value in our_state.items():
                if field != "step":
                    their_value = torch_state[TORCH_STATE_NAMES.get(field, field)].numpy()
                    worst_state = max(worst_state, elementwise_rel_diff(value, their_value))
    report("torch", config.id, worst, worst_state)
    assert worst <= TOLERANCE
    assert worst_state <= TOLERANCE


TORCH_STATE_NAMES = {"E_g2": "square_avg", "E_dx2": "acc_delta"}  # the others have torch's names


# --- optax ---


@pytest.fixture
def optax_x64() -> Iterator[Any]:
    """optax, with JAX computing in float64 for the duration of the test."""
    optax = pytest.importorskip("optax")
    jax = pytest.importorskip("jax")
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield optax
    jax.config.update("jax_enable_x64", previous)


def _optax_run(
    optax: Any, transform: Any, config: OptimizerConfig, sign: float
) -> tuple[float, float]:
    """Run ``transform`` in lockstep with ``config``, feeding it ``sign`` times our gradient;
    return the largest relative differences of the parameters and of E[g^2], E[dx^2]."""
    import jax
    import jax.numpy as jnp

    params = {k: jnp.asarray(v) for k, v in X0.items()}
    state = transform.init(params)
    update = jax.jit(transform.update)
    worst = worst_state = 0.0
    for g, ours, opt in lockstep(config):
        grads = {k: jnp.asarray(sign * v) for k, v in g.items()}
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        theirs = {k: np.asarray(v) for k, v in params.items()}
        assert theirs["W"].dtype == np.float64
        worst = max(worst, rel_diff(ours, theirs))
        (adadelta_state,) = [s for s in state if isinstance(s, optax.ScaleByAdaDeltaState)]
        for our_state, key in zip(opt.state, X0, strict=True):
            for ours_value, their_value in [
                (our_state["E_g2"], adadelta_state.e_g[key]),
                (our_state["E_dx2"], adadelta_state.e_x[key]),
            ]:
                diff = elementwise_rel_diff(ours_value, np.asarray(their_value))
                worst_state = max(worst_state, diff)
    return worst, worst_state


optax_configs = [
    c
    for c in CONFIGS
    if c.cls is Adadelta and not c.make(np.zeros(1)).defaults["decoupled_weight_decay"]
]


@pytest.mark.parametrize("config", optax_configs, ids=[c.id for c in optax_configs])
def test_adadelta_agrees_with_optax(config: OptimizerConfig, optax_x64: Any) -> None:
    optax = optax_x64
    d = config.make(np.zeros(1)).defaults
    transform = optax.adadelta(
        learning_rate=d["lr"], rho=d["rho"], eps=d["eps"], weight_decay=d["weight_decay"]
    )
    # optax has no maximize: it gets the gradient of the objective our maximize climbs
    worst, worst_state = _optax_run(optax, transform, config, -1.0 if config.maximize else 1.0)
    report("optax", config.id, worst, worst_state)
    assert worst <= TOLERANCE
    assert worst_state <= TOLERANCE


def test_optax_default_learning_rate_climbs(optax_x64: Any) -> None:
    """optax.adadelta() without a learning rate never flips the sign of the step: it ascends
    the loss. It is step for step our ADADELTA with ``maximize=True`` (optax's rho and eps)."""
    optax = optax_x64
    climbing = OptimizerConfig("optax-default", Adadelta, {"preset": "optax", "maximize": True})
    # both step along the gradient they are given
    worst, worst_state = _optax_run(optax, optax.adadelta(), climbing, 1.0)
    report("optax", "optax.adadelta() == maximize=True", worst, worst_state)
    assert worst <= TOLERANCE
    assert worst_state <= TOLERANCE

    import jax.numpy as jnp

    transform = optax.adadelta()  # learning_rate=None
    x = jnp.asarray(np.array([3.0, -1.0]))
    state = transform.init(x)
    for _ in range(200):
        updates, state = transform.update(2 * x, state, x)  # the gradient of |x|^2
        x = optax.apply_updates(x, updates)
    assert float(jnp.sum(x**2)) > 10.0  # |x0|^2 = 10: it went up

    ours = np.array([3.0, -1.0])
    opt = Adadelta(ours, preset="optax")
    for _ in range(200):
        opt.step(2 * ours)
    assert float(np.sum(ours**2)) < 10.0  # ours goes down


# --- the Keras formula ---


def keras_adadelta(
    x: np.ndarray, grads: list[np.ndarray], lr: float, rho: float, eps: float, wd: float
) -> Iterator[np.ndarray]:
    """keras.optimizers.Adadelta (Keras 3), written out from its update_step and the base
    optimizer's decoupled weight decay; yields the parameters after each step."""
    x = x.copy()
    accumulated_grad = np.zeros_like(x)
    accumulated_delta_var = np.zeros_like(x)

    def rms(v: np.ndarray) -> np.ndarray:
        return np.sqrt(v + eps)

    for grad in grads:
        if wd:
            x = x - x * wd * lr
        accumulated_grad = accumulated_grad * rho + grad * grad * (1 - rho)
        delta_var = -(rms(accumulated_delta_var) * grad) / rms(accumulated_grad)
        accumulated_delta_var = rho * accumulated_delta_var + (1 - rho) * delta_var * delta_var
        x = x + lr * delta_var
        yield x


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"weight_decay": 0.1}, {"lr": 1.0, "weight_decay": 0.01}, {"lr": 0.5, "rho": 0.9}],
    ids=["defaults", "weight_decay", "lr1-weight_decay", "lr0.5-rho0.9"],
)
def test_keras_preset_follows_the_keras_formula(kwargs: dict[str, float]) -> None:
    config = OptimizerConfig("keras", Adadelta, {"preset": "keras", **kwargs})
    d = config.make(np.zeros(1)).defaults
    assert d["decoupled_weight_decay"]
    x0 = _flat(X0)
    gradients: list[np.ndarray] = []
    ours_history = []
    for g, ours, _ in lockstep(config):
        gradients.append(_flat(g))
        ours_history.append(_flat(ours).copy())
    keras = keras_adadelta(x0, gradients, d["lr"], d["rho"], d["eps"], d["weight_decay"])
    worst = 0.0
    for ours_x, keras_x in zip(ours_history, keras, strict=True):
        d_keras = keras_x - x0
        worst = max(worst, float(np.abs((ours_x - x0) - d_keras).max() / np.abs(d_keras).max()))
    report("keras", f"Adadelta-preset-keras {kwargs}", worst)
    assert worst <= TOLERANCE
