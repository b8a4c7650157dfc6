"""``adadelta bench models``: the real models' parameter lists, and the command run tiny (one
round of MobileNetV2's list, ``torch.compile`` with its eager backend so that no C++ is
compiled). No timing is checked, only that every optimizer is timed and reported."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

from adadelta.app import bench, bench_models, cli


@pytest.mark.parametrize(
    ("model", "tensors", "parameters"),
    [("resnet50", 161, 25_557_032), ("gpt2", 148, 124_439_808), ("mobilenet_v2", 158, 3_504_872)],
)
def test_the_parameter_lists_are_the_architectures(
    model: str, tensors: int, parameters: int
) -> None:
    """The counts of torchvision's resnet50 and mobilenet_v2 and of Hugging Face's GPT-2 small
    (the output layer tied to the token embedding)."""
    shapes = bench_models.MODELS[model]()
    assert len(shapes) == tensors
    assert sum(math.prod(s) for s in shapes) == parameters
    assert all(len(s) in (1, 2, 4) and min(s) >= 1 for s in shapes)


def run_tiny(out: Path, *extra: str) -> None:
    argv = ["models", "--models", "mobilenet_v2", "--rounds", "1", "--backend", "eager"]
    assert bench.main([*argv, "--out", str(out), *extra]) == 0


def test_bench_models_writes_its_table_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch", reason="bench models needs the torch extra")
    run_tiny(tmp_path)
    assert "[" not in capsys.readouterr().err  # no progress lines: stderr is not a terminal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.json", "models.md", "models.png"]
    record = json.loads((tmp_path / "models.json").read_text())
    assert record["what"] == "models" and record["peak_memory_gb"] == {}
    assert record["settings"]["models"] == ["mobilenet_v2"] and record["settings"]["repeats"] == 1
    assert record["machine"]["OMP_WAIT_POLICY"] is not None
    [result] = record["results"]
    assert (result["model"], result["tensors"], result["parameters"]) == (
        "mobilenet_v2", 158, 3_504_872
    )  # fmt: skip
    assert set(result["median_s"]) == set(bench_models.OPTIMIZERS)
    assert all(len(t) == 1 and t[0] > 0 for t in result["times_s"].values())
    assert set(result["ratio_vs_compiled"]) == set(bench_models.FORMATS)
    assert all(0 < r < math.inf for r in result["ratio_vs_compiled"].values())
    state = result["state_bytes_per_parameter"]  # two state tensors per parameter, and a step
    for name in ("torch foreach", "torch.compile", "adadelta.torch float32 state"):
        assert 8 <= state[name] < 8.01, (name, state)
    assert 4 < state["adadelta.torch bfloat16 state"] < 5
    assert 2 < state["adadelta.torch float8 state"] < 3
    table = (tmp_path / "models.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| mobilenet_v2 (158, "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "mobilenet_v2 (158, 3.5M)" and len(cells) == 1 + 5 + 3
    assert all(float(c) > 0 for c in cells[1:6]) and all(c.endswith("x") for c in cells[6:])
    assert "| mobilenet_v2 | 8.00 |" in table and "torch.compile backend: eager" in table
    assert "command: `" in table
    assert (tmp_path / "models.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_bench_models_memory_measures_each_state_format_in_a_fresh_process(
    tmp_path: Path,
) -> None:
    """--memory: GPT-2 small's parameters and gradients (about 1 GB), then two steps, per
    state format: compact state keeps less (tens of seconds)."""
    pytest.importorskip("torch", reason="bench models needs the torch extra")
    run_tiny(tmp_path, "--memory", "--no-progress")
    memory = json.loads((tmp_path / "models.json").read_text())["peak_memory_gb"]
    assert list(memory) == list(bench_models.FORMATS)
    share = {f: m["after_two_steps"] - m["parameters_and_gradients"] for f, m in memory.items()}
    assert all(m["parameters_and_gradients"] > 0.99 for m in memory.values())  # 0.995 GB
    assert share["float8"] < share["bfloat16"] < share["float32"]
    assert "| float8 state |" in (tmp_path / "models.md").read_text()


def test_bench_models_without_torch_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    find_spec = importlib.util.find_spec

    def no_torch(name: str, *args: Any) -> Any:
        return None if name == "torch" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", no_torch)
    out = tmp_path / "out"
    assert cli.main(["bench", "models", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "adadelta: error: bench models steps the PyTorch drop-in, which needs the torch extra: "
        "pip install 'adadelta[torch]'\n"
    )
    assert not out.exists()


def test_bench_models_options_take_their_defaults() -> None:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["models"])
    assert bench.check(args) is None
    assert (args.models, args.repeats, args.memory, args.backend) == (
        list(bench_models.MODELS), 10, False, "inductor"
    )  # fmt: skip
    quick = parser.parse_args(["models", "--quick", "--rounds", "2"])
    assert bench.check(quick) is None
    assert (quick.models, quick.repeats) == (["mobilenet_v2"], 2)  # given explicitly: wins


def test_bench_models_on_cuda_without_a_gpu_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: the command would run")
    out = tmp_path / "out"
    assert cli.main(["bench", "models", "--device", "cuda", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "adadelta: error: --device cuda: PyTorch sees no CUDA device here; leave --device out "
        "(cpu)\n"
    )
    assert not out.exists()
