"""ADADELTA's accuracy with compact state beside float32 state, on the paper's experiments.

Reads the float32 state's runs from ``results/*.json`` (``adadelta reproduce``) and the compact
formats' from ``results/compact/FORMAT/runs/*/metrics.jsonl`` (``results/compact/run.sh``,
which also works for runs still in progress: a setting shows the epochs and seeds done so far),
and writes ``results/compact/accuracy.md``: Table 2, the tanh run and Figure 1's ADADELTA, each
format beside float32, with the targets of the README's "Compact state"; beside them, float32
state's runs of the previous code (``results/compact/float32-previous/``: the same runs, with
the model's matrix products in one piece), which show how far a result moves when nothing but
the rounding changes.

    python benchmarks/compact_accuracy.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path("results")
FORMATS = ("bfloat16", "float8")
RHOS = (0.9, 0.95, 0.99)
EPSILONS = (1e-2, 1e-4, 1e-6, 1e-8)
MARKS = (1, 6, 10, 20, 30, 40, 50)
SEEDS = 3  # of every run compared

Curves = dict[int, list[float]]  # seed -> test error % per epoch


def _key(activation: str, rho: float, eps: float) -> tuple[str, float, float]:
    return activation, float(rho), float(eps)


def float32_runs(directory: Path = RESULTS) -> dict[tuple[str, float, float], Curves]:
    runs: dict[tuple[str, float, float], Curves] = {}
    for name in ("figure1", "table2", "tanh"):
        document = json.loads((directory / f"{name}.json").read_text())
        for run in document["runs"]:
            if run["optimizer"] != "ADADELTA":
                continue
            settings = run["settings"]
            key = _key(run["activation"], settings["rho"], settings["eps"])
            curve = runs.setdefault(key, {}).get(run["seed"], [])
            if len(run["test_error"]) > len(curve):
                runs[key][run["seed"]] = run["test_error"]
    return runs


def compact_runs(state_dtype: str) -> dict[tuple[str, float, float], Curves]:
    runs: dict[tuple[str, float, float], Curves] = {}
    for metrics in sorted((RESULTS / "compact" / state_dtype / "runs").glob("*/metrics.jsonl")):
        # main's run directories end in a hash of the run's configuration since this was run
        pattern = rf"(\w+)-ADADELTA-rho(.+)-eps(.+)-{state_dtype}-seed(\d+)(?:-[0-9a-f]+)?"
        match = re.fullmatch(pattern, metrics.parent.name)
        assert match is not None, metrics
        activation, rho, eps, seed = match[1], float(match[2]), float(match[3]), int(match[4])
        errors = [json.loads(line)["test_error"] for line in metrics.read_text().splitlines()]
        runs.setdefault(_key(activation, rho, eps), {})[seed] = errors
    return runs


def at(curves: Curves | None, epoch: int, seeds: int) -> np.ndarray[Any, Any] | None:
    """The first ``seeds`` seeds' test errors after ``epoch``, or None if not all are done."""
    if curves is None:
        return None
    values = [curves[s][epoch - 1] for s in range(seeds) if s in curves and len(curves[s]) >= epoch]
    return np.array(values) if len(values) == seeds else None


def cell(values: np.ndarray[Any, Any] | None) -> str:
    if values is None:
        return "not run"
    if values.size == 1:
        return f"{values[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def partial(curves: Curves | None, epoch: int) -> str:
    """:func:`cell` of the 3 seeds after ``epoch``, or of those that got there, saying how many."""
    done = [c[epoch - 1] for s, c in sorted((curves or {}).items()) if s < 3 and len(c) >= epoch]
    if len(done) == 3:
        return cell(np.array(done))
    if not done:
        return "not run"
    return f"{cell(np.array(done))} ({len(done)} seed{'s' if len(done) > 1 else ''})"


