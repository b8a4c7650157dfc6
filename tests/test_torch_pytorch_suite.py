"""PyTorch's own Adadelta tests (``test/test_optim.py`` over ``optim_db``), eagerly, for
``torch.optim.Adadelta`` and for the drop-in in its place: every test that passes for PyTorch's
class passes for ours (``scripts/pytorch_optim_suite.py``; its ``--mode dynamo`` run, several
minutes on 2 cores, is left to the script: results/pytorch_optim_suite.md).

PyTorch's wheel does not ship its ``test/`` directory and this repository does not carry
PyTorch's code: the test skips, naming the directory, where the two test files are absent."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "pytorch_optim_suite.py"


def suite_directory() -> Path:
    """Where the script looks for PyTorch's test files (it imports only the standard library
    at its top)."""
    spec = importlib.util.spec_from_file_location("pytorch_optim_suite", SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    suite: Path = script.default_suite()
    return suite


@pytest.mark.slow  # two processes that each import PyTorch's test suite: about 30 s
def test_every_adadelta_test_of_pytorch_that_passes_for_torch_passes_for_the_drop_in(
    tmp_path: Path,
) -> None:
    suite = suite_directory()
    files = [suite / "test_optim.py", suite / "optim" / "test_optim.py"]
    if not all(f.is_file() for f in files):
        pytest.skip(
            f"PyTorch's test/test_optim.py and test/optim/test_optim.py are not in {suite} "
            "(set ADADELTA_PYTORCH_SUITE; see scripts/pytorch_optim_suite.py)"
        )
    outcomes = tmp_path / "outcomes.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--mode", "eager", "--check", "--json", str(outcomes)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    runs = json.loads(outcomes.read_text(encoding="utf-8"))
    theirs, ours = runs["torch/eager"]["outcomes"], runs["dropin/eager"]["outcomes"]
    assert set(theirs) == set(ours)
    passed = {t for t, o in theirs.items() if o == "passed"}
    assert len(passed) >= 40  # the suite ran: PyTorch's class passes 43 of its 52 on the CPU
    assert {t for t in passed if ours[t] != "passed"} == set()
