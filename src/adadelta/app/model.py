"""The paper's MNIST network: a multilayer perceptron with a softmax cross-entropy loss, in NumPy.

Zeiler (2012), MNIST experiments: 784 inputs -> 500 hidden -> 300 hidden -> softmax over 10 classes,
with tanh or rectified linear (ReLU) hidden units, trained on mini-batches of 100 images.

Usage::

    model = MLP((784, 500, 300, 10), "relu", seed=0)       # float32 by default
    opt = adadelta.Adadelta(model.params)
    loss, grads = model.loss_and_grads(x_batch, y_batch)
    opt.step(grads)                                         # updates model.params in place
    model.error_rate(x_test, y_test)                        # percent

Forward and backward are written by hand with matrix products on the model's dtype (BLAS),
whose results do not depend on the BLAS library's number of threads (see :func:`matmul`).
Every work array is allocated once per batch size and reused, so a training step allocates
almost nothing; the gradients returned by :meth:`MLP.loss_and_grads` are buffers of the model,
overwritten by the next call (copy them to keep them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.integer[Any]]

ACTIVATIONS = ("tanh", "relu")
PAPER_SIZES = (784, 500, 300, 10)
_MAX_CACHED_BATCH_SIZES = 4
# The longest inner dimension of one BLAS call in :func:`matmul`. OpenBLAS sums a longer one
# in blocks whose bounds depend on its number of threads: in NumPy 2.4's OpenBLAS 0.3.31
# (SkylakeX kernels), inner dimensions up to 448 give the same bits on one thread as on two,
# 452 and more do not (``python benchmarks/blas_bits.py``). 384 leaves a margin below that
# block; other builds and machines may block differently (the tests check this one). The
# pieces cost an epoch of the paper's network a few percent against products in one piece
# (``benchmarks/results/blas_threads.md``).
INNER = 384


def matmul(a: FloatArray, b: FloatArray, out: FloatArray, partial: FloatArray) -> None:
    """``out = a @ b`` with the same bits on any number of OpenBLAS threads: the inner dimension is
    cut into pieces of at most :data:`INNER`, each product taken into ``partial`` (``out``'s
    shape) and added to ``out`` in order. Training may then change the BLAS library's threads
    as it runs (:class:`adadelta.app.trainer.BlasThreads`) and still give the same numbers,
    every time."""
    k = a.shape[1]
    pieces = max(1, -(-k // INNER))
    size = max(1, -(-k // pieces))  # k = 0: one empty piece, out = 0
    np.matmul(a[:, :size], b[:size], out=out)
    for start in range(size, k, size):
        np.matmul(a[:, start : start + size], b[start : start + size], out=partial)
        out += partial


class _Buffers:
    """The work arrays of one batch size: layer outputs, backpropagated deltas, scratch."""

    def __init__(self, n: int, sizes: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        widths = sizes[1:]
        self.out = [np.empty((n, w), dtype) for w in widths]  # activations; last: logits
        self.delta = [np.empty((n, w), dtype) for w in widths[:-1]]  # dLoss/d(pre-activation)
        self.scratch = [np.empty((n, w), dtype) for w in widths[:-1]]  # activation derivative
        self.mask = [np.empty((n, w), np.bool_) for w in widths[:-1]]
        self.probs = np.empty((n, widths[-1]), dtype)
        self.row = np.empty((n, 1), dtype)
        self.rows = np.arange(n)
        self.partials: dict[tuple[int, ...], FloatArray] = {}  # for matmul, by shape


class MLP:
    """A fully connected network ``sizes[0] -> ... -> sizes[-1]`` with ``activation`` hidden
    units and a softmax cross-entropy loss (mean over the batch).

    Parameters are ``params = {"W1": (sizes[0], sizes[1]), "b1": (sizes[1],), "W2": ...}`` in
    that order (layer ``i`` computes ``h @ Wi + bi``), so ``Adadelta(model.params)`` updates the
    model and the optimizer's state ``i`` belongs to ``list(model.params)[i]``.

    Initialisation (not stated in the paper), from ``np.random.default_rng(seed)``, drawn in
    float64 and then cast, so float32 and float64 models with one seed agree to rounding:

    - weights into a hidden layer: Glorot/Xavier uniform for tanh,
      ``U(-a, a), a = sqrt(6 / (fan_in + fan_out))``; He uniform for ReLU,
      ``a = sqrt(6 / fan_in)``;
    - weights into the softmax layer: Glorot/Xavier uniform for both;
    - biases: zero.

    >>> model = MLP((4, 3, 2), "tanh", seed=0)
    >>> list(model.params), model.params["W1"].shape, model.params["W1"].dtype
    (['W1', 'b1', 'W2', 'b2'], (4, 3), dtype('float32'))
    >>> x, y = np.ones((5, 4), np.float32), np.array([0, 1, 0, 1, 1])
    >>> loss, grads = model.loss_and_grads(x, y)
    >>> print(f"{loss:.4f}", grads["W2"].shape)
    0.9508 (3, 2)
    """

    def __init__(
        self,
        sizes: Sequence[int] = PAPER_SIZES,
        activation: str = "tanh",
        seed: int = 0,
        dtype: npt.DTypeLike = np.float32,
    ) -> None:
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
            raise TypeError(f"sizes must be a sequence of layer widths, got {sizes!r}")
        if len(sizes) < 2:
            raise ValueError(f"sizes must list at least an input and an output width: {sizes!r}")
        for width in sizes:
            if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
                raise ValueError(f"sizes must be positive integers, got {sizes!r}")
        if sizes[-1] < 2:
            raise ValueError(f"the softmax needs at least 2 classes, got sizes {sizes!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        resolved = np.dtype(dtype)
        if resolved not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype must be float32 or float64, got {resolved}")

        self.sizes: tuple[int, ...] = tuple(int(w) for w in sizes)
        self.activation = activation
        self.seed = int(seed)
        self.dtype: np.dtype[Any] = resolved
        self.params: dict[str, FloatArray] = {}
        self.grads: dict[str, FloatArray] = {}
        rng = np.random.default_rng(self.seed)
        n_layers = len(self.sizes) - 1
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True), 1):
            if activation == "relu" and i < n_layers:
                bound = np.sqrt(6.0 / fan_in)  # He uniform
            else:
                bound = np.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform
            self.params[f"W{i}"] = rng.uniform(-bound, bound, (fan_in, fan_out)).astype(resolved)
            self.params[f"b{i}"] = np.zeros(fan_out, resolved)
            self.grads[f"W{i}"] = np.empty((fan_in, fan_out), resolved)
            self.grads[f"b{i}"] = np.empty(fan_out, resolved)
        self._buffers: dict[int, _Buffers] = {}

    # -- description --

    @property
    def config(self) -> dict[str, Any]:
        """What defines the model and its numbers: ``{"sizes", "activation", "seed", "dtype",
        "matmul_piece"}`` (plain values; the last is :data:`INNER`, the products' pieces, so that
        a checkpoint of products cut otherwise, or not at all, is not resumed as this model)."""
        return {
            "sizes": list(self.sizes),
            "activation": self.activation,
            "seed": self.seed,
            "dtype": self.dtype.name,
            "matmul_piece": INNER,
        }

    @property
    def n_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def __repr__(self) -> str:
        widths = "-".join(map(str, self.sizes))
        return f"MLP({widths}, {self.activation}, seed={self.seed}, {self.dtype.name})"

    # -- forward and backward --

    def forward(self, x: npt.ArrayLike) -> FloatArray:
        """The logits (pre-softmax outputs) for the rows of ``x``, as a new array."""
        x = self._checked_inputs(x)
        logits: FloatArray = self._forward(x, self._buffers_for(x.shape[0])).copy()
        return logits

    def loss_and_grads(
        self, x: npt.ArrayLike, y: npt.ArrayLike
    ) -> tuple[float, dict[str, FloatArray]]:
        r"""The mean softmax cross-entropy over the batch and its gradient for every parameter.

        .. math::

            L = \frac{1}{n} \sum_i \Big(\log \sum_k e^{z_{ik}} - z_{i y_i}\Big)

        computed stably (the row maximum is subtracted first). ``x``: ``(n, sizes[0])``,
        ``y``: ``n`` integer labels in ``[0, sizes[-1])``. The returned dict is
        :attr:`grads`, overwritten by the next call.
        """
        x = self._checked_inputs(x)
        labels = self._checked_labels(y, x.shape[0])
        n = x.shape[0]
        buf = self._buffers_for(n)
        z = self._forward(x, buf)

        # softmax cross-entropy, stable: z - max(z) <= 0
        np.max(z, axis=1, keepdims=True, out=buf.row)
        z -= buf.row
        z_label = z[buf.rows, labels]
        p = buf.probs
        np.exp(z, out=p)
        np.sum(p, axis=1, keepdims=True, out=buf.row)
        loss = float(np.mean(np.log(buf.row[:, 0]) - z_label, dtype=np.float64))
        p /= buf.row
        p[buf.rows, labels] -= 1
        p *= 1.0 / n  # dL/dz for the mean over the batch
        self._backward(x, p, buf)
        return loss, self.grads

    def _forward(self, x: FloatArray, buf: _Buffers) -> FloatArray:
        h = x
        last = len(buf.out) - 1
        for i, out in enumerate(buf.out):
            self._matmul(h, self.params[f"W{i + 1}"], out, buf)
            out += self.params[f"b{i + 1}"]
            if i < last:
                if self.activation == "tanh":
                    np.tanh(out, out=out)
                else:
                    np.maximum(out, 0, out=out)
            h = out
        return h

    def _backward(self, x: FloatArray, delta: FloatArray, buf: _Buffers) -> None:
        for i in range(len(buf.out) - 1, -1, -1):
            h_in = x if i == 0 else buf.out[i - 1]
            self._matmul(h_in.T, delta, self.grads[f"W{i + 1}"], buf)
            np.sum(delta, axis=0, out=self.grads[f"b{i + 1}"])
            if i == 0:
                break
            below = buf.delta[i - 1]
            self._matmul(delta, self.params[f"W{i + 1}"].T, below, buf)
            if self.activation == "tanh":  # tanh' = 1 - tanh^2, from the stored output
                d = buf.scratch[i - 1]
                np.multiply(h_in, h_in, out=d)
                np.subtract(1, d, out=d)
                below *= d
            else:  # relu' = [output > 0]
                mask = buf.mask[i - 1]
                np.greater(h_in, 0, out=mask)
                np.multiply(below, mask, out=below)
            delta = below

    # -- evaluation --

    def predict(self, x: npt.ArrayLike, batch_size: int = 1000) -> npt.NDArray[np.int64]:
        """The predicted class of each row of ``x``, computed ``batch_size`` rows at a time."""
        x = self._checked_inputs(x, cast=False)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        n = x.shape[0]
        labels = np.empty(n, np.int64)
        for start in range(0, n, batch_size):
            chunk = np.ascontiguousarray(x[start : start + batch_size], self.dtype)
            logits = self._forward(chunk, self._buffers_for(chunk.shape[0]))
            np.argmax(logits, axis=1, out=labels[start : start + chunk.shape[0]])
        return labels

    def error_rate(self, x: npt.ArrayLike, y: npt.ArrayLike, batch_size: int = 1000) -> float:
        """The percentage of rows of ``x`` whose predicted class differs from the label ``y``."""
        predicted = self.predict(x, batch_size)
        labels = self._checked_labels(y, predicted.shape[0])
        wrong = int(np.count_nonzero(predicted != labels))
        return 100.0 * wrong / int(predicted.shape[0])

    # -- input checks --

    def _checked_inputs(self, x: npt.ArrayLike, *, cast: bool = True) -> FloatArray:
        array = np.asarray(x)
        if array.dtype.kind not in "fiu":
            raise TypeError(f"inputs: expected a real-valued array, got dtype {array.dtype}")
        if array.ndim != 2 or array.shape[1] != self.sizes[0]:
            raise ValueError(
                f"inputs: expected shape (n, {self.sizes[0]}), got {array.shape} "
                f"(the model's input width is {self.sizes[0]})"
            )
        if array.shape[0] == 0:
            raise ValueError("inputs: the batch is empty")
        if cast:
            array = np.ascontiguousarray(array, self.dtype)
        return array

    def _checked_labels(self, y: npt.ArrayLike, n: int) -> IntArray:
        labels = np.asarray(y)
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels: expected an integer array, got dtype {labels.dtype}")
        if labels.shape != (n,):
            raise ValueError(
                f"labels: expected shape ({n},), one per input row, got {labels.shape}"
            )
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= self.sizes[-1]:
            bad = lo if lo < 0 else hi
            raise ValueError(f"labels: {bad} is out of range; classes are 0..{self.sizes[-1] - 1}")
        return labels

    def _matmul(self, a: FloatArray, b: FloatArray, out: FloatArray, buf: _Buffers) -> None:
        if a.shape[1] <= INNER:
            np.matmul(a, b, out=out)
            return
        partial = buf.partials.get(out.shape)
        if partial is None:
            partial = buf.partials[out.shape] = np.empty(out.shape, self.dtype)
        matmul(a, b, out, partial)

    def _buffers_for(self, n: int) -> _Buffers:
        buf = self._buffers.get(n)
        if buf is None:
            if len(self._buffers) >= _MAX_CACHED_BATCH_SIZES:
                del self._buffers[next(iter(self._buffers))]
            buf = self._buffers[n] = _Buffers(n, self.sizes, self.dtype)
        return buf
