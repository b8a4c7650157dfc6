"""Asynchronous training against a sharded parameter server (Downpour), on Ray or simulated.

Zeiler (2012), section 4.4, trained a speech network with 100 and 200 asynchronous replicas
against a parameter server (DistBelief's Downpour; Dean et al., 2012). Here:

- :class:`Shard`: a parameter-server shard. The parameters, flattened in the model's order, are
  cut into ``shards`` contiguous slices; each shard owns one slice and that slice's optimizer
  state, with the library's own optimizer built on the slice. The optimizers are element-wise,
  so the shards together apply exactly the update one optimizer on the whole model would.
  Each applied gradient carries the shard version it was computed on; the shard records its
  staleness (its version when applied minus the version fetched), the replica and the time.
- :class:`Replica`: a model replica that fetches the parameters every ``n_fetch`` steps,
  computes gradients on its own mini-batches, and pushes their mean every ``n_push`` steps.
- Two engines drive the same shards and replicas: :func:`run_ray` (one Ray actor per shard
  and per replica, Ray started locally unless an address is given) and :func:`simulate`
  (one process, deterministic: replicas interleaved in the order of simulated step times,
  each step taking a log-normally distributed time with spread ``jitter``; 100 or 200
  replicas need no cores of their own).

A completed run is written as ``OUT/runs/<name>-<hash>.json``, where the hash covers its whole
configuration (:class:`RunConfig`, the data's SHA-256 included), and is reused by any later
command asking for the same configuration. A run that stops (Ctrl-C, a lost shard) writes
nothing. A replica lost during a Ray run leaves the others going; the record names it and the
number of its gradients that were applied.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import logging
import math
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from adadelta.app.model import MLP
from adadelta.app.trainer import TrainData
from adadelta.checkpoint import atomic_write, open_regular
from adadelta.optimizers import SGD, Adadelta, Adagrad, NonFiniteGradientError, Optimizer

FloatArray = npt.NDArray[np.float32]

# The paper's speech network had 4 hidden layers of 2560 units; 4 of 128 train on a shared
# 2-core machine in the time a replica sweep allows (151,306 parameters; 2560 units on MNIST's
# 784 inputs would be 21.7 million).
SIZES = (784, 128, 128, 128, 128, 10)
MOMENTUM = 0.9
METHODS = ("SGD", "MOMENTUM", "ADAGRAD", "ADADELTA")
# SGD and MOMENTUM over a small grid (the best for 1 replica is read off the results), ADAGRAD
# at its best MNIST rate (Table 1), ADADELTA at the paper's settings (no learning rate).
GRID: dict[str, tuple[dict[str, float], ...]] = {
    "SGD": ({"lr": 1.0}, {"lr": 0.1}, {"lr": 0.01}),
    "MOMENTUM": ({"lr": 0.1}, {"lr": 0.01}, {"lr": 0.001}),
    "ADAGRAD": ({"lr": 0.01},),
    "ADADELTA": ({"rho": 0.95, "eps": 1e-6},),
}
UPDATES = 2000
EVAL_EVERY = 250
JITTER = 0.3  # the simulator's default spread of step times (log-normal sigma)


class DownpourError(RuntimeError):
    """A run could not go on (a parameter-server shard was lost); nothing was recorded."""


def make_optimizer(method: str, settings: dict[str, float], params: Any) -> Optimizer:
    """The library's optimizer for ``method`` (one of :data:`METHODS`) on ``params``."""
    if method == "SGD":
        return SGD(params, lr=settings["lr"])
    if method == "MOMENTUM":
        return SGD(params, lr=settings["lr"], momentum=MOMENTUM)
    if method == "ADAGRAD":
        return Adagrad(params, lr=settings["lr"])
    if method == "ADADELTA":
        return Adadelta(params, rho=settings["rho"], eps=settings["eps"])
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one asynchronous run's numbers (its cache key)."""

    method: str
    settings: tuple[tuple[str, float], ...]
    replicas: int
    seed: int
    engine: str  # "ray" or "simulate"
    data: tuple[str, int, int, str]  # name, n_train, n_test, SHA-256 of the arrays
    sizes: tuple[int, ...] = SIZES
    shards: int = 4
    n_fetch: int = 1
    n_push: int = 1
    updates: int = UPDATES  # gradient steps over all replicas together
    batch_size: int = 100
    eval_every: int = EVAL_EVERY  # test error every this many versions of the shards
    jitter: float | None = None  # the simulator's step-time spread (None for Ray)

    def __post_init__(self) -> None:
        check_config(self)

    @property
    def name(self) -> str:
        values = "-".join(f"{k}{v:g}" for k, v in self.settings)
        return f"{self.engine}-{self.method}-{values}-N{self.replicas}-seed{self.seed}"

    @property
    def key(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def steps_of(self, replica: int) -> int:
        """The gradient steps replica ``replica`` takes (``updates`` split as evenly as can be)."""
        share, extra = divmod(self.updates, self.replicas)
        return share + (replica < extra)


def n_parameters(sizes: Sequence[int]) -> int:
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def check_config(config: RunConfig) -> None:
    """Raise ValueError naming the first setting that cannot run."""
    if config.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {config.method!r}")
    if config.engine not in ("ray", "simulate"):
        raise ValueError(f"engine must be 'ray' or 'simulate', got {config.engine!r}")
    for name in ("replicas", "shards", "n_fetch", "n_push", "updates", "batch_size", "eval_every"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    total = n_parameters(config.sizes)
    if config.shards > total:
        raise ValueError(
            f"shards: {config.shards} is more than the network's {total} parameters; "
            "choose at most that many"
        )
    if config.updates < config.replicas:
        raise ValueError(
            f"updates: {config.updates} is fewer than the {config.replicas} replicas; every "
            "replica needs at least one step"
        )
    if (config.engine == "simulate") != (config.jitter is not None):
        raise ValueError("jitter is the simulator's setting: given for it, and for it only")
    if config.jitter is not None and not 0 <= config.jitter <= 3:
        raise ValueError(f"jitter must lie in [0, 3], got {config.jitter!r}")


def bounds_of(total: int, shards: int) -> list[int]:
    """The slice bounds of ``shards`` near-equal contiguous slices of ``total`` values."""
    return [total * k // shards for k in range(shards + 1)]


def flatten(params: dict[str, Any]) -> FloatArray:
    return np.concatenate([p.reshape(-1) for p in params.values()]).astype(np.float32)


# --- the parameter server ---


class Shard:
    """One slice of the parameters and its optimizer state; the library's optimizer applies
    every pushed gradient as it arrives, and each application is recorded."""

    def __init__(
        self, values: FloatArray, method: str, settings: dict[str, float], eval_every: int
    ) -> None:
        self.param = np.array(values, np.float32)
        self.optimizer = make_optimizer(method, settings, {"slice": self.param})
        self.eval_every = eval_every
        self.version = 0
        self.diverged_at: int | None = None  # the version whose gradient was not finite
        # one row per applied gradient: replica, staleness, time
        self.records: list[tuple[int, int, float]] = []
        self.snapshots: dict[int, tuple[FloatArray, float]] = {0: (self.param.copy(), 0.0)}

    def fetch(self) -> tuple[FloatArray, int]:
        return self.param.copy(), self.version

    def push(self, replica: int, gradient: FloatArray, version: int, now: float) -> bool:
        """Apply ``gradient``, computed on ``version``; False once the run has diverged."""
        if self.diverged_at is not None:
            return False
        try:
            self.optimizer.step({"slice": gradient})
        except NonFiniteGradientError:
            self.diverged_at = self.version + 1
            return False
        self.records.append((replica, self.version - version, now))
        self.version += 1
        if self.version % self.eval_every == 0:
            self.snapshots[self.version] = (self.param.copy(), now)
        return True

    def ping(self) -> int:
        return self.version

    def result(self) -> dict[str, Any]:
        return {
            "records": np.array(self.records, np.float64).reshape(-1, 3),
            "snapshots": self.snapshots,
            "version": self.version,
            "param": self.param.copy(),
            "diverged_at": self.diverged_at,
        }


class Server(Protocol):
    """How a replica reaches the shards: directly (:class:`LocalServer`) or through Ray."""

    def fetch(self) -> tuple[FloatArray, list[int]]: ...
    def push(self, replica: int, gradient: FloatArray, versions: list[int], now: float) -> bool: ...


class LocalServer:
    def __init__(self, shards: Sequence[Shard], bounds: Sequence[int]) -> None:
        self.shards, self.bounds = list(shards), list(bounds)

    def fetch(self) -> tuple[FloatArray, list[int]]:
        parts = [s.fetch() for s in self.shards]
        return np.concatenate([p for p, _ in parts]), [v for _, v in parts]

    def push(self, replica: int, gradient: FloatArray, versions: list[int], now: float) -> bool:
        go_on = True
        for k, shard in enumerate(self.shards):
            piece = gradient[self.bounds[k] : self.bounds[k + 1]]
            go_on &= shard.push(replica, piece, versions[k], now)
        return go_on


# --- a model replica ---


class Replica:
    """One model replica: its steps are :meth:`begin` (fetch when due, compute a gradient on
    the next mini-batch of its own order) and :meth:`end` (push the mean gradient when due)."""

    def __init__(
        self, index: int, config: RunConfig, x: npt.NDArray[Any], y: npt.NDArray[Any]
    ) -> None:
        self.index, self.config = index, config
        self.model = MLP(config.sizes, "relu", seed=config.seed)
        self.x, self.y = x, y
        self.steps = config.steps_of(index)
        self.done = 0
        self.rng = np.random.default_rng([config.seed, index])
        self.order = self.rng.permutation(len(y))
        self.position = 0
        self.total = np.zeros(n_parameters(config.sizes), np.float32)
        self.accumulated = 0
        self.versions: list[int] = []
        self.stopped = False
        self.loss = float("nan")

    def _load(self, flat: FloatArray) -> None:
        start = 0
        for p in self.model.params.values():
            p.reshape(-1)[:] = flat[start : start + p.size]
            start += p.size

    def _batch(self) -> npt.NDArray[np.int64]:
        if self.position + self.config.batch_size > len(self.order):
            self.order, self.position = self.rng.permutation(len(self.y)), 0
        rows = self.order[self.position : self.position + self.config.batch_size]
        self.position += self.config.batch_size
        return rows

    def begin(self, server: Server) -> None:
        if self.done % self.config.n_fetch == 0:
            flat, self.versions = server.fetch()
            self._load(flat)
        rows = self._batch()
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run: the shard says so
            self.loss, grads = self.model.loss_and_grads(self.x[rows], self.y[rows])
        start = 0
        for g in grads.values():
            self.total[start : start + g.size] += g.reshape(-1)
            start += g.size
        self.accumulated += 1

    def end(self, server: Server, now: float) -> bool:
        """Finish the step; False when this replica has taken its last step."""
        self.done += 1
        if self.done % self.config.n_push == 0 or self.done == self.steps:
            mean = self.total / np.float32(self.accumulated)
            self.stopped = not server.push(self.index, mean, self.versions, now)
            self.total[:] = 0
            self.accumulated = 0
        return not self.stopped and self.done < self.steps


# --- the engines ---


def _shards(config: RunConfig) -> tuple[list[Shard], list[int]]:
    initial = flatten(MLP(config.sizes, "relu", seed=config.seed).params)
    bounds = bounds_of(initial.size, config.shards)
    settings = dict(config.settings)
    shards = [
        Shard(initial[bounds[k] : bounds[k + 1]], config.method, settings, config.eval_every)
        for k in range(config.shards)
    ]
    return shards, bounds


Progress = Callable[[int], None]  # called with the number of gradients applied so far


def simulate(config: RunConfig, data: TrainData, progress: Progress | None = None) -> list[Any]:
    """Run ``config`` in this process: replicas interleaved by simulated time (each step
    ``exp(jitter * N(0, 1))`` time units, drawn from one random stream per seed and replica), the
    same shards and replicas as :func:`run_ray`. Returns the shards' results."""
    assert config.jitter is not None
    with threadpool_limits(1):  # one BLAS thread, as every Ray actor has
        return _simulate(config, data, progress)


def _simulate(config: RunConfig, data: TrainData, progress: Progress | None) -> list[Any]:
    assert config.jitter is not None
    shards, bounds = _shards(config)
    server = LocalServer(shards, bounds)
    x, y = np.ascontiguousarray(data.x_train, np.float32), np.asarray(data.y_train, np.int64)
    replicas = [Replica(i, config, x, y) for i in range(config.replicas)]
    clocks = [np.random.default_rng([config.seed, i, 1]) for i in range(config.replicas)]
    # events: (time, kind, replica); kind 0 ends a step, 1 begins one (ends first at a tie)
    events = [(0.0, 1, i) for i in range(config.replicas)]
    applied = 0
    while events:
        now, kind, i = heapq.heappop(events)
        if kind == 1:
            replicas[i].begin(server)
            duration = float(np.exp(config.jitter * clocks[i].standard_normal()))
            heapq.heappush(events, (now + duration, 0, i))
        else:
            more = replicas[i].end(server, now)
            applied += 1
            if progress is not None:
                progress(applied)
            if more:
                heapq.heappush(events, (now, 1, i))
            elif replicas[i].stopped:  # diverged: every replica stops
                break
    return [s.result() for s in shards]


def check_address(address: str) -> None:
    """Raise DownpourError unless ``host:port`` accepts a connection within 3 seconds."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=3):
            pass
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise DownpourError(
            f"--address {address}: no Ray cluster answers there ({reason}); start one with "
            "'ray start --head' and pass the address it prints, or drop --address to start "
            "Ray inside the command"
        ) from None


class _ReplicaActor:
    """A replica in a Ray actor, reaching the shard actors through :class:`_RayServer`."""

    def __init__(
        self, index: int, config: RunConfig, x: Any, y: Any, shards: list[Any], start: float
    ) -> None:
        threadpool_limits(1)  # many actors share the cores: one BLAS thread each
        self.replica = Replica(index, config, x, y)
        self.server = _RayServer(shards, bounds_of(self.replica.total.size, config.shards))
        self.start = start

    def run(self) -> list[float]:
        """Take every step; the compute time of each (seconds)."""
        durations = []
        while True:
            begun = time.perf_counter()
            self.replica.begin(self.server)
            durations.append(time.perf_counter() - begun)
            if not self.replica.end(self.server, time.time() - self.start):
                return durations


class _RayServer:
    def __init__(self, shards: list[Any], bounds: list[int]) -> None:
        self.shards, self.bounds = shards, bounds

    def fetch(self) -> tuple[FloatArray, list[int]]:
        import ray

        parts = ray.get([s.fetch.remote() for s in self.shards])
        return np.concatenate([p for p, _ in parts]), [v for _, v in parts]

    def push(self, replica: int, gradient: FloatArray, versions: list[int], now: float) -> bool:
        import ray

        pieces = [
            s.push.remote(replica, gradient[self.bounds[k] : self.bounds[k + 1]], versions[k], now)
            for k, s in enumerate(self.shards)
        ]
        return all(ray.get(pieces))


@dataclass
class RayRun:
    """What a Ray run returns beside the shards' results."""

    shard_results: list[Any]
    durations: list[float]  # every replica's step compute times, seconds
    lost: list[int] = field(default_factory=list)  # replicas whose actor died


Watch = Callable[[int, list[Any], list[Any]], None]  # (applied, replica actors, shard actors)


def run_ray(
    config: RunConfig,
    data: TrainData,
    *,
    address: str | None = None,
    progress: Progress | None = None,
    watch: Watch | None = None,
    timeout: float = 60.0,
) -> RayRun:
    """Run ``config`` on Ray: one actor per shard and per replica. Ray is started in this
    process (on the local cores, each actor asking for an equal share of them) unless it runs
    already or ``address`` names a cluster; what this function started it stops. A replica
    actor that dies is recorded in :attr:`RayRun.lost` and the others go on; a shard that dies
    raises :class:`DownpourError`. ``timeout`` bounds each wait on a shard."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=False,
        )
    actors: list[Any] = []
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))  # type: ignore[no-untyped-call]
        share = min(1.0, cpus / (config.replicas + config.shards))
        shard_class: Any = ray.remote(num_cpus=share, max_restarts=0)(Shard)
        replica_class: Any = ray.remote(num_cpus=share, max_restarts=0)(_ReplicaActor)
        initial = flatten(MLP(config.sizes, "relu", seed=config.seed).params)
        bounds = bounds_of(initial.size, config.shards)
        settings = dict(config.settings)
        shards = [
            shard_class.remote(
                initial[bounds[k] : bounds[k + 1]], config.method, settings, config.eval_every
            )
            for k in range(config.shards)
        ]
        actors += shards
        x_ref = ray.put(np.ascontiguousarray(data.x_train, np.float32))
        y_ref = ray.put(np.asarray(data.y_train, np.int64))
        start = time.time()
        replicas = [
            replica_class.remote(i, config, x_ref, y_ref, shards, start)
            for i in range(config.replicas)
        ]
        actors += replicas
        pending = {r.run.remote(): i for i, r in enumerate(replicas)}
        durations: list[float] = []
        lost: list[int] = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for ref in done:
                index = pending.pop(ref)
                try:
                    durations += ray.get(ref)
                except ray.exceptions.RayError:
                    _check_shards(ray, shards, timeout)  # a lost shard stops the run
                    lost.append(index)
            applied = _check_shards(ray, shards, timeout)
            if progress is not None:
                progress(applied)
            if watch is not None:
                watch(applied, replicas, shards)
        results = ray.get([s.result.remote() for s in shards], timeout=timeout)
        return RayRun(results, durations, sorted(lost))
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _check_shards(ray: Any, shards: list[Any], timeout: float) -> int:
    """The first shard's version, after checking that every shard answers."""
    try:
        versions = ray.get([s.ping.remote() for s in shards], timeout=timeout)
    except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as error:
        raise DownpourError(
            f"a parameter-server shard was lost ({type(error).__name__}); the run stopped "
            "and was not recorded: run the same command again to train it from the start"
        ) from None
    return int(versions[0])


# --- one run, cached ---


@dataclass
class RunResult:
    """A completed run: test error by version, staleness counts, and what went wrong."""

    config: RunConfig
    versions: list[int]
    seconds: list[float]  # the time each version was reached (simulated units for simulate)
    test_error: list[float]
    diverged_at: int | None
    staleness: dict[int, int]  # staleness -> how many applied gradient slices had it
    pushes: list[int]  # per replica: its gradients applied (on the first shard)
    lost: list[int]  # replicas whose actor died
    wall_seconds: float
    step_seconds: list[float]  # Ray only: the mean and the coefficient of variation of steps

    def final(self) -> float | None:
        return None if self.diverged_at is not None else self.test_error[-1]

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["config"] = asdict(self.config)
        document["staleness"] = {str(k): v for k, v in sorted(self.staleness.items())}
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> RunResult:
        raw = dict(document["config"])
        raw["settings"] = tuple((str(k), float(v)) for k, v in raw["settings"])
        raw["data"] = tuple(raw["data"])
        raw["sizes"] = tuple(raw["sizes"])
        config = RunConfig(**raw)
        fields = dict(document)
        fields["config"] = config
        fields["staleness"] = {int(k): int(v) for k, v in document["staleness"].items()}
        return cls(**fields)


def evaluate(
    config: RunConfig, results: list[Any], data: TrainData, *, lost: Sequence[int] = ()
) -> tuple[list[int], list[float], list[float], dict[int, int], list[int], int | None]:
    """Test errors at the versions every shard snapshotted, staleness counts, pushes per
    replica and the divergence point, from the shards' results."""
    common = set.intersection(*(set(r["snapshots"]) for r in results))
    versions = sorted(common)
    model = MLP(config.sizes, "relu", seed=config.seed)
    errors, seconds = [], []
    for v in versions:
        flat = np.concatenate([r["snapshots"][v][0] for r in results])
        start = 0
        for p in model.params.values():
            p.reshape(-1)[:] = flat[start : start + p.size]
            start += p.size
        errors.append(model.error_rate(data.x_test, data.y_test))
        seconds.append(max(float(r["snapshots"][v][1]) for r in results))
    records = np.concatenate([r["records"] for r in results])
    values, counts = np.unique(records[:, 1].astype(np.int64), return_counts=True)
    staleness = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    first = results[0]["records"][:, 0].astype(np.int64)
    pushes = np.bincount(first, minlength=config.replicas).tolist()
    diverged = [r["diverged_at"] for r in results if r["diverged_at"] is not None]
    return versions, seconds, errors, staleness, pushes, min(diverged) if diverged else None


def run(
    config: RunConfig,
    data: TrainData,
    out: Path,
    *,
    address: str | None = None,
    progress: Progress | None = None,
    watch: Watch | None = None,
) -> RunResult:
    """The result of ``config``: read from ``out/runs/`` if a run with exactly this
    configuration completed before, else trained (and then written there atomically)."""
    path = out / "runs" / f"{config.name}-{config.key[:12]}.json"
    if path.exists():
        cached = read_run(path)
        if cached.config == config:
            return cached
    begun = time.perf_counter()
    lost: list[int] = []
    step_seconds: list[float] = []
    if config.engine == "simulate":
        results = simulate(config, data, progress)
    else:
        outcome = run_ray(config, data, address=address, progress=progress, watch=watch)
        results, lost = outcome.shard_results, outcome.lost
        d = np.array(outcome.durations)
        step_seconds = [float(d.mean()), float(d.std() / d.mean())] if d.size else []
    wall = time.perf_counter() - begun
    with threadpool_limits(1):
        versions, seconds, errors, staleness, pushes, diverged = evaluate(config, results, data)
    result = RunResult(
        config, versions, seconds, errors, diverged, staleness, pushes, lost, wall, step_seconds
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result.to_json(), indent=1) + "\n"
    atomic_write(path, partial(_write_bytes, text.encode()))
    return result


def read_run(path: Path) -> RunResult:
    """A run's record as :func:`run` wrote it (JSON, never unpickled), or DownpourError naming
    the file if it is not one."""
    try:
        with open_regular(path, DownpourError) as f:
            return RunResult.from_json(json.loads(f.read()))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise DownpourError(
            f"{path}: not a run record ({type(error).__name__}: {error}); delete it, and the "
            "run is trained again"
        ) from None


def _write_bytes(content: bytes, f: IO[bytes]) -> None:
    f.write(content)


def data_key(data: TrainData) -> tuple[str, int, int, str]:
    """The data's name, sizes and SHA-256 (as the runs are trained on: float32, int64)."""
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        a = np.ascontiguousarray(array, np.float32 if array.ndim == 2 else np.int64)
        digest.update(f"{a.dtype.str} {a.shape}\n".encode())
        digest.update(a.data)
    return str(data.name), len(data.y_train), len(data.y_test), digest.hexdigest()


# --- staleness agreement ---


def ks_distance(a: dict[int, int], b: dict[int, int]) -> float:
    """The Kolmogorov-Smirnov statistic between two staleness distributions (counts): the
    largest difference between their cumulative distribution functions."""
    support = sorted(set(a) | set(b))
    ca = np.cumsum([a.get(s, 0) for s in support]) / max(1, sum(a.values()))
    cb = np.cumsum([b.get(s, 0) for s in support]) / max(1, sum(b.values()))
    return float(np.max(np.abs(ca - cb))) if support else 0.0


def quantiles(counts: dict[int, int], qs: Sequence[float] = (0.1, 0.5, 0.9)) -> list[int]:
    values = np.repeat(list(counts), list(counts.values()))
    return [int(np.quantile(values, q)) for q in qs] if values.size else []


def mean_staleness(counts: dict[int, int]) -> float:
    total = sum(counts.values())
    return sum(k * v for k, v in counts.items()) / total if total else math.nan


# --- the experiment ---


@dataclass(frozen=True)
class Plan:
    """What ``adadelta async`` runs: every method setting of :data:`GRID` (those of
    ``methods``) at every replica count, on Ray and in the simulator, for ``seeds`` seeds; the
    test error after every eighth of the updates."""

    ray: tuple[int, ...] = (1, 4, 16)
    simulate: tuple[int, ...] = (1, 4, 16, 100, 200)
    methods: tuple[str, ...] = METHODS
    seeds: int = 1
    shards: int = 4
    n_fetch: int = 1
    n_push: int = 1
    updates: int = UPDATES
    jitter: float = JITTER
    sizes: tuple[int, ...] = SIZES

    def configs(self, data: tuple[str, int, int, str]) -> list[RunConfig]:
        """Every run, checked (ValueError names the first bad setting): the simulator's first,
        then Ray's, the largest replica counts first within each."""
        runs = []
        for engine, counts in (("simulate", self.simulate), ("ray", self.ray)):
            for replicas in sorted(counts, reverse=True):
                for method in self.methods:
                    for settings in GRID[method]:
                        for seed in range(self.seeds):
                            runs.append(
                                RunConfig(
                                    method,
                                    tuple(settings.items()),
                                    replicas,
                                    seed,
                                    engine,
                                    data,
                                    sizes=self.sizes,
                                    shards=self.shards,
                                    n_fetch=self.n_fetch,
                                    n_push=self.n_push,
                                    updates=self.updates,
                                    eval_every=max(1, self.updates // 8),
                                    jitter=self.jitter if engine == "simulate" else None,
                                )
                            )
        return runs


def experiment(
    plan: Plan,
    data: TrainData,
    out: Path,
    *,
    address: str | None = None,
    progress: bool = False,
) -> tuple[str, list[str]]:
    """Run (or reuse) every run of ``plan``, then write ``out/async.json`` (every completed
    run in ``out/runs/``, this command's and earlier ones'), ``out/async.md`` (their tables) and
    the figures; returns the markdown and the figures' file names."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    configs = plan.configs(data_key(data))
    bar = tqdm(total=len(configs), unit="run", disable=not progress, desc="async")
    try:
        for config in configs:
            bar.set_postfix_str(config.name)
            inner = tqdm(total=config.updates, unit="update", leave=False, disable=not progress)

            def advance(applied: int, inner: Any = inner) -> None:
                inner.update(applied - inner.n)

            try:
                run(config, data, out, address=address, progress=advance)
            finally:
                inner.close()
            bar.update()
    finally:
        bar.close()
    everything = [read_run(path) for path in sorted((out / "runs").glob("*.json"))]
    markdown, figures = report(everything, out)
    document = {"runs": [r.to_json() for r in everything]}
    atomic_write(out / "async.json", partial(_write_bytes, (json.dumps(document) + "\n").encode()))
    atomic_write(out / "async.md", partial(_write_bytes, markdown.encode()))
    return markdown, figures


Group = dict[tuple[str, tuple[tuple[str, float], ...]], list[RunResult]]
Setup = tuple[Any, ...]  # what a table's runs share: everything but method, settings, N, seed


def _setup(c: RunConfig) -> Setup:
    return (c.engine, c.updates, c.jitter, c.sizes, c.shards, c.n_fetch, c.n_push, c.data)


def _describe(setup: Setup) -> str:
    engine, updates, jitter, sizes, shards, n_fetch, n_push, data = setup
    what = "real Ray replicas" if engine == "ray" else f"simulated replicas, jitter {jitter:g}"
    return (
        f"{what}; {updates} updates; network {'-'.join(map(str, sizes))}; {shards} shards; "
        f"n_fetch {n_fetch}, n_push {n_push}; {data[0]} {data[1]}/{data[2]}"
    )


def _tables(results: Sequence[RunResult]) -> dict[Setup, dict[int, Group]]:
    """setup -> replicas -> (method, settings) -> the seeds' results."""
    tables: dict[Setup, dict[int, Group]] = {}
    for r in results:
        c = r.config
        tables.setdefault(_setup(c), {}).setdefault(c.replicas, {}).setdefault(
            (c.method, c.settings), []
        ).append(r)
    return tables


def _label(method: str, settings: tuple[tuple[str, float], ...]) -> str:
    if method == "ADADELTA":
        return method
    return f"{method} {', '.join(f'{k} {v:g}' for k, v in settings)}"


def _finals(runs: Sequence[RunResult]) -> npt.NDArray[np.float64]:
    return np.array([r.final() for r in runs if r.final() is not None], np.float64)


def _cell(runs: Sequence[RunResult], seeds: int) -> str:
    """Mean ± std of the final errors; how many seeds diverged; how many ran, if fewer than
    ``seeds``."""
    finals = _finals(runs)
    fewer = f" [{len(runs)} seed(s)]" if len(runs) < seeds else ""
    if finals.size == 0:
        return f"diverged ({len(runs)}){fewer}"
    text = f"{finals.mean():.2f}" + (f" ± {finals.std(ddof=1):.2f}" if finals.size > 1 else "")
    return text + (f", {len(runs) - finals.size} div." if finals.size < len(runs) else "") + fewer


def _mean_curve(runs: Sequence[RunResult]) -> float:
    """The mean over seeds of each run's mean test error over its evaluations (lower: faster
    convergence); NaN if a seed diverged."""
    if any(r.diverged_at is not None for r in runs):
        return math.nan
    return float(np.mean([np.mean(r.test_error) for r in runs]))


def _best(group: Group, method: str) -> tuple[tuple[tuple[str, float], ...], list[RunResult]]:
    """The method's setting with the lowest mean final error (diverged seeds count as 100)."""
    options = [(s, rs) for (m, s), rs in group.items() if m == method]

    def score(item: tuple[Any, list[RunResult]]) -> float:
        return float(np.mean([100.0 if r.final() is None else r.final() for r in item[1]]))

    return min(options, key=score)


MATCH = 0.5  # points of test error within which ADADELTA "matches" MOMENTUM's final error


def report(results: Sequence[RunResult], out: Path) -> tuple[str, list[str]]:
    """The markdown summary and the figures of ``results``: one table of final test errors per
    setup (engine, updates, jitter, network, shards, n_fetch, n_push, data), the paper's claim
    at each replica count, and the staleness of real runs against the simulator's."""
    tables = _tables(results)
    lines = [
        "Test error % after the last update, mean ± std over seeds; 'div.' counts the seeds "
        "whose gradients became NaN or infinite (the run stops there). ReLU network, "
        "mini-batches of 100.",
        "",
    ]
    figures: list[str] = []
    for setup in sorted(tables, key=lambda k: (k[0] == "ray", k[1], k[2] or 0.0)):
        table = tables[setup]
        counts = sorted(table)
        keys = sorted(
            {k for g in table.values() for k in g},
            key=lambda k: (METHODS.index(k[0]), -dict(k[1]).get("lr", 0)),
        )
        seeds = max(len(rs) for g in table.values() for rs in g.values())
        lines += [
            f"### {_describe(setup)} (up to {seeds} seed(s))",
            "",
            "| method | " + " | ".join(f"N = {n}" for n in counts) + " |",
            "|---" * (len(counts) + 1) + "|",
        ]
        for key in keys:
            cells = [_cell(table[n][key], seeds) if key in table[n] else "" for n in counts]
            lines.append(f"| {_label(*key)} | " + " | ".join(cells) + " |")
        lines += ["", *_claim(table), ""]
        for n in counts:
            name = f"async-{setup[0]}-{setup[1]}u" + ("" if setup[2] is None else f"-j{setup[2]:g}")
            figures.append(_draw(table[n], out, f"{name}-N{n}.png", _describe(setup), n))
    staleness_lines, figure = _agreement(tables, out)
    lines += staleness_lines
    figures += [figure] if figure else []
    lines += ["", *(f"![{f}]({f})" for f in figures)]
    return "\n".join(lines) + "\n", figures


def _claim(table: dict[int, Group]) -> list[str]:
    """The paper's claim at each replica count: ADADELTA converges faster than ADAGRAD (a
    lower mean test error over the run's evaluations) and matches MOMENTUM's final error (its
    mean final error at most MATCH points above MOMENTUM's best setting's)."""
    lines = []
    for n, group in sorted(table.items()):
        methods = {m for m, _ in group}
        if not {"ADADELTA", "ADAGRAD", "MOMENTUM"} <= methods:
            continue
        delta = _best(group, "ADADELTA")[1]
        adagrad = _best(group, "ADAGRAD")[1]
        momentum_settings, momentum = _best(group, "MOMENTUM")
        a, g = _mean_curve(delta), _mean_curve(adagrad)
        fd, fm = _finals(delta), _finals(momentum)
        if math.isnan(a):
            faster = "does not hold (ADADELTA diverged)"
        else:
            faster = "holds" if math.isnan(g) or a < g else "does not hold"
            faster += f" (mean error over the run {a:.2f} against {g:.2f})"
        if fd.size < len(delta):
            matches = "does not hold (ADADELTA diverged)"
        elif fm.size == 0:
            matches = f"cannot be compared (every MOMENTUM seed diverged; ADADELTA {fd.mean():.2f})"
        else:
            verdict = "holds" if fd.mean() <= fm.mean() + MATCH else "does not hold"
            matches = f"{verdict} ({fd.mean():.2f} against {fm.mean():.2f})"
        lines.append(
            f"- N = {n}: faster than ADAGRAD: {faster}; matches MOMENTUM "
            f"({_label('MOMENTUM', momentum_settings)}): {matches}"
        )
    if lines:
        lines.insert(
            0,
            "The paper's claim, measured: 'faster than ADAGRAD' compares the mean test error "
            "over a run's evaluations (the area under its curve); 'matches MOMENTUM' asks "
            f"ADADELTA's mean final error to be at most {MATCH} points above that of "
            "MOMENTUM's best setting at that replica count.\n",
        )
    return lines


def _pooled(group: Group) -> dict[int, int]:
    counts: dict[int, int] = {}
    for runs in group.values():
        for r in runs:
            for k, v in r.staleness.items():
                counts[k] = counts.get(k, 0) + v
    return counts


def _agreement(tables: dict[Setup, dict[int, Group]], out: Path) -> tuple[list[str], str]:
    """Real staleness against the simulator's at every jitter, where both ran the same setup."""
    rows = []
    curves: dict[int, list[tuple[str, dict[int, int]]]] = {}
    for setup, table in tables.items():
        if setup[0] != "ray":
            continue
        twins = [
            (k[2], t)
            for k, t in tables.items()
            if k[0] == "simulate" and k[3:] == setup[3:] and k[1] == setup[1]
        ]
        for n, group in sorted(table.items()):
            real = _pooled(group)
            steps = [r.step_seconds for rs in group.values() for r in rs if r.step_seconds]
            ms = np.mean([s[0] for s in steps]) * 1e3 if steps else math.nan
            cv = np.mean([s[1] for s in steps]) if steps else math.nan
            rows.append(
                f"| {n} | real Ray ({sum(map(len, group.values()))} runs; step {ms:.0f} ms, "
                f"CV {cv:.2f}) | {mean_staleness(real):.2f} | {quantiles(real)} | |"
            )
            if n > 1:  # one replica: no staleness to draw
                curves[n] = [("real Ray", real)]
            for jitter, twin in sorted(twins, key=lambda t: t[0]):
                if n not in twin:
                    continue
                sim = _pooled(twin[n])
                if n > 1:
                    curves[n].append((f"simulated, jitter {jitter:g}", sim))
                rows.append(
                    f"| {n} | simulator, jitter {jitter:g} ({sum(map(len, twin[n].values()))} "
                    f"runs) | {mean_staleness(sim):.2f} | {quantiles(sim)} | "
                    f"{ks_distance(real, sim):.3f} |"
                )
    if not rows:
        return [], ""
    lines = [
        "### Staleness: real Ray runs against the simulator",
        "",
        "Staleness of an applied gradient slice: the shard's version when it was applied minus "
        "the version it was computed on, pooled over every run, shard and seed at that replica "
        "count. KS: the Kolmogorov-Smirnov statistic against the real runs (the largest gap "
        "between the two cumulative distributions; 0 identical, 1 disjoint). Step: the mean "
        "compute time of a real replica's step and its coefficient of variation.",
        "",
        "| N | source | mean | 10/50/90 % | KS |",
        "|---|---|---|---|---|",
        *rows,
    ]
    lost = [
        (r.config.name, r.lost)
        for t in tables.values()
        for g in t.values()
        for rs in g.values()
        for r in rs
        if r.lost
    ]
    lines += [""] + [f"- {name}: replica(s) {ids} lost during the run" for name, ids in lost]
    from matplotlib.figure import Figure

    if not curves:
        return lines, ""
    fig = Figure(figsize=(5 * len(curves), 4), dpi=100)
    axes = fig.subplots(1, len(curves), squeeze=False)[0]
    for ax, (n, series) in zip(axes, sorted(curves.items()), strict=True):
        for label, c in series:
            support = sorted(c)
            cdf = np.cumsum([c[k] for k in support]) / sum(c.values())
            width = 2.5 if label == "real Ray" else 1.2
            ax.step(support, cdf, where="post", label=label, linewidth=width)
        ax.set_title(f"{n} replicas")
        ax.set_xlabel("staleness (shard versions)")
        ax.set_ylabel("cumulative fraction of applied gradients")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    name = "async-staleness.png"
    fig.savefig(out / name)
    return lines, name


def _draw(group: Group, out: Path, name: str, title: str, n: int) -> str:
    from matplotlib.figure import Figure

    from adadelta.app.plots import STYLE

    fig = Figure(figsize=(11, 4.2), dpi=100)
    by_update, by_time = fig.subplots(1, 2)
    engine_is_ray = title.startswith("real")
    for method in METHODS:
        if not any(m == method for m, _ in group):
            continue
        settings, runs = _best(group, method)
        style = dict(STYLE[method])
        label = _label(method, settings) + f" ({len(runs)} seed(s))"
        length = min(len(r.versions) for r in runs)
        errors = np.array([r.test_error[:length] for r in runs])
        versions = np.array(runs[0].versions[:length])
        times = np.mean([r.seconds[:length] for r in runs], axis=0)
        mean = errors.mean(axis=0)
        for ax, x in ((by_update, versions), (by_time, times)):
            ax.plot(x, mean, label=label, markersize=5, linewidth=1.2, **style)
            if len(runs) > 1:
                std = errors.std(axis=0, ddof=1)
                color = style.get("color", "gray")
                ax.fill_between(x, mean - std, mean + std, alpha=0.15, lw=0, color=color)
    by_update.set_xlabel("updates applied (shard version)")
    by_time.set_xlabel(
        "wall time, s (a shared 2-core machine)"
        if engine_is_ray
        else "simulated time (mean step times; one core per replica)"
    )
    for ax in (by_update, by_time):
        ax.set_ylabel("test error % (mean over seeds)")
        ax.set_ylim(1, 100)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    by_update.legend(fontsize=7)
    fig.suptitle(f"N = {n}: {title}\neach method at its best setting here", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / name)
    return name


# --- the command line: ``adadelta async`` ---


def add_arguments(parser: Any) -> None:
    from adadelta.app.cli import _pair, _positive

    parser.add_argument(
        "--ray",
        type=_counts,
        default=(1, 4, 16),
        metavar="N,...",
        help="replica counts trained on Ray, one actor per replica and per shard ('none': no "
        "Ray runs) (default: 1,4,16)",
    )
    parser.add_argument(
        "--simulate",
        type=_counts,
        default=(1, 4, 16, 100, 200),
        metavar="N,...",
        help="replica counts run by the deterministic simulator ('none': no simulated runs) "
        "(default: 1,4,16,100,200)",
    )
    parser.add_argument(
        "--methods",
        type=_methods,
        default=METHODS,
        metavar="M,...",
        help=f"some of {','.join(METHODS)} (default: all, each over its settings)",
    )
    parser.add_argument("--seeds", type=_positive, default=1, metavar="N", help="seeds 0..N-1")
    parser.add_argument(
        "--updates",
        type=_positive,
        default=UPDATES,
        metavar="N",
        help="gradient steps of all replicas together (default: %(default)s)",
    )
    parser.add_argument(
        "--shards", type=_positive, default=4, metavar="K", help="parameter-server shards"
    )
    parser.add_argument("--n-fetch", type=_positive, default=1, metavar="N", help="fetch every N")
    parser.add_argument("--n-push", type=_positive, default=1, metavar="N", help="push every N")
    parser.add_argument(
        "--jitter",
        type=float,
        default=JITTER,
        help="the simulator's spread of step times, a log-normal sigma (default: %(default)s)",
    )
    parser.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="attach to this Ray cluster (default: start Ray inside the command)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("adadelta-async"),
        metavar="DIR",
        help="output directory; completed runs are kept in DIR/runs/ and reused (default: "
        "%(default)s)",
    )
    parser.add_argument("--data", type=Path, metavar="DIR", help="MNIST directory")
    parser.add_argument("--no-download", action="store_true", help="never download MNIST")
    parser.add_argument(
        "--subset", type=_pair, metavar="N_TRAIN,N_TEST", help="the first images only"
    )
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false", help="hide the progress bars"
    )


def _counts(text: str) -> tuple[int, ...]:
    import argparse

    if text == "none":
        return ()
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected replica counts such as 4,16 (or none), got {text!r}"
        ) from None
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"replica counts must be at least 1, got {text!r}")
    return counts


