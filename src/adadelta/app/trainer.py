"""Training on mini-batches with a test error after every epoch, resumable bit for bit.

Zeiler (2012), MNIST experiments: mini-batches of 100 images, test error on the 10,000 test images
after every epoch. Usage::

    model = MLP((784, 500, 300, 10), "relu", seed=0)
    opt = adadelta.OPTIMIZERS["Adadelta"](model.params)
    result = train(model, opt, data, epochs=6, run_dir="runs/relu-adadelta")
    result.test_errors          # percent, one per epoch

Epoch ``e`` (counted from 1) visits the training set in the order
``np.random.default_rng([seed, e]).permutation(n)``, so any epoch can be replayed on its own.
With a ``run_dir``, each completed epoch rewrites ``run_dir/checkpoint.npz`` (with
:func:`adadelta.save`) and then ``run_dir/metrics.jsonl`` (one JSON line per epoch), both
atomically: the checkpoint holds the parameters, the optimizer's state dict, the epoch, the
metrics so far and the run's configuration (:func:`run_config`: the model's config and dtype,
the optimizer and all its hyperparameters, the batch size, the seed, and the data set's name,
sizes and SHA-256). Calling :func:`train` again with the same ``run_dir`` continues after the
last completed epoch and ends with exactly the numbers of an uninterrupted run; a checkpoint
written by a run with another configuration is refused (:class:`RunMismatchError`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from threadpoolctl import ThreadpoolController
from tqdm.auto import tqdm  # type: ignore[import-untyped]

from adadelta.app.model import MLP
from adadelta.checkpoint import CheckpointError, atomic_write, load, open_regular, save
from adadelta.optimizers import Adadelta, Optimizer

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.jsonl"
FORMAT = "adadelta-run-1"

BatchHook = Callable[[int, int, MLP, Optimizer], None]
"""``on_batch(epoch, batch_index, model, optimizer)``, called after every optimizer step."""


class TrainData(Protocol):
    """What :func:`train` reads from a data set (e.g. :class:`adadelta.app.datasets.Dataset`)."""

    @property
    def name(self) -> str: ...
    @property
    def x_train(self) -> npt.NDArray[Any]: ...
    @property
    def y_train(self) -> npt.NDArray[Any]: ...
    @property
    def x_test(self) -> npt.NDArray[Any]: ...
    @property
    def y_test(self) -> npt.NDArray[Any]: ...


class RunMismatchError(ValueError):
    """A run directory's checkpoint was written by a run with other settings."""


@dataclass(frozen=True)
class EpochRecord:
    """The metrics of one epoch: the mean training loss over its examples (each mini-batch's
    loss taken before its step), the test error in percent after it, and the wall time in
    seconds of its training and test evaluation (checkpointing excluded)."""

    epoch: int
    train_loss: float
    test_error: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """Every epoch's metrics, including those of epochs loaded from a checkpoint."""

    history: tuple[EpochRecord, ...]
    resumed_from: int  # the number of completed epochs found in the checkpoint (0: fresh run)

    @property
    def test_errors(self) -> list[float]:
        return [r.test_error for r in self.history]

    @property
    def train_losses(self) -> list[float]:
        return [r.train_loss for r in self.history]


