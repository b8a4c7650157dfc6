"""How accurate is ADADELTA's RMS[dx]_{t-1} / RMS[g]_t computed as one root of the quotient,
``sqrt((E[dx^2] + eps) / (E[g^2] + eps))``, against the rule's two roots,
``sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps)``, in float32 and float64?

Two measurements, each against a reference in NumPy's long double (x86-64: a 64-bit
significand, 11 bits beyond float64's; the inputs are exact in it):

- **single steps**: the step ``dx = -ratio * g`` from random accumulators and gradients, log-
  uniform over many decades (rho 0.95, eps 1e-6 and 1e-8), each form evaluated in the dtype with
  the kernels' operations in their order; error in ulps of the dtype at the reference value;
- **trajectories**: 100 to 1000 steps of ADADELTA (lr 0.1 and 1, rho 0.9 and 0.95, eps 1e-6) on the
  Rosenbrock function and on a diagonal quadratic whose curvatures span 1e-4 to 1e3, from 64
  random starts: the parameters' distance from the long-double trajectory after the last step
  (relative to the distance travelled), for the one-root recurrence and the two-root
  recurrence, each run in the dtype.

    python benchmarks/one_root_accuracy.py > benchmarks/results/one_root_accuracy.md
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]
LONG = np.longdouble


def ratio(E_dx2: Array, Eg: Array, eps: Any, one_root: bool) -> Array:
    """RMS[dx] / RMS[g] in the arrays' dtype, as the kernels (one root) or the rule (two)."""
    if one_root:
        return np.sqrt((E_dx2 + eps) / (Eg + eps))  # type: ignore[no-any-return]
    return np.sqrt(E_dx2 + eps) / np.sqrt(Eg + eps)  # type: ignore[no-any-return]


def step(
    x: Array, g: Array, E_g2: Array, E_dx2: Array, lr: Any, rho: Any, eps: Any, one_root: bool
) -> tuple[Array, Array, Array]:
    """One ADADELTA step in x's dtype (the kernels' operations, in their order)."""
    t = x.dtype.type
    rho_, one_minus_rho, eps_, lr_ = t(rho), t(1 - rho), t(eps), t(lr)
    Eg = rho_ * E_g2 + one_minus_rho * g * g
    dx = -ratio(E_dx2, Eg, eps_, one_root) * g
    return x + lr_ * dx, Eg, rho_ * E_dx2 + one_minus_rho * dx * dx


def ulps(value: Array, exact: Array, dtype: Any) -> Array:
    """|value - exact| in ulps of ``dtype`` at ``exact``."""
    spacing = np.spacing(np.abs(exact.astype(dtype))).astype(LONG)
    return np.abs(value.astype(LONG) - exact) / spacing  # type: ignore[no-any-return]


def single_steps(dtype: Any, eps: float, n: int = 400_000) -> dict[str, tuple[float, ...]]:
    rng = np.random.default_rng(0)
    E_g2 = (10.0 ** rng.uniform(-14, 4, n)).astype(dtype)
    E_dx2 = (10.0 ** rng.uniform(-14, 2, n)).astype(dtype)
    g = (rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(-8, 2, n)).astype(dtype)
    rho = 0.95
    t = np.dtype(dtype).type
    # the reference: the same inputs (the dtype's hyperparameters, exact in long double)
    eps_l = LONG(t(eps))
    Eg = t(rho) * E_g2 + t(1 - rho) * g * g
    # the step from the dtype's E[g^2] (each form's own error, not the accumulation's)
    exact = -np.sqrt(E_dx2.astype(LONG) + eps_l) / np.sqrt(Eg.astype(LONG) + eps_l) * g
    rows: dict[str, tuple[float, ...]] = {}
    for name, one in (("one root", True), ("two roots", False)):
        dx = -ratio(E_dx2, Eg, t(eps), one) * g
        error = ulps(dx, exact, dtype)
        rows[name] = (
            float(np.mean(error)),
            float(np.max(error)),
            float(np.mean(error <= 0.5)),  # correctly rounded
        )
    return rows


def rosenbrock(p: Array) -> Array:
    x, y = p[..., 0], p[..., 1]
    return np.stack([2 * (x - 1) + 400 * x * (x * x - y), 200 * (y - x * x)], axis=-1)


_SCALES = np.logspace(-4, 3, 24)


def quadratic(p: Array) -> Array:
    """A diagonal quadratic whose 24 coordinates' curvatures span 1e-4 to 1e3."""
    return p * _SCALES.astype(p.dtype)  # type: ignore[no-any-return]