def _methods(text: str) -> tuple[str, ...]:
    import argparse

    methods = tuple(part.strip().upper() for part in text.split(","))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; choose from {METHODS}")
    return methods


def main(args: Any) -> int:
    """``adadelta async``: every setting is checked before any work, then the runs."""
    from adadelta.app import experiments
    from adadelta.app.cli import CommandError, _check_present, _prepare_out
    from adadelta.app.datasets import load_mnist

    plan = Plan(
        ray=args.ray,
        simulate=args.simulate,
        methods=args.methods,
        seeds=args.seeds,
        shards=args.shards,
        n_fetch=args.n_fetch,
        n_push=args.n_push,
        updates=args.updates,
        jitter=args.jitter,
    )
    try:
        plan.configs(("", 1, 1, ""))
    except ValueError as error:
        raise CommandError("--" + str(error).replace("_", "-", 1)) from None
    if not plan.ray and not plan.simulate:
        raise CommandError("--ray none --simulate none: nothing to run; give replica counts")
    if plan.ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise CommandError(
                "Ray runs need the async extra: pip install 'adadelta[async]' (or pass "
                "--ray none to run the simulator only)"
            ) from None
        if args.address is not None:
            try:
                check_address(args.address)
            except DownpourError as error:
                raise CommandError(str(error)) from None
    if args.no_download:
        _check_present(args.data)
    data = load_mnist(args.data, download=not args.no_download, progress=args.progress)
    if args.subset is not None:
        n_train, n_test = args.subset
        if n_train > len(data.y_train) or n_test > len(data.y_test):
            raise CommandError(
                f"--subset {n_train},{n_test}: MNIST has {len(data.y_train)} training and "
                f"{len(data.y_test)} test images; choose fewer"
            )
        data = data.subset(n_train, n_test)
    _prepare_out(args.out)
    start = time.perf_counter()
    try:
        with experiments.locked(args.out):
            markdown, figures = experiment(
                plan, data, args.out, address=args.address, progress=args.progress
            )
    except DownpourError as error:
        raise CommandError(str(error)) from None
    except KeyboardInterrupt:
        kept = len(list((args.out / "runs").glob("*.json")))
        raise experiments.Interrupted(
            f"{kept} completed run(s) are kept in {args.out / 'runs'}; run the same command "
            "to go on (the interrupted run starts again)"
        ) from None
    print(markdown)
    for figure in figures:
        print(f"figure: {args.out / figure}")
    print(f"\nwrote {args.out}/ in {time.perf_counter() - start:.1f} s")
    return 0