def main() -> None:
    base = float32_runs()
    compact = {fmt: compact_runs(fmt) for fmt in FORMATS}
    # float32 state's runs of the code before the model's products were cut in pieces: the same
    # settings and seeds, other last bits in every product
    previous = float32_runs(RESULTS / "compact" / "float32-previous")
    lines = [
        "# ADADELTA with compact state beside float32 state (full MNIST, paper network)\n",
        "float32: `results/*.json` (`adadelta reproduce all`, then `adadelta reproduce figure1 "
        "--seeds 3`, `table2 --seeds 3` and `tanh --seeds 3`); compact: `results/compact/run.sh "
        "FORMAT` (the same settings and seeds; one thread). Seeds 0, 1 and 2 everywhere: mean "
        "± std. `python benchmarks/compact_accuracy.py` writes this file.\n",
        "## Table 2: test error % after 6 epochs, ReLU (difference of the means from float32 "
        "state's)\n",
        "| eps | rho | float32 | " + " | ".join(FORMATS) + " | float32 seed 0, previous code |",
        "|---|---|---|" + "---|" * len(FORMATS) + "---|",
    ]
    worst = {fmt: 0.0 for fmt in FORMATS}
    worst_previous = 0.0
    complete = {fmt: True for fmt in FORMATS}
    bests: dict[str, list[float]] = {fmt: [] for fmt in ("float32", *FORMATS)}
    for eps in EPSILONS:
        for rho in RHOS:
            key = _key("relu", rho, eps)
            reference = at(base.get(key), 6, SEEDS)
            assert reference is not None, f"float32 state's Table 2 needs {SEEDS} seeds"
            bests["float32"].append(float(reference.mean()))
            row = [f"{eps:g}", f"{rho}", cell(reference)]
            for fmt in FORMATS:
                values = at(compact[fmt].get(key), 6, SEEDS)
                if values is None:
                    complete[fmt] = False
                    row.append("not run")
                    continue
                difference = float(values.mean() - reference.mean())
                worst[fmt] = max(worst[fmt], abs(difference))
                bests[fmt].append(float(values.mean()))
                row.append(f"{cell(values)} ({difference:+.2f})")
            again, seed0 = at(previous.get(key), 6, 1), reference[0]
            assert again is not None
            worst_previous = max(worst_previous, abs(float(again[0] - seed0)))
            row.append(f"{again[0]:.2f} ({again[0] - seed0:+.2f} from seed 0's {seed0:.2f})")
            lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "The last column is float32 state's seed-0 run of the code before the model's matrix "
        "products were cut in pieces of 384 terms (commit 70981b8, "
        "`results/compact/float32-previous/`), against this code's seed 0: the same settings "
        "and seed, other last bits in every product. It is how far one run's cell moves when "
        "nothing but rounding changes.",
        "",
        f"- float32 seed 0, previous code against this code: largest difference "
        f"{worst_previous:.2f}",
    ]
    for fmt in FORMATS:
        if not complete[fmt]:
            lines.append(f"- {fmt}: Table 2 incomplete ({len(bests[fmt])} of 12 cells)")
            continue
        best_difference = min(bests[fmt]) - min(bests["float32"])
        every = "met" if worst[fmt] <= 0.3 else "MISSED"
        best = "met" if abs(best_difference) <= 0.15 else "MISSED"
        lines.append(
            f"- {fmt}: {every}: every cell's mean within 0.3 points (largest difference "
            f"{worst[fmt]:.2f}); {best}: best cell within 0.15 ({min(bests[fmt]):.2f} against "
            f"{min(bests['float32']):.2f})"
        )

    lines += [
        "\n## tanh network, rho 0.95, eps 1e-6: test error % after 6 epochs\n",
        "| float32 | " + " | ".join(FORMATS) + " | float32 seed 0, previous code |",
        "|---|" + "---|" * (len(FORMATS) + 1),
    ]
    key = _key("tanh", 0.95, 1e-6)
    reference = at(base.get(key), 6, SEEDS)
    assert reference is not None, f"float32 state's tanh run needs {SEEDS} seeds"
    row, verdicts = [cell(reference)], []
    for fmt in FORMATS:
        values = at(compact[fmt].get(key), 6, SEEDS)
        row.append(cell(values))
        if values is not None:
            difference = float(values.mean() - reference.mean())
            ok = abs(difference) <= 0.15
            verdicts.append(
                f"- {fmt}: {'met' if ok else 'MISSED'}: mean within 0.15 ({difference:+.2f})"
            )
        else:
            verdicts.append(f"- {fmt}: not run")
    row.append(cell(at(previous.get(key), 6, 1)))
    lines += ["| " + " | ".join(row) + " |", "", *verdicts]

    lines += [
        "\n## Figure 1's ADADELTA (rho 0.95, eps 1e-6), ReLU: test error % by epoch, 3 seeds\n",
        "| state | " + " | ".join(f"ep {e}" for e in MARKS) + " |",
        "|---|" + "---|" * len(MARKS),
    ]
    key = _key("relu", 0.95, 1e-6)
    lines.append("| float32 | " + " | ".join(cell(at(base.get(key), e, 3)) for e in MARKS) + " |")
    for fmt in FORMATS:
        lines.append(
            f"| {fmt} | " + " | ".join(partial(compact[fmt].get(key), e) for e in MARKS) + " |"
        )
    lines.append(
        "| float32, previous code | "
        + " | ".join(cell(at(previous.get(key), e, 3)) for e in MARKS)
        + " |"
    )
    lines.append("")
    reference = at(base.get(key), 50, 3)
    assert reference is not None
    tolerance = max(0.1, float(reference.std(ddof=1)))
    for fmt in FORMATS:
        curves = compact[fmt].get(key, {})
        values = at(curves, 50, 3)
        if values is None:
            done = {s: len(c) for s, c in sorted(curves.items())}
            lines.append(f"- {fmt}: not complete (epochs done per seed: {done or 'none'})")
            continue
        difference = float(values.mean() - reference.mean())
        ok = abs(difference) <= tolerance
        lines.append(
            f"- {fmt}: {'met' if ok else 'MISSED'}: epoch-50 mean within max(0.1, float32's std) "
            f"= {tolerance:.2f} ({difference:+.2f})"
        )
    out = RESULTS / "compact" / "accuracy.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())


if __name__ == "__main__":
    main()
