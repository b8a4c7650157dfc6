"""Time one ADADELTA update of ``adadelta.optax.adadelta`` against ``jax.jit``-ted
``optax.adadelta`` (learning rate given), on the CPU, between JAX matrix products.

Every peer updates its own float32 parameters with the same fixed gradients (lr=1, rho=0.9,
eps=1e-6: PyTorch's and optax's defaults with a learning rate), the update and
``optax.apply_updates`` in one ``jax.jit``, the parameters and the state donated (so that XLA
may update them in place; ``optax-jit`` is optax without donation). Before every timed step, the
forward and backward products of a linear layer with as many weights (``x @ W``, ``x.T @ dy``,
``dy @ W.T`` on 100 rows; :func:`adadelta.app.bench.jax_products`), as in training. Sizes:
one tensor of 1e5, 1e6 and 1e7 elements, and 200 tensors of 1e7 in all
(:func:`adadelta.app.bench.mixed_sizes`). The peers take turns, a few steps each per round; the
table shows the median over rounds of the mean time per step, and each one's speed-up over
donated optax (``x``: optax's time over ours).

Peers: ``ours-float32`` (``check_finite=True``: the gradients checked for NaN and infinity),
``ours-float32-unchecked`` (``check_finite=False``, the default, as optax), ``ours-bfloat16``
and ``ours-float8`` (both checked), ``optax-donated`` and ``optax-jit``.

    python benchmarks/jax_step.py                       # writes benchmarks/results/jax_step.md
    python benchmarks/jax_step.py --sizes 1e5 --mix 0 --rounds 3 --out /tmp/jax_step.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adadelta.app.bench import jax_products, mixed_sizes
from adadelta.optax import adadelta, state_bytes

LR, RHO, EPS = 1.0, 0.9, 1e-6
REFERENCE = "optax-donated"
PEERS: dict[str, tuple[Callable[[], Any], bool]] = {
    "ours-float32": (lambda: adadelta(LR, RHO, EPS, check_finite=True), True),
    "ours-float32-unchecked": (lambda: adadelta(LR, RHO, EPS, check_finite=False), True),
    "ours-bfloat16": (
        lambda: adadelta(LR, RHO, EPS, state_dtype="bfloat16", check_finite=True),
        True,
    ),
    "ours-float8": (lambda: adadelta(LR, RHO, EPS, state_dtype="float8", check_finite=True), True),
    REFERENCE: (lambda: optax.adadelta(LR, RHO, EPS), True),
    "optax-jit": (lambda: optax.adadelta(LR, RHO, EPS), False),
}


def make_step(
    transform: Any, sizes: tuple[int, ...], donate: bool
) -> tuple[Callable[[], None], Any]:
    """One step of ``transform`` on its own parameters; and its initial state."""
    rng = np.random.default_rng(0)
    params = [jnp.asarray(rng.standard_normal(n, dtype=np.float32)) for n in sizes]
    grads = [jnp.asarray(rng.standard_normal(n, dtype=np.float32)) for n in sizes]

    def update(params: Any, state: Any, grads: Any) -> Any:
        updates, state = transform.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    jitted = jax.jit(update, donate_argnums=(0, 1) if donate else ())
    state = transform.init(params)
    carry = [params, state]

    def step() -> None:
        carry[0], carry[1] = jitted(carry[0], carry[1], grads)
        jax.block_until_ready(carry[0])  # type: ignore[no-untyped-call]

    return step, state


def measure(sizes: tuple[int, ...], rounds: int, count: int) -> dict[str, Any]:
    products = jax_products(sum(sizes))
    steps, memory, compile_seconds = {}, {}, {}
    for name, (make, donate) in PEERS.items():
        transform = make()
        steps[name], state = make_step(transform, sizes, donate)
        start = time.perf_counter()
        steps[name]()  # compiles
        compile_seconds[name] = time.perf_counter() - start
        memory[name] = state_bytes(state) / sum(sizes) if name.startswith("ours") else 8.0
    times: dict[str, list[float]] = {name: [] for name in PEERS}
    for _ in range(rounds):
        for name, step in steps.items():
            time.sleep(0.01)
            total = 0.0
            for _ in range(count):
                products()
                start = time.perf_counter()
                step()
                total += time.perf_counter() - start
            times[name].append(total / count)
    medians = {name: statistics.median(t) for name, t in times.items()}
    return {"median": medians, "bytes": memory, "compile": compile_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1e5,1e6,1e7")
    parser.add_argument("--mix", type=int, default=200, help="tensors of the mixed case (0: none)")
    parser.add_argument("--mix-total", default="1e7")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/jax_step.md")
    args = parser.parse_args()
    cases: list[tuple[str, tuple[int, ...]]] = [
        (f"{float(s):.0e}".replace("e+0", "e"), (int(float(s)),))
        for s in args.sizes.split(",")
        if s
    ]
    if args.mix:
        cases.append((f"{args.mix} tensors", mixed_sizes(args.mix, int(float(args.mix_total)))))
    load_before = os.getloadavg()
    rows = []
    for label, sizes in cases:
        n = sum(sizes)
        count = max(2, min(50, int(3e7 // n)))
        result = measure(sizes, args.rounds, count)
        rows.append((label, n, result))
        print(label, {k: f"{v * 1e3:.3f} ms" for k, v in result["median"].items()}, flush=True)
    load_after = os.getloadavg()
    names = list(PEERS)
    lines = [
        "# adadelta.optax vs jitted optax.adadelta: one update between JAX matrix products",
        "",
        f"Command: `python benchmarks/jax_step.py --sizes {args.sizes} --mix {args.mix} "
        f"--mix-total {args.mix_total} --rounds {args.rounds}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
        f"jax {jax.__version__}, optax {optax.__version__}, Python {platform.python_version()}. "
        f"Shared with other work: load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after (1-minute).",
        "",
        "Median over rounds of the mean time per step; in brackets the speed-up over "
        f"`{REFERENCE}` (its time over the peer's). State bytes per parameter in the last row.",
        "",
        "| case | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, _, result in rows:
        ref = result["median"][REFERENCE]
        cells = [
            f"{result['median'][k] * 1e3:.3f} ms ({ref / result['median'][k]:.2f}x)" for k in names
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    compile_cells = " | ".join(f"{rows[-1][2]['compile'][k]:.1f} s" for k in names)
    lines.append(f"| first step (compiles), {rows[-1][0]} | {compile_cells} |")
    memory = rows[-1][2]["bytes"]
    lines.append(
        "| state bytes / parameter | " + " | ".join(f"{memory[k]:.2f}" for k in names) + " |"
    )
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
