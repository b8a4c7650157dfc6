"""Which 8-bit code for ADADELTA's state: the error of candidate schemes on the paper's network.

Trains the paper's network (784-500-300-10, ReLU, mini-batches of 100) with float32 ADADELTA
(rho 0.95, eps 1e-6) and, at a few steps, rounds its E[g^2] and E[dx^2] to each candidate code
(to nearest, a scale per block of 256 elements: the block's largest value maps to the largest
code) and measures what the step sees: the relative error of RMS[g] = sqrt(E[g^2] + eps), of
RMS[dx] and of the step size RMS[dx] / RMS[g], over all weights. Then it trains the same
network once per code, the state rounded stochastically after every step, and reports the
final test error and how far the weights moved from the float32 run's.

Candidates (each 8 bits a value, plus the block's float32 scale):

- ``linear``: 255 equal steps from 0 to the block's largest value.
- ``sqrt-linear``: the square root in 255 equal steps (the value is the code squared).
- ``dynamic``: bitsandbytes' dynamic map, unsigned (``create_dynamic_map(signed=False)``): 7
  decades, each split linearly, finer near the top.
- ``float8-e4m4`` and ``float8-e5m3``: unsigned 8-bit floats (4 or 5 exponent bits, 4 or 3
  mantissa bits, with subnormals), i.e. logarithmic steps of 6% over 4.5 decades, or of 12.5%
  over 9 decades.
- ``bfloat16``, without a block scale, for comparison (16 bits).

    python benchmarks/compact_error.py                      # the embedded 5,000-image sample
    python benchmarks/compact_error.py --data ../shared/data/mnist --steps 600
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from adadelta import Adadelta, rules
from adadelta.app.datasets import Dataset, load_embedded_digits, load_mnist
from adadelta.app.model import MLP, PAPER_SIZES
from adadelta.kernels import compact

Floats = np.ndarray[Any, np.dtype[np.floating[Any]]]
BLOCK = compact.BLOCK
RHO, EPS = 0.95, 1e-6  # the paper's best
SETTINGS = {"rho": RHO, "eps": EPS}  # this run's (--rho, --eps)


def dynamic_map() -> Floats:
    """bitsandbytes' ``create_dynamic_map(signed=False, max_exponent_bits=7, total_bits=8)``:
    for the decades 1e-6..1e0, ``2**(i+1)`` values spaced evenly between 0.1 and 1 (midpoints),
    then 0 and 1."""
    data: list[float] = []
    for i in range(7):
        boundaries = np.linspace(0.1, 1, 2 ** (i + 1) + 1)
        data += list(10.0 ** (-6 + i) * (boundaries[:-1] + boundaries[1:]) / 2)
    data += [0.0, 1.0]
    return np.sort(np.array(data))


def float8_map(exponent_bits: int) -> Floats:
    """An unsigned float of ``exponent_bits`` exponent bits and ``8 - exponent_bits`` mantissa
    bits, with subnormals, scaled so that its largest value is 1."""
    mantissa_bits = 8 - exponent_bits
    codes = np.arange(256)
    e, m = codes >> mantissa_bits, (codes & ((1 << mantissa_bits) - 1)) / 2.0**mantissa_bits
    top = 2**exponent_bits - 1
    values: Floats = np.where(e > 0, (1 + m) * 2.0 ** (e - top), m * 2.0 ** (1 - top))
    top_value = float(values.max())
    return values / top_value


CODES: dict[str, Floats] = {
    "linear": np.arange(256) / 255.0,
    "sqrt-linear": (np.arange(256) / 255.0) ** 2,
    "dynamic": dynamic_map(),
    "float8-e4m4": float8_map(4),
    "float8-e5m3": float8_map(5),
}


def round_to_code(values: Floats, code: Floats, rng: np.random.Generator | None = None) -> Floats:
    """``values`` (>= 0) rounded to ``code`` times a scale per block of 256 (the block's largest
    value over the largest code): to nearest, or stochastically with ``rng``."""
    flat = values.astype(np.float64).ravel()
    n = flat.size
    padded = np.zeros(-(-n // BLOCK) * BLOCK)
    padded[:n] = flat
    blocks = padded.reshape(-1, BLOCK)
    scale = blocks.max(axis=1, keepdims=True)
    q = np.divide(blocks, scale, out=np.zeros_like(blocks), where=scale > 0).ravel()
    upper = np.clip(np.searchsorted(code, q), 1, code.size - 1)
    lo, hi = code[upper - 1], code[upper]
    fraction = (q - lo) / (hi - lo)
    up = rng.random(q.size) < fraction if rng is not None else fraction >= 0.5
    rounded = (np.where(up, hi, lo).reshape(blocks.shape) * scale).ravel()[:n]
    return rounded.reshape(values.shape).astype(values.dtype)  # type: ignore[no-any-return]


def round_bfloat16(values: Floats, rng: np.random.Generator | None = None) -> Floats:
    bits = (
        rng.integers(0, 1 << 16, values.size, dtype=np.uint64).reshape(values.shape)
        if rng is not None
        else compact.NEAREST
    )
    stored = compact.quantize(values, bits, "bfloat16")
    return compact.dequantize({"E": stored["codes"]}, "E", "bfloat16")


Rounding = Callable[[Floats, "np.random.Generator | None"], Floats]


def _by_code(code: Floats) -> Rounding:
    return lambda values, rng: round_to_code(values, code, rng)


SCHEMES: dict[str, Rounding] = {
    **{name: _by_code(code) for name, code in CODES.items()},
    "bfloat16": round_bfloat16,
}


def percentiles(errors: Floats) -> str:
    p50, p99, p999 = np.percentile(errors, [50, 99, 99.9])
    big = np.mean(errors > 0.1)
    return f"{p50:.2e} | {p99:.2e} | {p999:.2e} | {errors.max():.2e} | {100 * big:.3f}%"


def state_errors(states: list[dict[str, Any]], scheme: Rounding) -> dict[str, Floats]:
    """The relative errors of RMS[g], RMS[dx] and their ratio, over all weights."""
    errors: dict[str, list[Floats]] = {"RMS[g]": [], "RMS[dx]": [], "step size": []}
    for state in states:
        Eg, Edx = state["E_g2"].astype(np.float64), state["E_dx2"].astype(np.float64)
        Eg_q = scheme(state["E_g2"], None).astype(np.float64)
        Edx_q = scheme(state["E_dx2"], None).astype(np.float64)
        eps = SETTINGS["eps"]
        rms_g, rms_g_q = np.sqrt(Eg + eps), np.sqrt(Eg_q + eps)
        rms_dx, rms_dx_q = np.sqrt(Edx + eps), np.sqrt(Edx_q + eps)
        errors["RMS[g]"].append(np.abs(rms_g_q / rms_g - 1).ravel())
        errors["RMS[dx]"].append(np.abs(rms_dx_q / rms_dx - 1).ravel())
        ratio, ratio_q = rms_dx / rms_g, rms_dx_q / rms_g_q
        errors["step size"].append(np.abs(ratio_q / ratio - 1).ravel())
    return {k: np.concatenate(v) for k, v in errors.items()}


def batches(data: Dataset, steps: int, seed: int = 0) -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    n, out = len(data.y_train), []  # type: tuple[int, list[np.ndarray[Any, Any]]]
    while len(out) < steps:
        order = rng.permutation(n)
        out += [order[i : i + 100] for i in range(0, n - 99, 100)]
    return out[:steps]


def train(
    data: Dataset, steps: int, scheme: Rounding | None, snapshots: tuple[int, ...] = ()
) -> tuple[MLP, list[list[dict[str, Any]]]]:
    """``steps`` ADADELTA steps of the paper's network (seed 0); with ``scheme`` the state is
    rounded stochastically after every step. Returns the model and float32 state snapshots."""
    model = MLP(PAPER_SIZES, "relu", seed=0)
    names = list(model.params)
    state = {k: rules.AdadeltaState(0, None, None) for k in names}
    rng = np.random.default_rng(1)
    taken = []
    hyper: dict[str, Any] = dict(lr=1.0, weight_decay=0.0, decoupled_weight_decay=False)
    hyper.update(SETTINGS)
    for step, rows in enumerate(batches(data, steps), start=1):
        _, grads = model.loss_and_grads(data.x_train[rows], data.y_train[rows])
        for k in names:
            x, s = rules.adadelta(model.params[k], grads[k], state[k], maximize=False, **hyper)
            model.params[k][...] = x
            if scheme is not None:
                assert s.E_g2 is not None and s.E_dx2 is not None
                s = rules.AdadeltaState(s.step, scheme(s.E_g2, rng), scheme(s.E_dx2, rng))
            state[k] = s
        if step in snapshots:
            taken.append(
                [{"E_g2": state[k].E_g2, "E_dx2": state[k].E_dx2} for k in names if "W" in k]
            )
    return model, taken


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="directory of the MNIST .gz files (default: the sample)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (300)")
    parser.add_argument("--rho", type=float, default=RHO, help=f"ADADELTA's rho ({RHO})")
    parser.add_argument("--eps", type=float, default=EPS, help=f"ADADELTA's eps ({EPS:g})")
    args = parser.parse_args(argv)
    SETTINGS.update(rho=args.rho, eps=args.eps)
    data = (
        load_mnist(args.data, download=False, progress=False)
        if args.data
        else load_embedded_digits()
    )
    snapshots = tuple(sorted({10, args.steps // 3, args.steps}))
    reference, states = train(data, args.steps, None, snapshots)
    weights = sum(s["E_g2"].size for s in states[0])
    print(
        f"# 8-bit codes for ADADELTA's state ({data.name}, {len(data.y_train)} training images; "
        f"paper network, rho {args.rho}, eps {args.eps:g}, {args.steps} steps)\n"
    )
    print(
        f"Relative error of what the step reads, after rounding to nearest, over the "
        f"{weights} weights at steps {', '.join(map(str, snapshots))} (percentiles; "
        "'> 10%': the share of weights off by more than 10%).\n"
    )
    print("| code | quantity | median | p99 | p99.9 | max | > 10% |\n|---|---|---|---|---|---|---|")
    for name, scheme in SCHEMES.items():
        errors = state_errors([s for snap in states for s in snap], scheme)
        for quantity, values in errors.items():
            print(f"| {name} | {quantity} | {percentiles(values)} |")
    flat = {k: np.concatenate([s[k].ravel() for s in states[-1]]) for k in ("E_g2", "E_dx2")}
    print(f"\nSpread at step {args.steps}, per block of {BLOCK}: largest / smallest non-zero value")
    for key, values in flat.items():
        padded = values[: values.size // BLOCK * BLOCK].reshape(-1, BLOCK).astype(np.float64)
        nonzero = np.where(padded > 0, padded, np.inf).min(axis=1)
        spread = padded.max(axis=1) / nonzero
        p50, p99 = np.percentile(spread[np.isfinite(spread)], [50, 99])
        print(
            f"- {key}: median {p50:.2g}, p99 {p99:.2g}; values below eps: "
            f"{100 * np.mean(values < args.eps):.1f}%"
        )

    base_error = reference.error_rate(data.x_test, data.y_test)
    print(
        f"\nTraining {args.steps} steps with the state rounded stochastically after every step "
        f"(float32 state: test error {base_error:.2f}%):\n"
    )
    print("| code | test error % | weights' RMS distance from float32's / their RMS |")
    print("|---|---|---|")
    ref = np.concatenate([p.ravel() for p in reference.params.values()])
    for name, scheme in SCHEMES.items():
        model, _ = train(data, args.steps, scheme)
        moved = np.concatenate([p.ravel() for p in model.params.values()])
        distance = np.sqrt(np.mean((moved - ref) ** 2) / np.mean(ref**2))
        print(f"| {name} | {model.error_rate(data.x_test, data.y_test):.2f} | {distance:.4f} |")
    print("\nThe fused optimizer (Adadelta(params, state_dtype=...)) for comparison:")
    for fmt in compact.FORMATS:
        model = MLP(PAPER_SIZES, "relu", seed=0)
        opt = Adadelta(model.params, rho=args.rho, eps=args.eps, state_dtype=fmt)
        for rows in batches(data, args.steps):
            opt.step(model.loss_and_grads(data.x_train[rows], data.y_train[rows])[1])
        print(f"- {fmt}: test error {model.error_rate(data.x_test, data.y_test):.2f}%")


if __name__ == "__main__":
    main()
