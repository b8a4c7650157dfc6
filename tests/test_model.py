"""The MLP: gradients (finite differences, PyTorch), determinism, training, input checks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import adadelta
from adadelta.app.model import MLP, matmul

ACTIVATIONS = ["tanh", "relu"]


def small_batch(
    seed: int, n: int = 7, width: int = 6, classes: int = 3
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, width)), rng.integers(0, classes, n)


def randomise_biases(model: MLP, seed: int) -> None:
    """Nonzero biases, so their gradients and their effect on the forward pass are tested."""
    rng = np.random.default_rng(seed)
    for name, p in model.params.items():
        if name.startswith("b"):
            p[...] = rng.normal(scale=0.5, size=p.shape)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_gradients_match_central_differences(activation: str) -> None:
    model = MLP((6, 5, 4, 3), activation, seed=1, dtype=np.float64)
    randomise_biases(model, 2)
    x, y = small_batch(3)
    _, grads = model.loss_and_grads(x, y)
    analytic = {k: g.copy() for k, g in grads.items()}
    h = 1e-6
    for name, p in model.params.items():
        numeric = np.empty_like(p)
        for i in np.ndindex(p.shape):
            saved = p[i]
            p[i] = saved + h
            plus, _ = model.loss_and_grads(x, y)
            p[i] = saved - h
            minus, _ = model.loss_and_grads(x, y)
            p[i] = saved
            numeric[i] = (plus - minus) / (2 * h)
        error = np.linalg.norm(analytic[name] - numeric)
        relative = error / (np.linalg.norm(analytic[name]) + np.linalg.norm(numeric))
        assert relative < 1e-6, f"{activation} {name}: relative error {relative:.2e}"


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_loss_and_gradients_match_pytorch_autograd(activation: str) -> None:
    torch = pytest.importorskip("torch")
    model = MLP((6, 5, 4, 3), activation, seed=4, dtype=np.float64)
    randomise_biases(model, 5)
    x, y = small_batch(6, n=11)
    loss, grads = model.loss_and_grads(x, y)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    act = torch.tanh if activation == "tanh" else torch.relu
    h = torch.tensor(x)
    h = act(h @ tp["W1"] + tp["b1"])
    h = act(h @ tp["W2"] + tp["b2"])
    logits = h @ tp["W3"] + tp["b3"]
    torch_loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y))
    torch_loss.backward()

    assert abs(loss - torch_loss.item()) < 1e-10
    np.testing.assert_allclose(model.forward(x), logits.detach().numpy(), rtol=0, atol=1e-10)
    for name, t in tp.items():
        assert t.grad is not None
        np.testing.assert_allclose(grads[name], t.grad.numpy(), rtol=0, atol=1e-10, err_msg=name)


def test_default_is_the_paper_network_in_float32() -> None:
    model = MLP()
    assert model.sizes == (784, 500, 300, 10)
    assert list(model.params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    shapes = [p.shape for p in model.params.values()]
    assert shapes == [(784, 500), (500,), (500, 300), (300,), (300, 10), (10,)]
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert model.n_params == 784 * 500 + 500 + 500 * 300 + 300 + 300 * 10 + 10


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_initialisation_is_documented_scheme(activation: str) -> None:
    model = MLP((200, 100, 50, 10), activation, seed=0, dtype=np.float64)
    hidden = np.sqrt(6 / 200) if activation == "relu" else np.sqrt(6 / 300)
    bounds = {"W1": hidden, "W3": np.sqrt(6 / 60)}
    for name, bound in bounds.items():
        w = model.params[name]
        assert np.abs(w).max() <= bound
        # a uniform on [-a, a] has standard deviation a / sqrt(3)
        assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    assert all(not model.params[b].any() for b in ("b1", "b2", "b3"))


def test_same_seed_gives_identical_params_and_losses() -> None:
    x, y = small_batch(0, n=20, width=8, classes=4)
    runs = []
    for _ in range(2):
        model = MLP((8, 6, 4), "relu", seed=7)
        opt = adadelta.Adadelta(model.params)
        losses = []
        for _ in range(5):
            loss, grads = model.loss_and_grads(x, y)
            opt.step(grads)
            losses.append(loss)
        runs.append((model, losses))
    (a, losses_a), (b, losses_b) = runs
    assert losses_a == losses_b
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])
    other = MLP((8, 6, 4), "relu", seed=8)
    assert not np.array_equal(other.params["W1"], MLP((8, 6, 4), "relu", seed=7).params["W1"])


def test_float32_and_float64_initialisations_agree_to_rounding() -> None:
    m32 = MLP((10, 8, 3), "tanh", seed=3, dtype=np.float32)
    m64 = MLP((10, 8, 3), "tanh", seed=3, dtype=np.float64)
    for name in m32.params:
        np.testing.assert_array_equal(m32.params[name], m64.params[name].astype(np.float32))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_training_lowers_the_loss_on_a_separable_problem(activation: str) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(3, 5))
    y = rng.integers(0, 3, 90)
    x = (centres[y] + rng.normal(scale=0.3, size=(90, 5))).astype(np.float32)
    model = MLP((5, 8, 3), activation, seed=0)
    opt = adadelta.SGD(model.params, lr=0.1)
    first, _ = model.loss_and_grads(x, y)
    for _ in range(50):
        _, grads = model.loss_and_grads(x, y)
        opt.step(grads)
    last, _ = model.loss_and_grads(x, y)
    assert last < 0.5 * first
    assert model.error_rate(x, y) == 0.0


def test_predict_and_error_rate_are_batched_consistently() -> None:
    x, y = small_batch(1, n=23, width=6, classes=3)
    model = MLP((6, 5, 3), "tanh", seed=0)
    expected = np.argmax(model.forward(x), axis=1)
    for batch_size in (1, 4, 23, 100):
        np.testing.assert_array_equal(model.predict(x, batch_size=batch_size), expected)
    assert model.error_rate(x, y, batch_size=4) == pytest.approx(100 * np.mean(expected != y))


def test_returned_gradients_are_the_models_buffers() -> None:
    model = MLP((6, 5, 3), "relu", seed=0)
    x, y = small_batch(2, n=5)
    _, first = model.loss_and_grads(x, y)
    _, second = model.loss_and_grads(x[:3], y[:3])
    assert first is second is model.grads


def test_loss_is_finite_for_huge_logits() -> None:
    model = MLP((2, 3, 2), "relu", seed=0, dtype=np.float32)
    x = np.array([[1e4, 1e4], [-1e4, 3e4]], np.float32)
    loss, grads = model.loss_and_grads(x, np.array([0, 1]))
    assert np.isfinite(loss)
    assert all(np.isfinite(g).all() for g in grads.values())


@pytest.mark.parametrize(
    ("x", "y", "error", "match"),
    [
        (np.zeros((4, 5)), np.zeros(4, int), ValueError, r"expected shape \(n, 6\)"),
        (np.zeros(6), np.zeros(1, int), ValueError, r"expected shape \(n, 6\)"),
        (np.zeros((0, 6)), np.zeros(0, int), ValueError, "empty"),
        (np.zeros((4, 6), complex), np.zeros(4, int), TypeError, "real-valued"),
        (np.zeros((4, 6)), np.array([0, 1, 3, 0]), ValueError, "3 is out of range.*0..2"),
        (np.zeros((4, 6)), np.array([0, -1, 1, 0]), ValueError, "-1 is out of range"),
        (np.zeros((4, 6)), np.zeros(4), TypeError, "integer"),
        (np.zeros((4, 6)), np.zeros(3, int), ValueError, r"expected shape \(4,\)"),
    ],
)
def test_bad_inputs_are_refused_clearly(
    x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], error: type[Exception], match: str
) -> None:
    model = MLP((6, 5, 3), "tanh", seed=0)
    before = {k: v.copy() for k, v in model.params.items()}
    with pytest.raises(error, match=match):
        model.loss_and_grads(x, y)
    for name, p in model.params.items():
        np.testing.assert_array_equal(p, before[name])


def test_error_rate_checks_labels() -> None:
    model = MLP((6, 5, 3), "tanh", seed=0)
    with pytest.raises(ValueError, match="out of range"):
        model.error_rate(np.zeros((2, 6)), np.array([0, 5]))
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(np.zeros((2, 6)), batch_size=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sizes": (784,)}, ValueError, "at least an input and an output"),
        ({"sizes": (784, 0, 10)}, ValueError, "positive integers"),
        ({"sizes": (784, 10.0)}, ValueError, "positive integers"),
        ({"sizes": (784, 1)}, ValueError, "at least 2 classes"),
        ({"sizes": "784"}, TypeError, "sequence"),
        ({"activation": "sigmoid"}, ValueError, "activation must be one of"),
        ({"seed": -1}, ValueError, "seed"),
        ({"dtype": np.float16}, TypeError, "float32 or float64"),
    ],
)
def test_bad_configurations_are_refused(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        MLP(**kwargs)


def test_integer_inputs_are_cast_to_the_model_dtype() -> None:
    model = MLP((3, 4, 2), "relu", seed=0, dtype=np.float64)
    x_int = np.array([[1, 2, 3], [0, 1, 0]])
    np.testing.assert_array_equal(model.forward(x_int), model.forward(x_int.astype(np.float64)))


@pytest.mark.parametrize("inner", [1, 256, 257, 500, 784, 1000])
def test_matmul_is_the_product_with_the_same_bits_on_any_number_of_blas_threads(
    inner: int,
) -> None:
    rng = np.random.default_rng(inner)
    a = rng.standard_normal((100, inner), dtype=np.float32)
    b = rng.standard_normal((inner, 300), dtype=np.float32)
    results = []
    for threads in (1, 2):
        with threadpool_limits(threads, user_api="blas"):
            out, partial = np.empty((100, 300), np.float32), np.empty((100, 300), np.float32)
            matmul(a, b, out, partial)
            results.append(out)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_matmul_of_an_empty_inner_dimension_is_zeros() -> None:
    out, partial = np.full((3, 2), np.nan, np.float32), np.empty((3, 2), np.float32)
    matmul(np.empty((3, 0), np.float32), np.empty((0, 2), np.float32), out, partial)
    np.testing.assert_array_equal(out, np.zeros((3, 2), np.float32))
