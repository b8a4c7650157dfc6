"""Run the Adadelta tests of PyTorch's own optimizer suite (``test/test_optim.py`` over
``optim_db``, and ``test/optim/test_optim.py``'s ``TestDifferentiableOptimizer.test_adadelta``
that it imports) for ``torch.optim.Adadelta`` and for ``adadelta.torch.Adadelta``, eagerly
and with ``PYTORCH_TEST_WITH_DYNAMO=1``, and compare the outcomes test by test.

PyTorch's wheel ships ``torch/testing/_internal/common_optimizers.py`` (``optim_db``) but not
its ``test/`` directory, and this repository does not carry PyTorch's code: the two test files
are read from ``--suite DIR`` (default ``$ADADELTA_PYTORCH_SUITE`` or
``~/.cache/adadelta/pytorch-suite``), laid out as in PyTorch's repository::

    DIR/test_optim.py          (PyTorch's test/test_optim.py)
    DIR/optim/test_optim.py    (PyTorch's test/optim/test_optim.py)

The copies measured (results/pytorch_optim_suite.md gives their SHA-256): the wheel's own
commit (``torch.version.git_version``, cf30153c) is not in the public index this project can
read, so ``test/test_optim.py`` is the newest version found there, from the fork
importstring/pytorch at commit d8a956baedbc0b168dfd94e0e30559692fc980fe (it imports cleanly
against torch 2.13.0: ``onlyAccelerator``, ``serialTest``, ``TensorTracker``, Muon's cases),
and ``test/optim/test_optim.py`` is pytorch/pytorch's at commit
011f470f51f7c363b8f91960ab53465d82244448, which tags its class with a
``HardwareClassification`` that the 2.13.0 wheel lacks (a stand-in is set below; it only
serves CI's sharding). Both unmodified, BSD-licensed, PyTorch's copyright.

``test/test_optim.py`` also imports ``TestLRScheduler`` and ``TestSWAUtils`` from
``test/optim/test_lrscheduler.py`` and ``test/optim/test_swa_utils.py``: learning-rate
schedulers and weight averaging, not an optimizer; where those files are absent, empty test
classes stand in for them. The drop-in is put in place of ``torch.optim.Adadelta`` before
anything imports it (``optim_db`` and the test files bind the class at import), so every
test that PyTorch runs for its class runs for ours, under the same name.

    python scripts/pytorch_optim_suite.py --out results/pytorch_optim_suite.md

runs the four combinations, one subprocess each, and writes a table of counts and every test
whose outcome differs; ``--check`` exits 1 if a test passes for ``torch.optim.Adadelta`` but
not for the drop-in (the test suite's ``tests/test_torch_pytorch_suite.py`` runs that).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
import traceback
import types
import unittest
from collections import Counter
from pathlib import Path
from typing import Any

IMPLEMENTATIONS = ("torch", "dropin")
MODES = ("eager", "dynamo")
# what is selected: the tests that PyTorch instantiates for Adadelta (their names end in
# _Adadelta_<device>_<dtype>) and TestDifferentiableOptimizer.test_adadelta
SELECT = ("_Adadelta_", ".test_adadelta")


def default_suite() -> Path:
    configured = os.environ.get("ADADELTA_PYTORCH_SUITE")
    return Path(configured) if configured else Path.home() / ".cache/adadelta/pytorch-suite"


def suite_files(suite: Path) -> list[Path]:
    return [suite / "test_optim.py", suite / "optim" / "test_optim.py"]


def _stand_in(module: str, class_name: str) -> None:
    """An empty test class for an imported module that is not in the suite directory."""
    from torch.testing._internal.common_utils import TestCase

    stand_in = types.ModuleType(module)
    setattr(stand_in, class_name, type(class_name, (TestCase,), {}))
    sys.modules[module] = stand_in


def run_one(suite: Path, implementation: str) -> _Outcomes:
    """In this process (its PYTORCH_TEST_WITH_DYNAMO set by the caller): the selected tests,
    with ``implementation``'s class as ``torch.optim.Adadelta``; outcome by test id."""
    import torch.optim

    if implementation == "dropin":
        from adadelta.torch import Adadelta

        torch.optim.Adadelta = Adadelta  # type: ignore[misc, assignment]
    from torch.testing._internal import common_utils

    if not hasattr(common_utils, "HardwareClassification"):
        # test/optim/test_optim.py of a PyTorch newer than the wheel tags its class with
        # this (for CI's hardware sharding only); the wheel's common_utils lacks it
        common_utils.HardwareClassification = types.SimpleNamespace(  # type: ignore[attr-defined]
            GENERIC="generic"
        )
    sys.argv = sys.argv[:1]
    common_utils.parse_cmd_line_args()  # type: ignore[no-untyped-call]
    sys.path.insert(0, str(suite))
    for module, class_name in (
        ("optim.test_lrscheduler", "TestLRScheduler"),
        ("optim.test_swa_utils", "TestSWAUtils"),
    ):
        if not (suite / (module.replace(".", "/") + ".py")).exists():
            _stand_in(module, class_name)
    import test_optim  # type: ignore[import-not-found]  # PyTorch's, from the suite directory

    assert torch.optim.Adadelta.__module__.startswith(
        "adadelta" if implementation == "dropin" else "torch"
    )
    tests = [
        test
        for test in _flatten(unittest.TestLoader().loadTestsFromModule(test_optim))
        if any(s in test.id() for s in SELECT)
    ]
    result = _Outcomes()
    for test in tests:
        test.run(result)
    return result


