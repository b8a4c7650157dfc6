"""Which inner dimensions of a float32 matrix product give other bits on two BLAS threads than on
one: the measurement behind :data:`adadelta.app.model.INNER` (the products' pieces).

For each inner dimension k, products of random (m, k) and (k, n) matrices (m = 100 and 1000,
n = 10, 300 and 500, the paper network's shapes) on one BLAS thread and on two are compared bit
for bit, in one piece and cut as :func:`adadelta.app.model.matmul` cuts them.

    python benchmarks/blas_bits.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

from adadelta.app import bench, model

INNER = (*range(256, 528, 4), 600, 768, 784, 1000)
SHAPES = [(m, n) for m in (100, 1000) for n in (10, 300, 500)]


def differs(k: int, cut: bool) -> bool:
    """Whether some shape with inner dimension ``k`` gives other bits on two threads."""
    rng = np.random.default_rng(k)
    for m, n in SHAPES:
        a = rng.random((m, k), dtype=np.float32) - 0.5
        b = rng.random((k, n), dtype=np.float32) - 0.5
        results = []
        for threads in (1, 2):
            with threadpool_limits(threads, user_api="blas"):
                out = np.empty((m, n), np.float32)
                if cut:
                    model.matmul(a, b, out, np.empty_like(out))
                else:
                    np.matmul(a, b, out=out)
                results.append(out)
        if not np.array_equal(results[0], results[1]):
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="write blas_bits.md/json here")
    args = parser.parse_args()
    libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    names = ", ".join(f"{lib.internal_api} {lib.version} ({lib.architecture})" for lib in libraries)
    one_piece = [k for k in INNER if differs(k, cut=False)]
    cut = [k for k in INNER if differs(k, cut=True)]
    first_other = min(one_piece, default=None)
    last_same = max((k for k in INNER if first_other is None or k < first_other), default=None)
    lines = [
        "float32 products whose bits differ between one BLAS thread and two, by inner dimension "
        f"k (tried: {INNER[0]} to {INNER[-1]}; shapes (m, k) @ (k, n) for m, n in {SHAPES})",
        f"BLAS: {names}; pieces of adadelta.app.model.matmul: at most {model.INNER}",
        "",
        f"- in one piece, the same bits up to k = {last_same}; other bits from k = {first_other} "
        f"({len(one_piece)} of {len(INNER)} dimensions tried)",
        f"- cut in pieces: other bits at {cut or 'no dimension tried'}",
    ]
    text = "\n".join(lines) + "\n"
    record = {"what": "blas_bits", "blas": names, "one_piece": one_piece, "cut": cut}
    if args.out is None:
        print(text)
    else:
        bench._write_outputs(args.out, "blas_bits", text, record)


if __name__ == "__main__":
    main()