def train(
    model: MLP,
    optimizer: Optimizer,
    data: TrainData,
    *,
    epochs: int,
    batch_size: int = 100,
    seed: int = 0,
    run_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    on_batch: BatchHook | None = None,
) -> TrainResult:
    """Train ``model`` with ``optimizer`` (built on ``model.params``) for ``epochs`` epochs.

    Each epoch takes mini-batches of ``batch_size`` rows (the last one smaller if ``batch_size``
    does not divide the training set) in the epoch's seeded order, calls ``on_batch`` after
    every step, and then measures the test error. ``progress`` shows a tqdm bar. While it
    trains, OpenBLAS runs the matrix products on as many threads as :class:`BlasThreads`
    finds fastest (its own number, or one on a busy machine), and gets its setting back after.

    With ``run_dir`` (created if missing) the run is checkpointed after every epoch and resumed
    from there: ``epochs`` may grow between calls, but the model's config, the optimizer and its
    hyperparameters, ``batch_size``, ``seed`` and the data set's name and sizes must stay the
    same (else :class:`RunMismatchError`). A corrupt checkpoint raises
    :class:`adadelta.CheckpointError`. The metrics file is rewritten from the checkpoint on
    resume, so it always lists exactly the checkpointed epochs. Exact resumption assumes the
    same machine and library versions; not the same number of BLAS threads where the BLAS
    library is OpenBLAS (the model's products give the same bits on any number of them, see
    :class:`BlasThreads`).

    A diverging run stops with :class:`adadelta.NonFiniteGradientError` from the optimizer's
    check; to let it run on (e.g. the paper's MOMENTUM at lr 1, Table 1), build the optimizer
    with ``check_finite=False``: the loss is then recorded as NaN or infinity (written as
    ``NaN`` / ``Infinity`` in the JSON lines, which Python's ``json`` reads back).
    """
    _check_count("epochs", epochs, minimum=0)
    _check_count("batch_size", batch_size, minimum=1)
    _check_count("seed", seed, minimum=0)
    x_train, y_train, x_test, y_test = _checked_data(model, data)
    if not _owns_params(optimizer, model):
        raise ValueError(
            "optimizer: must be built on model.params (e.g. Adadelta(model.params)), "
            "in the same order"
        )
    config = _config(model, optimizer, data, (x_train, y_train, x_test, y_test), batch_size, seed)

    history: list[EpochRecord] = []
    checkpoint = metrics = None
    if run_dir is not None:
        directory = Path(run_dir)
        directory.mkdir(parents=True, exist_ok=True)
        checkpoint, metrics = directory / CHECKPOINT, directory / METRICS
        if checkpoint.exists():
            history = _resume(checkpoint, config, model, optimizer, epochs)
        _write_metrics(metrics, history)
    resumed_from = len(history)

    n = x_train.shape[0]
    n_batches = -(-n // batch_size)
    x_batch = np.empty((min(batch_size, n), x_train.shape[1]), x_train.dtype)
    y_batch = np.empty(min(batch_size, n), np.int64)
    bar = tqdm(
        total=epochs * n_batches,
        initial=resumed_from * n_batches,
        disable=not progress,
        unit="batch",
        desc=f"{type(optimizer).__name__} {model}",
    )
    blas = BlasThreads()
    try:
        for epoch in range(resumed_from + 1, epochs + 1):
            start_time = time.perf_counter()
            order = epoch_order(seed, epoch, n)
            loss_sum = 0.0
            for batch_index, start in enumerate(range(0, n, batch_size)):
                rows = order[start : start + batch_size]
                xb, yb = x_batch[: rows.size], y_batch[: rows.size]
                np.take(x_train, rows, axis=0, out=xb)
                np.take(y_train, rows, out=yb)
                batch_start = time.perf_counter()
                loss, grads = model.loss_and_grads(xb, yb)
                optimizer.step(grads)
                blas.timed(time.perf_counter() - batch_start)
                loss_sum += loss * rows.size
                if on_batch is not None:
                    on_batch(epoch, batch_index, model, optimizer)
                bar.update()
            test_error = model.error_rate(x_test, y_test)
            record = EpochRecord(epoch, loss_sum / n, test_error, time.perf_counter() - start_time)
            history.append(record)
            if checkpoint is not None and metrics is not None:
                _save_checkpoint(checkpoint, config, model, optimizer, history)
                _write_metrics(metrics, history)
            bar.set_postfix(epoch=epoch, loss=f"{record.train_loss:.4f}", test=f"{test_error:.2f}%")
    finally:
        blas.restore()
        bar.close()
    return TrainResult(tuple(history), resumed_from)


class BlasThreads:
    """How many threads the BLAS library runs training's matrix products on, chosen by timing.

    Two thread pools share the cores while a NumPy model trains: the BLAS library's, for the
    matrix products, and the optimizer's. On a quiet machine the products run fastest on every
    core. On a machine that also does other work, a product waits at its end for a BLAS thread
    that has no core: one epoch of the paper's network took 2.9x its quiet time on the library's
    two threads against 1.2x on one (``benchmarks/results/blas_threads.md``). Neither setting
    suits every machine, and the load changes during a run, so :func:`train` times its batches
    under both: every :attr:`PERIOD` batches it runs :attr:`WINDOW` on the BLAS library's own
    number of threads and :attr:`WINDOW` on one, then the next :attr:`PERIOD` on whichever took
    less time in all (not the median batch: on a busy machine most batches are fast on any
    number of threads, and a few wait milliseconds for a core). The library's setting is
    restored when training ends. The model's products give the same bits on any number of BLAS
    threads (:func:`adadelta.app.model.matmul`), so the runs do not depend on the choice.
    Nothing changes where the BLAS library is not OpenBLAS, has one thread (e.g. under a user's
    ``threadpool_limits(1)``) or cannot be controlled.
    """

    WINDOW = 10
    PERIOD = 300
    # one chooser at a time in a process (trainings in several threads would otherwise take
    # each other's settings for the libraries' own and leave them behind)
    _active = threading.Lock()

    def __init__(self) -> None:
        # OpenBLAS only: the one whose products adadelta.app.model.matmul keeps to the same bits
        # on any number of threads (MKL, for one, does not promise that without its own setting)
        self._libraries = ThreadpoolController().select(internal_api="openblas").lib_controllers
        self._original = [library.num_threads for library in self._libraries]
        most = max(self._original, default=1)
        self._owner = most > 1 and self._active.acquire(blocking=False)
        self._choices = (most, 1) if self._owner else ()
        self._times: tuple[list[float], list[float]] = ([], [])
        self._batch = 0
        self.threads = most  # the most threads a product runs on now
        self.chosen = most

    def timed(self, seconds: float) -> None:
        """Record the last batch's ``seconds`` and set the threads of the next batch."""
        if not self._choices:
            return
        cycle = 2 * self.WINDOW + self.PERIOD
        position = self._batch % cycle
        if position < 2 * self.WINDOW:
            self._times[position // self.WINDOW].append(seconds)
        self._batch += 1
        position = self._batch % cycle
        if position == 2 * self.WINDOW:
            totals = [sum(t) for t in self._times]
            self.chosen = self._choices[int(np.argmin(totals))]
            self._times = ([], [])
        wanted = self._choices[position // self.WINDOW] if position < 2 * self.WINDOW else None
        self._set(self.chosen if wanted is None else wanted)

    def _set(self, threads: int) -> None:
        """One thread, or (``threads`` > 1) each library's own number."""
        if threads != self.threads:
            for library, own in zip(self._libraries, self._original, strict=True):
                library.set_num_threads(1 if threads == 1 else own)
            self.threads = threads

    def restore(self) -> None:
        """Give the BLAS libraries back the numbers of threads they had."""
        if self._owner:
            for library, own in zip(self._libraries, self._original, strict=True):
                library.set_num_threads(own)
            self._owner = False
            self._active.release()


def epoch_order(seed: int, epoch: int, n: int) -> npt.NDArray[np.int64]:
    """The order in which epoch ``epoch`` (from 1) visits ``n`` training rows under ``seed``."""
    return np.random.default_rng([seed, epoch]).permutation(n)


# --- checks ---


def _check_count(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _checked_data(
    model: MLP, data: TrainData
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64], npt.NDArray[Any], npt.NDArray[np.int64]]:
    """The data as the model's dtype and int64 labels (copied only where they differ)."""
    arrays = []
    for split in ("train", "test"):
        x = np.asarray(getattr(data, f"x_{split}"))
        y = np.asarray(getattr(data, f"y_{split}"))
        if x.ndim != 2 or x.shape[1] != model.sizes[0] or x.shape[0] == 0:
            raise ValueError(
                f"data.x_{split}: expected shape (n >= 1, {model.sizes[0]}) for the model's "
                f"input width, got {x.shape}"
            )
        if x.dtype.kind not in "fiu":
            raise TypeError(f"data.x_{split}: expected real values, got dtype {x.dtype}")
        if y.dtype.kind not in "iu" or y.shape != (x.shape[0],):
            raise ValueError(
                f"data.y_{split}: expected {x.shape[0]} integer labels, got an array of shape "
                f"{y.shape} and dtype {y.dtype}"
            )
        if y.min() < 0 or y.max() >= model.sizes[-1]:
            raise ValueError(
                f"data.y_{split}: labels must lie in 0..{model.sizes[-1] - 1}, "
                f"found {y.min()}..{y.max()}"
            )
        arrays += [np.ascontiguousarray(x, model.dtype), np.ascontiguousarray(y, np.int64)]
    return arrays[0], arrays[1], arrays[2], arrays[3]


def _owns_params(optimizer: Optimizer, model: MLP) -> bool:
    leaves = [p for group in optimizer._leaves for p in group]
    params = list(model.params.values())
    return len(leaves) == len(params) and all(a is b for a, b in zip(leaves, params, strict=True))


def run_config(
    model: MLP, optimizer: Optimizer, data: TrainData, *, batch_size: int = 100, seed: int = 0
) -> dict[str, Any]:
    """Everything that determines a run's numbers, as plain values: what a checkpoint must match
    to be resumed or reused (see :func:`recorded_epochs`)."""
    _check_count("batch_size", batch_size, minimum=1)
    _check_count("seed", seed, minimum=0)
    return _config(model, optimizer, data, _checked_data(model, data), batch_size, seed)


def _config(
    model: MLP,
    optimizer: Optimizer,
    data: TrainData,
    arrays: Sequence[npt.NDArray[Any]],
    batch_size: int,
    seed: int,
) -> dict[str, Any]:
    digest = hashlib.sha256()
    for array in arrays:  # as trained on: the model's dtype, int64 labels, C order
        digest.update(f"{array.dtype.str} {array.shape}\n".encode())
        digest.update(array.data)
    groups = optimizer.state_dict()["param_groups"]
    config: dict[str, Any] = _plain(
        {
            "model": model.config,
            "optimizer": {
                "name": type(optimizer).__name__,
                "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in groups],
            },
            "batch_size": batch_size,
            "seed": seed,
            "data": {
                "name": str(getattr(data, "name", "")),
                "n_train": len(data.y_train),
                "n_test": len(data.y_test),
                "sha256": digest.hexdigest(),
            },
        }
    )
    return config


def _plain(value: Any) -> Any:
    """JSON-like values: tuples as lists, NumPy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _differences(saved: Any, wanted: Any, path: str = "") -> Iterable[str]:
    if isinstance(saved, dict) and isinstance(wanted, dict):
        for key in dict.fromkeys([*saved, *wanted]):
            yield from _differences(saved.get(key), wanted.get(key), f"{path}.{key}".lstrip("."))
    elif isinstance(saved, list) and isinstance(wanted, list) and len(saved) == len(wanted):
        for i, (a, b) in enumerate(zip(saved, wanted, strict=True)):
            yield from _differences(a, b, f"{path}[{i}]")
    elif saved != wanted or (type(saved) is not type(wanted) and not _same_number(saved, wanted)):
        yield f"{path or 'config'}: checkpoint has {saved!r}, this run has {wanted!r}"


def _same_number(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
        and a == b
    )


# --- checkpoints and metrics ---


def _save_checkpoint(
    path: Path,
    config: dict[str, Any],
    model: MLP,
    optimizer: Optimizer,
    history: Sequence[EpochRecord],
) -> None:
    save(
        path,
        {
            "format": FORMAT,
            "config": config,
            "epoch": len(history),
            "params": dict(model.params),
            "optimizer": optimizer.state_dict(),
            "history": [asdict(r) for r in history],
        },
    )


def recorded_epochs(run_dir: str | os.PathLike[str], config: dict[str, Any]) -> list[EpochRecord]:
    """The epochs checkpointed in ``run_dir`` ([] if it has no checkpoint), after checking that
    they were trained with exactly ``config`` (:func:`run_config`); raises
    :class:`RunMismatchError` if not, :class:`adadelta.CheckpointError` if the checkpoint is
    damaged."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return []
    return _checked_checkpoint(path, config)[1]


def _checked_checkpoint(
    path: Path, config: dict[str, Any]
) -> tuple[dict[str, Any], list[EpochRecord]]:
    tree = load(path)
    expected = {"format", "config", "epoch", "params", "optimizer", "history"}
    if not isinstance(tree, dict) or set(tree) != expected or tree["format"] != FORMAT:
        raise CheckpointError(f"{path}: not a training checkpoint (expected format {FORMAT!r})")
    differences = list(_differences(_plain(tree["config"]), config))
    if differences:
        raise RunMismatchError(
            f"{path} was written by a run with other settings; use another run_dir or the same "
            "settings:\n  " + "\n  ".join(differences)
        )
    try:
        history = [EpochRecord(**record) for record in tree["history"]]
    except TypeError as error:
        raise CheckpointError(f"{path}: malformed metrics history ({error})") from error
    completed = tree["epoch"]
    if completed != len(history) or [r.epoch for r in history] != list(range(1, completed + 1)):
        raise CheckpointError(f"{path}: epoch {completed!r} disagrees with its metrics history")
    return tree, history


def _resume(
    path: Path, config: dict[str, Any], model: MLP, optimizer: Optimizer, epochs: int
) -> list[EpochRecord]:
    """Check the checkpoint against this run, then restore the model and the optimizer."""
    tree, history = _checked_checkpoint(path, config)
    completed = len(history)
    if completed > epochs:
        raise ValueError(
            f"{path} holds {completed} completed epochs, more than the {epochs} requested"
        )
    saved_params = tree["params"]
    if not isinstance(saved_params, dict) or list(saved_params) != list(model.params):
        raise CheckpointError(f"{path}: parameters {list(saved_params)} do not match the model")
    for name, p in model.params.items():
        saved = saved_params[name]
        if not isinstance(saved, np.ndarray) or saved.shape != p.shape or saved.dtype != p.dtype:
            raise CheckpointError(f"{path}: parameter {name!r} does not match the model")
    try:
        optimizer.load_state_dict(tree["optimizer"])  # checks everything before changing anything
    except (ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"{path}: unusable optimizer state ({error})") from error
    for name, p in model.params.items():
        p[...] = saved_params[name]  # in place: the optimizer holds these arrays
    return history


def _write_metrics(path: Path, history: Sequence[EpochRecord]) -> None:
    """Replace ``path`` atomically with one JSON line per epoch of ``history``."""
    lines = "".join(json.dumps(asdict(r)) + "\n" for r in history)
    atomic_write(path, lambda f: f.write(lines.encode("utf-8")))


def read_metrics(run_dir: str | os.PathLike[str]) -> list[EpochRecord]:
    """The epochs recorded in ``run_dir/metrics.jsonl``; :class:`adadelta.CheckpointError`
    naming the file if it is not a regular file (a FIFO would block) or not one record a line
    (``FileNotFoundError`` if there is none)."""
    path = Path(run_dir) / METRICS
    with open_regular(path) as f:
        try:
            lines = f.read().decode("utf-8").split("\n")
            return [EpochRecord(**json.loads(line)) for line in lines if line.strip()]
        except (ValueError, TypeError, RecursionError) as error:  # JSON and UTF-8 errors too
            raise CheckpointError(f"{path}: corrupt metrics ({error})") from None


# --- Figure 2 ---


class StepSizeProbe:
    r"""An ``on_batch`` hook recording ADADELTA's per-dimension step sizes and updates for a
    few random entries of each weight matrix, every ``every`` steps (Zeiler 2012, Figure 2).

    At each sampled step ``t`` (``t = 1, 1 + every, 1 + 2 every, ...``) it records, for the
    ``n_dims`` chosen entries of each matrix,

    .. math::

        \text{step size} = \frac{\mathrm{RMS}[\Delta x]_{t-1}}{\mathrm{RMS}[g]_t}, \qquad
        \Delta x_t = -\text{step size} \cdot g_t

    computed exactly as the optimizer does (``g_t`` is read from ``model.grads``; the old
    :math:`E[\Delta x^2]_{t-1}` is kept from the step before). The paper's setting only:
    ``lr = 1`` and no weight decay. Samples are not checkpointed; after a resume, a sample whose
    previous step was not observed is skipped.

    ``steps[k]`` is the step number of sample ``k``; ``step_sizes[name][k]`` and
    ``updates[name][k]`` are arrays of ``n_dims`` values; ``indices[name]`` are the flat indices
    of the chosen entries.
    """

    def __init__(
        self,
        model: MLP,
        optimizer: Optimizer,
        *,
        n_dims: int = 10,
        every: int = 60,
        seed: int = 0,
        names: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(optimizer, Adadelta):
            raise TypeError(f"StepSizeProbe needs an Adadelta optimizer, got {optimizer!r}")
        if not _owns_params(optimizer, model):
            raise ValueError("optimizer: must be built on model.params")
        for group in optimizer.param_groups:
            if group["lr"] != 1 or group["weight_decay"] != 0 or group["maximize"]:
                raise ValueError(
                    "StepSizeProbe follows the paper: lr=1, weight_decay=0, maximize=False"
                )
        _check_count("n_dims", n_dims, minimum=1)
        _check_count("every", every, minimum=1)
        order = list(model.params)
        names = [k for k in order if k.startswith("W")] if names is None else list(names)
        for name in names:
            if name not in model.params:
                raise ValueError(f"names: {name!r} is not a parameter; choose from {order}")
            if model.params[name].size < n_dims:
                raise ValueError(f"names: {name!r} has fewer than n_dims={n_dims} entries")
        rng = np.random.default_rng(seed)
        self.every = every
        self.names = names
        self._slot = {name: order.index(name) for name in names}
        self._group_eps = {
            i: group["eps"]
            for group, ids in zip(
                optimizer.param_groups, optimizer.state_dict()["param_groups"], strict=True
            )
            for i in ids["params"]
        }
        self.indices = {
            name: np.sort(rng.choice(model.params[name].size, n_dims, replace=False))
            for name in names
        }
        self.steps: list[int] = []
        self.step_sizes: dict[str, list[npt.NDArray[Any]]] = {name: [] for name in names}
        self.updates: dict[str, list[npt.NDArray[Any]]] = {name: [] for name in names}
        self._old_E_dx2: dict[str, tuple[int, npt.NDArray[Any]]] = {}

    def __call__(self, epoch: int, batch_index: int, model: MLP, optimizer: Optimizer) -> None:
        for name in self.names:
            slot, idx = self._slot[name], self.indices[name]
            state = optimizer.state[slot]
            t = state["step"]
            if (t - 1) % self.every == 0:
                if t == 1:
                    old = np.zeros(idx.size, model.dtype)  # E[dx^2]_0 = 0
                elif name in self._old_E_dx2 and self._old_E_dx2[name][0] == t - 1:
                    old = self._old_E_dx2[name][1]
                else:
                    continue
                if name == self.names[0]:
                    self.steps.append(t)
                eps = self._group_eps[slot]
                E_g2 = state["E_g2"].reshape(-1)[idx]
                g = model.grads[name].reshape(-1)[idx]
                step_size = np.sqrt(old + eps) / np.sqrt(E_g2 + eps)
                self.step_sizes[name].append(step_size)
                self.updates[name].append(-step_size * g)
            if t % self.every == 0:  # the next step is sampled: keep E[dx^2]_t
                self._old_E_dx2[name] = (t, state["E_dx2"].reshape(-1)[idx])

    def as_arrays(self) -> dict[str, npt.NDArray[Any]]:
        """``{"steps": (k,), "step_size/W1": (k, n_dims), "update/W1": ..., ...}``."""
        out: dict[str, npt.NDArray[Any]] = {"steps": np.asarray(self.steps, np.int64)}
        for name in self.names:
            out[f"step_size/{name}"] = np.asarray(self.step_sizes[name])
            out[f"update/{name}"] = np.asarray(self.updates[name])
        return out