def _flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    tests: list[unittest.TestCase] = []
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            tests.extend(_flatten(item))
        else:
            tests.append(item)
    return tests


def _traceback(err: Any) -> str:
    return "".join(traceback.format_exception(*err))


class _Outcomes(unittest.TestResult):
    """Each test's outcome: passed, failed, error, skipped, xfail, xpass."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, str] = {}
        self.details: dict[str, str] = {}

    def addSuccess(self, test: unittest.TestCase) -> None:
        self.outcomes.setdefault(test.id(), "passed")

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:
        self.outcomes[test.id()] = "failed"
        self.details[test.id()] = _traceback(err)

    def addError(self, test: unittest.TestCase, err: Any) -> None:
        self.outcomes[test.id()] = "error"
        self.details[test.id()] = _traceback(err)

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        self.outcomes[test.id()] = "skipped"
        self.details[test.id()] = reason

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:
        self.outcomes[test.id()] = "xfail"

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        self.outcomes[test.id()] = "xpass"

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self.outcomes[test.id()] = "failed" if failed else "error"
            self.details[test.id()] = _traceback(err)


def run_all(suite: Path, only: list[tuple[str, str]]) -> dict[str, Any]:
    """Each (implementation, mode) of ``only`` in a fresh subprocess: outcomes, details,
    seconds."""
    runs: dict[str, Any] = {}
    for implementation, mode in only:
        env = {**os.environ, "PYTORCH_TEST_WITH_DYNAMO": "1" if mode == "dynamo" else "0"}
        src = str(Path(__file__).resolve().parents[1] / "src")
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        start = time.perf_counter()
        child = subprocess.run(
            [sys.executable, __file__, "--suite", str(suite), "--child", implementation],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        if child.returncode != 0:
            raise RuntimeError(
                f"{implementation}/{mode} exited {child.returncode}:\n{child.stderr[-4000:]}"
            )
        document = json.loads(child.stdout.strip().splitlines()[-1])
        runs[f"{implementation}/{mode}"] = {**document, "seconds": seconds}
    return runs


def regressions(runs: dict[str, Any], mode: str) -> list[str]:
    """The tests that pass for torch.optim.Adadelta but not for the drop-in, in ``mode``."""
    theirs, ours = runs[f"torch/{mode}"]["outcomes"], runs[f"dropin/{mode}"]["outcomes"]
    return sorted(t for t, o in theirs.items() if o == "passed" and ours.get(t) != "passed")


def _last_line(detail: str) -> str:
    """The exception's line of a traceback (before PyTorch's note on how to rerun the test)."""
    lines = detail.split("\n\nTo execute this test")[0].strip().splitlines()
    return lines[-1][:200] if lines else ""


def report(runs: dict[str, Any], suite: Path, command: str) -> str:
    import torch

    kinds = ("passed", "failed", "error", "skipped", "xfail", "xpass")
    lines = [
        "# PyTorch's optimizer tests for Adadelta: torch.optim.Adadelta vs adadelta.torch.Adadelta",
        "",
        f"Command: `{command}`",
        "",
        f"torch {torch.__version__}, CPU; PyTorch's test files (their provenance: the script's "
        "docstring), SHA-256:",
        "",
        *(
            f"- `{p.relative_to(suite)}`: `{hashlib.sha256(p.read_bytes()).hexdigest()}`"
            for p in suite_files(suite)
        ),
        "",
        "Selected: the tests that PyTorch instantiates for Adadelta on the CPU (names with "
        "`_Adadelta_cpu_`) and `TestDifferentiableOptimizer.test_adadelta`; each class and mode "
        "in a process of its own (seconds: its wall time, on a 2-core machine shared with "
        "other jobs).",
        "",
        "| class | mode | tests | " + " | ".join(kinds) + " | seconds |",
        "|---|---|---:|" + "---:|" * len(kinds) + "---:|",
    ]
    for key, run in runs.items():
        implementation, mode = key.split("/")
        counts = Counter(run["outcomes"].values())
        name = "torch.optim.Adadelta" if implementation == "torch" else "adadelta.torch.Adadelta"
        lines.append(
            f"| {name} | {mode} | {len(run['outcomes'])} | "
            + " | ".join(str(counts.get(k, 0)) for k in kinds)
            + f" | {run['seconds']:.0f} |"
        )
    for mode in MODES:
        if f"torch/{mode}" not in runs or f"dropin/{mode}" not in runs:
            continue
        theirs, ours = runs[f"torch/{mode}"], runs[f"dropin/{mode}"]
        differ = sorted(
            t
            for t in set(theirs["outcomes"]) | set(ours["outcomes"])
            if theirs["outcomes"].get(t) != ours["outcomes"].get(t)
        )
        lost = regressions(runs, mode)
        lines += [
            "",
            f"## {mode}: {len(differ)} tests with different outcomes, "
            f"{len(lost)} that pass for torch.optim.Adadelta and not for the drop-in",
        ]
        for t in differ:
            last = _last_line(ours["details"].get(t) or theirs["details"].get(t) or "")
            lines.append(
                f"- `{t}`: torch {theirs['outcomes'].get(t)}, drop-in "
                f"{ours['outcomes'].get(t)}" + (f" ({last})" if last else "")
            )
        skipped = Counter(
            _last_line(theirs["details"].get(t, ""))
            for t, o in theirs["outcomes"].items()
            if o == "skipped"
        )
        if skipped:
            lines += ["", f"Skipped for torch.optim.Adadelta in {mode} mode (tests: reason):"]
            lines += [f"- {n}: {reason}" for reason, n in sorted(skipped.items())]
        failing = sorted(t for t, o in theirs["outcomes"].items() if o in ("failed", "error"))
        if failing:
            lines += ["", f"Failing for torch.optim.Adadelta itself in {mode} mode:"]
            for t in failing:
                last = _last_line(theirs["details"].get(t, ""))
                lines.append(f"- `{t}`" + (f": {last}" if last else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, default=default_suite())
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    parser.add_argument(
        "--mode", choices=MODES, action="append", help="run only this mode (repeatable)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a test passes for torch.optim.Adadelta but not for the drop-in",
    )
    parser.add_argument("--child", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    missing = [str(p) for p in suite_files(args.suite) if not p.is_file()]
    if missing:
        print(f"PyTorch's test files are missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.child:
        result = run_one(args.suite, args.child)
        print(json.dumps({"outcomes": result.outcomes, "details": result.details}))
        return 0
    modes = args.mode or list(MODES)
    runs = run_all(args.suite, [(i, m) for m in modes for i in IMPLEMENTATIONS])
    command = "python scripts/pytorch_optim_suite.py " + " ".join(argv)
    text = report(runs, args.suite, command.strip())
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(text)
    lost = [t for m in modes for t in regressions(runs, m)]
    return 1 if args.check and lost else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
