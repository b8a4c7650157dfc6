"""How many threads training's matrix products should run on: the BLAS library's own number, one,
or what :class:`adadelta.app.trainer.BlasThreads` chooses by timing (what :func:`train` does);
and what cutting the products in pieces (:func:`adadelta.app.model.matmul`, for the same bits on
any number of threads) costs: the last setting takes them in one piece, on the library's own
threads, as before.

One epoch of the paper's network (784-500-300-10, ReLU, batch 100, ADADELTA rho 0.95 eps 1e-6,
float32) on MNIST, under each setting, without and with one competing CPU-bound process; the
table gives the median over ``--repeats`` epochs, the settings alternating, in one process.

    python benchmarks/blas_threads.py --data ../shared/data/mnist --out benchmarks/results
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numba
from threadpoolctl import threadpool_limits

from adadelta.app import bench, model, trainer

SETTINGS = ("chosen by timing", "the library's own", "one", "the library's own, one piece")


@contextmanager
def blas_setting(setting: str) -> Iterator[None]:
    """Training under ``setting``: the trainer's choice, or a fixed number of BLAS threads."""
    if setting == "chosen by timing":
        yield
        return
    timed, inner = trainer.BlasThreads.timed, model.INNER
    trainer.BlasThreads.timed = lambda self, seconds: None  # type: ignore[method-assign]
    if setting.endswith("one piece"):
        model.INNER = 1 << 30
    try:
        with threadpool_limits(1 if setting == "one" else None, user_api="blas"):
            yield
    finally:
        trainer.BlasThreads.timed, model.INNER = timed, inner  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="MNIST folder (default: synthetic images)")
    parser.add_argument("--n-train", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write blas_threads.md/json here")
    args = parser.parse_args()
    _, source = bench._cached_data(args.n_train, args.data)
    bench._epoch_ours(3 * bench.BATCH, args.data)  # compiles, not timed
    times: dict[tuple[str, bool], list[dict[str, float]]] = {}
    for round_ in range(args.repeats):
        for busy in (False, True):
            with bench.competitor(busy):
                shift = round_ % len(SETTINGS)
                for setting in SETTINGS[shift:] + SETTINGS[:shift]:
                    with blas_setting(setting):
                        epoch = bench._epoch_ours(args.n_train, args.data)
                    times.setdefault((setting, busy), []).append(epoch)
    median = {
        key: {k: statistics.median(e[k] for e in epochs) for k in epochs[0]}
        for key, epochs in times.items()
    }
    quiet = median["chosen by timing", False]["seconds"]
    lines = [
        f"One epoch of the paper's network (784-500-300-10, ReLU, batch {bench.BATCH}, ADADELTA "
        f"rho 0.95 eps 1e-6, float32) on {args.n_train} {source} images and the test error, by "
        f"the number of BLAS threads of the matrix products; median of {args.repeats} epochs",
        bench._machine_line(bench.machine(numba.get_num_threads())),
        "",
        "| BLAS threads | competing process | epoch | of which opt.step | / quiet, chosen |",
        "|---|---|---|---|---|",
    ]
    for (setting, busy), m in median.items():
        lines.append(
            f"| {setting} | {'yes' if busy else 'no'} | {m['seconds']:.2f} s | "
            f"{m['step_seconds']:.2f} s | {m['seconds'] / quiet:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    record: dict[str, Any] = {
        "what": "blas_threads",
        "times": {f"{s}, {'busy' if b else 'quiet'}": e for (s, b), e in times.items()},
    }
    if args.out is None:
        print(text)
    else:
        bench._write_outputs(args.out, "blas_threads", text, record)


if __name__ == "__main__":
    main()