PROBLEMS = {"Rosenbrock": (rosenbrock, 2), "quadratic": (quadratic, 24)}


def trajectory(
    gradient: Callable[[Array], Array], dtype: Any, lr: float, rho: float,
    one_root: bool | None, starts: Array, steps: int,
) -> Array:  # fmt: skip
    """The parameters after ``steps`` steps (``one_root`` None: the long-double reference,
    with the dtype's hyperparameters exactly)."""
    t = np.dtype(dtype).type
    p = starts.astype(LONG if one_root is None else dtype)
    E_g2, E_dx2 = np.zeros_like(p), np.zeros_like(p)
    for _ in range(steps):
        if one_root is None:
            rho_, omr, eps, lr_ = (LONG(t(v)) for v in (rho, 1 - rho, 1e-6, lr))
            g = gradient(p)
            E_g2 = rho_ * E_g2 + omr * g * g
            dx = -(np.sqrt(E_dx2 + eps) / np.sqrt(E_g2 + eps)) * g
            p, E_dx2 = p + lr_ * dx, rho_ * E_dx2 + omr * dx * dx
        else:
            p, E_g2, E_dx2 = step(p, gradient(p), E_g2, E_dx2, lr, rho, 1e-6, one_root)
    return p


def trajectories(
    problem: str, dtype: Any, lr: float, rho: float, steps: int
) -> dict[str, tuple[Any, ...]]:
    """Per form: the median and the largest over 64 starts of the final distance from the
    long-double trajectory (relative to the distance travelled), and in how many starts the
    form is the closer one."""
    gradient, dim = PROBLEMS[problem]
    rng = np.random.default_rng(1)
    starts = rng.uniform(-2.0, 2.0, (64, dim)).astype(dtype)
    reference = trajectory(gradient, dtype, lr, rho, None, starts, steps)
    travelled = np.abs(reference - starts.astype(LONG)).max(axis=1)
    errors = {
        name: np.abs(
            trajectory(gradient, dtype, lr, rho, one, starts, steps).astype(LONG) - reference
        )
        .max(axis=1)
        .astype(np.float64)
        / travelled.astype(np.float64)
        for name, one in (("one root", True), ("two roots", False))
    }
    one, two = errors["one root"], errors["two roots"]
    closer = {"one root": int(np.sum(one < two)), "two roots": int(np.sum(two < one))}
    return {
        name: (float(np.median(e)), float(np.max(e)), closer[name]) for name, e in errors.items()
    }


def main() -> None:
    info = np.finfo(LONG)
    print("# One root of the quotient or two roots: accuracy\n")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, NumPy {np.__version__}; "
        f"reference: long double with a {info.nmant + 1}-bit significand\n"
    )
    print("## Single steps (400,000 random inputs, rho 0.95)\n")
    print("| dtype | eps | form | mean error (ulps) | largest error (ulps) | correctly rounded |")
    print("|---|---|---|---|---|---|")
    for dtype in (np.float32, np.float64):
        for eps in (1e-6, 1e-8):
            for name, (mean, worst, exact) in single_steps(dtype, eps).items():
                print(
                    f"| {np.dtype(dtype)} | {eps:g} | {name} | {mean:.3f} | {worst:.2f} | "
                    f"{exact:.1%} |"
                )
    print(
        "\n## Trajectories (64 random starts in [-2, 2], eps 1e-6)\n\n"
        "The parameters' largest distance from the long-double trajectory after the last "
        "step, relative to the largest distance travelled: the median and the largest over "
        "the starts, and in how many starts (of 64) the form is strictly the closer one. "
        "Rosenbrock: 2 coordinates; quadratic: 24 coordinates, curvatures 1e-4 to 1e3.\n"
    )
    print("| problem | dtype | rho | lr | steps | form | median | largest | closer in |")
    print("|---|---|---|---|---|---|---|---|---|")
    for problem in PROBLEMS:
        for dtype in (np.float32, np.float64):
            for rho, lr, steps in (
                (0.95, 0.1, 100),
                (0.9, 0.1, 100),
                (0.95, 0.1, 1000),
                (0.9, 1.0, 200),
            ):
                rows = trajectories(problem, dtype, lr, rho, steps)
                for name, (median, worst, closer) in rows.items():
                    print(
                        f"| {problem} | {np.dtype(dtype)} | {rho:g} | {lr:g} | {steps} | "
                        f"{name} | {median:.3g} | {worst:.3g} | {closer} |"
                    )
    print("\ncommand: python benchmarks/one_root_accuracy.py")


if __name__ == "__main__":
    main()
