"""Where compact state hurts: ADADELTA on a full-batch least-squares problem, run past its
minimum, with float32, bfloat16 and float8 state (the loss every 200 steps).

Past the minimum the gradients shrink faster than ADADELTA's accumulated step sizes, the steps
grow again and the loss rises, with any state; stochastic rounding's noise makes it faster.
The first 200 steps agree (``tests/test_compact.py::test_training_follows_the_float32_state``).

    python benchmarks/compact_least_squares.py
"""

from __future__ import annotations

import numpy as np

from adadelta import Adadelta


def main() -> None:
    rng = np.random.default_rng(6)
    A = rng.standard_normal((400, 100)).astype(np.float32)
    b = A @ rng.standard_normal(100).astype(np.float32)
    b += 0.1 * rng.standard_normal(400).astype(np.float32)
    marks = range(200, 1001, 200)
    print("| state | " + " | ".join(f"step {m}" for m in marks) + " |")
    print("|---|" + "---|" * len(marks))
    for state_dtype in (None, "bfloat16", "float8"):
        w = np.zeros(100, np.float32)
        opt = Adadelta(w, eps=1e-4, state_dtype=state_dtype)
        losses = []
        for step in range(1, 1001):
            opt.step(A.T @ (A @ w - b) / 400)
            if step in marks:
                losses.append(float(np.mean((A @ w - b) ** 2)))
        print(f"| {state_dtype or 'float32'} | " + " | ".join(f"{v:.4g}" for v in losses) + " |")


if __name__ == "__main__":
    main()
