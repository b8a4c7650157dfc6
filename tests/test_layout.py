"""The install is lean: importing the core loads no extra, and the layout's import rules hold."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXTRAS = (
    "matplotlib",
    "tqdm",
    "torch",
    "mlxtend",
    "jax",
    "optax",
    "adadelta.app",
    "adadelta.torch",
    "adadelta.optax",
)


def test_importing_the_core_loads_no_extra_and_no_application() -> None:
    code = (
        "import sys, json, numpy as np, adadelta\n"
        "w = np.ones(3); adadelta.Adadelta(w).step(w)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout
    )
    assert [m for m in loaded if m.split(".")[0] in EXTRAS or m.startswith(EXTRAS)] == []


def test_import_rules_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.fail(f"import-linter (a dev dependency) is not installed beside {sys.executable}")
    result = subprocess.run([str(lint)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
