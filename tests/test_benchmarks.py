"""The scripts of benchmarks/ that ``adadelta bench`` does not cover, run tiny: they must run and
report every row. No timing is checked (speed is the benchmarks' business, not the tests');
the accuracy table of ``adadelta_ratio.py`` is, for the exact forms of the ratio, whose errors
IEEE arithmetic fixes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def table_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows of ``text`` by their first cell."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_adadelta_ratio_times_every_form_and_measures_the_exact_ones() -> None:
    rows = table_rows(run("adadelta_ratio.py", "--n", "2e4", "--rounds", "1", "--min-time", "0"))
    timed = [
        "loop, two roots",
        "loop, one root",
        "loop, two roots, fast-math afn/arcp",
        "loop, the same, guarded (0 where E[g^2] = inf)",
        "loop, two roots, the estimate corrected and guarded",
        "loop, no root",
        "kernel call, without scan",
        "kernel call, with scan",
        "Batch.step, with scan",
        "Adadelta.step (the default)",
    ]
    for name in timed:
        assert re.fullmatch(r"[0-9.]+ us", rows[name][0]), (name, rows[name])
    # ulps against float64, then the overflowed and the subnormal case (exact: 0 and -1e-30)
    assert rows["two roots"][1:] == ["0", "-1e-30"]
    assert rows["one root"][1:] == ["0", "-1e-30"]
    assert float(rows["one root"][0]) < float(rows["two roots"][0]) <= 4
    assert rows["the same, guarded (0 where E[g^2] = inf)"][1] == "0"
    # the corrected estimate: a few ulps, and its guards give the exact values at both edges
    corrected = rows["two roots, the estimate corrected and guarded"]
    assert float(corrected[0]) <= 4 and corrected[1:] == ["0", "-1e-30"]


def test_torch_step_compares_every_layout() -> None:
    pytest.importorskip("torch", reason="benchmarks/torch_step.py needs the torch extra")
    args = ["--n", "2000", "--tensors", "5", "--rounds", "2", "--backend", "eager", "--small", "7"]
    output = run("torch_step.py", *args, "--busy")
    rows = table_rows(output)
    assert "with a competing busy process" in output
    for layout in ("1 tensor of 2e+03", "5 tensors, 2e+03 in all", "5 tensors of 7"):
        *times, vs_foreach, bandwidth = rows[layout]
        times, vs_compiled = times[:5], times[5:]  # foreach, compiled, the drop-in's 3 formats
        assert all(re.fullmatch(r"[0-9]+\.[0-9]+", t) for t in times)
        assert len(vs_compiled) == 3 and all(re.fullmatch(r"[0-9.]+x", r) for r in vs_compiled)
        assert re.fullmatch(r"[0-9.]+x", vs_foreach)
        assert re.fullmatch(r"[0-9.]+", bandwidth)


def test_threads_times_one_thread_and_all_for_every_case() -> None:
    rows = table_rows(run("threads.py", "--sizes", "2e3", "--rounds", "2", "--no-busy"))
    for case in ("2e3", "paper network"):
        busy, *times = rows[case]
        assert busy == "no" and len(times) == 2
        assert all(re.fullmatch(r"[0-9]+ us", t) for t in times), rows[case]
