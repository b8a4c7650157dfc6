"""How many threads an ADADELTA step should run on in a training loop: one, or all cores.

Each step runs after the matrix products of a training step (``adadelta.app.bench``'s
interleaved condition: forward and backward of a square linear layer with as many weights as
the step has elements, batch 100), on one thread and on two (forced at every size, whatever
``adadelta.kernels.PARALLEL_MIN`` says), without and with one competing CPU-bound process. The
table shows the median time per step over ``--rounds`` steps. The "paper network" case is the
parameter arrays of the paper's 784-500-300-10 network (545,810 in all).

    python benchmarks/threads.py                            # the default sizes, ~1 minute
    GOMP_SPINCOUNT=10000 python benchmarks/threads.py --sizes 1e5 --no-busy   # a spinning pool

The environment's thread settings (GOMP_SPINCOUNT, OPENBLAS_THREAD_TIMEOUT, ...) are printed
with the table: a user's own ``GOMP_SPINCOUNT`` replaces the library's (zero).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

import adadelta
from adadelta.app import bench
from adadelta.kernels import parallel

PAPER = (784 * 500, 500, 500 * 300, 300, 300 * 10, 10)


def step_time(sizes: tuple[int, ...], threads: int, rounds: int) -> float:
    """The median seconds of a step on ``threads`` threads, each after the matrix products."""
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    grads = [rng.standard_normal(n, dtype=np.float32) for n in sizes]
    numba.set_num_threads(threads)
    opt = adadelta.Adadelta(params, lr=1.0, rho=0.9, eps=1e-6)
    products = bench.numpy_products(sum(sizes))
    opt.step(grads)
    times = []
    for _ in range(rounds):
        products()
        start = time.perf_counter()
        opt.step(grads)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1e5,1e6,1e7", help="single-tensor sizes")
    parser.add_argument("--rounds", type=int, default=100, help="steps per measurement")
    parser.add_argument("--no-busy", dest="busy", action="store_false")
    args = parser.parse_args()
    adadelta.Adadelta(np.zeros(1, np.float32)).step(np.zeros(1, np.float32))  # starts the pool
    most = numba.get_num_threads()
    parallel.PARALLEL_MIN = 0  # as many threads as set, at every size
    cases: list[tuple[str, tuple[int, ...]]] = [
        (f"{float(s):.0e}".replace("e+0", "e"), (int(float(s)),)) for s in args.sizes.split(",")
    ]
    cases.append(("paper network", PAPER))
    print(
        "ADADELTA step after a training step's matrix products: median of "
        f"{args.rounds} steps\n{bench._machine_line(bench.machine(most))}\n"
    )
    print(f"| case | competing process | 1 thread | {most} threads |\n|---|---|---|---|")
    for name, sizes in cases:
        rounds = max(10, min(args.rounds, int(args.rounds * 1e6 / sum(sizes))))
        for busy in (False, True) if args.busy else (False,):
            with bench.competitor(busy):
                one, all_ = (step_time(sizes, t, rounds) * 1e6 for t in (1, most))
            print(f"| {name} | {'yes' if busy else 'no'} | {one:.0f} us | {all_:.0f} us |")


if __name__ == "__main__":
    main()
