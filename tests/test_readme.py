"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_quick_start_runs_and_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    quick_start = next(block for block in python_blocks() if "adadelta.Adadelta(" in block)
    namespace: dict[str, object] = {}
    exec(compile(quick_start, "README.md", "exec"), namespace)
    params = namespace["params"]
    assert isinstance(params, dict)
    np.testing.assert_allclose(params["W"], 0, atol=1e-3)
    np.testing.assert_allclose(params["b"], 1, atol=1e-3)
    assert (tmp_path / "opt.npz").is_file()
