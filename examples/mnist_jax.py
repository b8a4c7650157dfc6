"""Train the paper's MNIST network in JAX with ``adadelta.optax``.

The network of Zeiler (2012), Table 2, as ``adadelta demo`` and ``adadelta reproduce`` train it:
784 -> 500 -> 300 -> 10 with ReLU, softmax cross-entropy, mini-batches of 100, ADADELTA with
rho=0.95, eps=1e-6 and no learning rate. The initial weights and the order of the mini-batches
are the NumPy trainer's for the same seed (:class:`adadelta.app.model.MLP`,
:func:`adadelta.app.trainer.epoch_order`), so the two differ only in their arithmetic;
``--compare`` trains the NumPy trainer too and prints both.

    python examples/mnist_jax.py                          # the embedded digits, 8 epochs
    python examples/mnist_jax.py --compare                # and the NumPy trainer beside it
    python examples/mnist_jax.py --state-dtype bfloat16   # compact optimizer state
    python examples/mnist_jax.py --data /path/to/mnist    # the four MNIST .gz files

Needs the jax extra: ``pip install "adadelta[jax]"`` (and ``adadelta[paper]`` for the data).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import jax
import jax.numpy as jnp
import optax

from adadelta.app.datasets import Dataset, load_embedded_digits, load_mnist
from adadelta.app.model import MLP, PAPER_SIZES
from adadelta.app.trainer import epoch_order
from adadelta.optax import adadelta

BATCH_SIZE = 100


def forward(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    """The logits: ReLU hidden layers ``h @ Wi + bi``, the last layer linear."""
    layers = len(params) // 2
    for i in range(1, layers):
        x = jax.nn.relu(x @ params[f"W{i}"] + params[f"b{i}"])
    return x @ params[f"W{layers}"] + params[f"b{layers}"]


def loss(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(forward(params, x), y).mean()


def test_error(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> float:
    predictions = jnp.concatenate(
        [forward(params, x[i : i + 1000]).argmax(1) for i in range(0, len(y), 1000)]
    )
    return float((predictions != y).mean())


def train_jax(data: Dataset, epochs: int, seed: int, state_dtype: str | None) -> list[float]:
    params = {k: jnp.asarray(v) for k, v in MLP(PAPER_SIZES, "relu", seed=seed).params.items()}
    optimizer = adadelta(rho=0.95, eps=1e-6, state_dtype=state_dtype, seed=seed)
    state = optimizer.init(params)

    @jax.jit
    def step(params: Any, state: Any, x: jax.Array, y: jax.Array) -> Any:
        grads = jax.grad(loss)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    x_train, y_train = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    x_test, y_test = jnp.asarray(data.x_test), jnp.asarray(data.y_test)
    errors = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = epoch_order(seed, epoch, len(data.y_train))
        for i in range(0, len(order), BATCH_SIZE):
            batch = jnp.asarray(order[i : i + BATCH_SIZE])
            params, state = step(params, state, x_train[batch], y_train[batch])
        jax.block_until_ready(params)
        errors.append(test_error(params, x_test, y_test))
        seconds = time.perf_counter() - start
        print(f"jax    epoch {epoch:3d}  test error {100 * errors[-1]:5.2f}%  ({seconds:.1f} s)")
    return errors


def train_numpy(data: Dataset, epochs: int, seed: int) -> list[float]:
    """The NumPy trainer of ``adadelta demo``, same network, seed and data."""
    import adadelta as core
    from adadelta.app.trainer import train

    model = MLP(PAPER_SIZES, "relu", seed=seed)
    result = train(
        model,
        core.Adadelta(model.params, rho=0.95, eps=1e-6),
        data,
        epochs=epochs,
        seed=seed,
        progress=False,
    )
    errors = [percent / 100 for percent in result.test_errors]
    for epoch, error in enumerate(errors, 1):
        print(f"numpy  epoch {epoch:3d}  test error {100 * error:5.2f}%")
    return errors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", metavar="DIR", help="directory of the MNIST .gz files")
    parser.add_argument("--epochs", type=int, default=8, help="passes over the data (8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--state-dtype", choices=["bfloat16", "float8"], help="compact optimizer state"
    )
    parser.add_argument("--compare", action="store_true", help="train the NumPy trainer too")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    data = load_mnist(args.data, download=False) if args.data else load_embedded_digits()
    print(f"{data.name}: {len(data.y_train)} training, {len(data.y_test)} test images")
    errors = train_jax(data, args.epochs, args.seed, args.state_dtype)
    if args.compare:
        reference = train_numpy(data, args.epochs, args.seed)
        print(
            f"after {args.epochs} epochs: jax {100 * errors[-1]:.2f}%, "
            f"numpy {100 * reference[-1]:.2f}% "
            f"(difference {100 * (errors[-1] - reference[-1]):+.2f} points)"
        )


if __name__ == "__main__":
    main()
