"""The fused kernels of adadelta.kernels against the rules of adadelta.rules (the reference).

The optimizers use the kernels by default; ``opt.fused = False`` sends every array through the
rule instead, which is how the two paths are compared here, on every configuration of the
generic test matrix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import adadelta
from adadelta import kernels, rules
from adadelta.app import bench
from adadelta.optimizers import Adadelta, NonFiniteGradientError, Optimizer
from optimizer_matrix import CONFIGS, OptimizerConfig, assert_close, assert_identical

DTYPES = [np.float32, np.float64]
# 0-d, empty, one chunk, and several chunks with a ragged last one
SHAPES: list[tuple[int, ...]] = [(), (0,), (7,), (3, kernels.CHUNK + 5)]
STEPS = 4


def make_params(dtype: Any, rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def make_grads(params: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def both_paths(config: OptimizerConfig, params: list[np.ndarray]) -> tuple[Optimizer, Optimizer]:
    """The same optimizer twice, on copies of ``params``: fused, and through the rules."""
    fused = config.make([p.copy() for p in params])
    reference = config.make([p.copy() for p in params])
    assert getattr(fused, "fused", False) and type(fused)._kernel is not None  # type: ignore[attr-defined]
    reference.fused = False  # type: ignore[attr-defined]
    return fused, reference


def params_of(opt: Optimizer) -> list[np.ndarray]:
    return [p for group in opt._leaves for p in group]


def assert_same_state(fused: Optimizer, reference: Optimizer) -> None:
    for p_fused, p_ref in zip(params_of(fused), params_of(reference), strict=True):
        assert_close(p_fused, p_ref)
    for s_fused, s_ref in zip(fused.state, reference.state, strict=True):
        assert sorted(s_fused) == sorted(s_ref)  # the same keys: created lazily, the same way
        assert s_fused["step"] == s_ref["step"]
        for key in s_ref:
            if key != "step":
                assert_close(s_fused[key], s_ref[key])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("config", CONFIGS, ids=[c.id for c in CONFIGS])
def test_kernel_matches_rule(config: OptimizerConfig, dtype: Any) -> None:
    rng = np.random.default_rng(0)
    fused, reference = both_paths(config, make_params(dtype, rng))
    first_arrays: list[Any] = []
    for _ in range(STEPS):
        grads = make_grads(params_of(fused), rng)
        fused.step(grads)
        reference.step(grads)
        assert_same_state(fused, reference)
        # the kernel really ran: it updates the state arrays of the first step in place
        arrays = [v for s in fused.state for v in s.values() if isinstance(v, np.ndarray)]
        first_arrays = first_arrays or arrays
        assert all(a is b for a, b in zip(arrays, first_arrays, strict=True))


@pytest.mark.parametrize("config", [c for c in CONFIGS if c.cls is Adadelta], ids=lambda c: c.id)
def test_the_float64_adadelta_kernel_is_the_rule_bit_for_bit(config: OptimizerConfig) -> None:
    """float64 takes the rule's two roots (benchmarks/results/one_root_accuracy.md)."""
    rng = np.random.default_rng(3)
    fused, reference = both_paths(config, make_params(np.float64, rng))
    for _ in range(STEPS):
        grads = make_grads(params_of(fused), rng)
        fused.step(grads)
        reference.step(grads)
    assert_identical(fused.state_dict(), reference.state_dict())
    for a, b in zip(params_of(fused), params_of(reference), strict=True):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("config", CONFIGS, ids=[c.id for c in CONFIGS])
def test_state_dicts_are_interchangeable_between_paths(config: OptimizerConfig) -> None:
    rng = np.random.default_rng(1)
    fused, reference = both_paths(config, make_params(np.float32, rng))
    for _ in range(2):
        grads = make_grads(params_of(fused), rng)
        fused.step(grads)
        reference.step(grads)
    # swap the states: each path continues from the other's
    fused_state, reference_state = fused.state_dict(), reference.state_dict()
    fused.load_state_dict(reference_state)
    reference.load_state_dict(fused_state)
    for _ in range(2):
        grads = make_grads(params_of(fused), rng)
        fused.step(grads)
        reference.step(grads)
    assert_same_state(fused, reference)


def test_the_kernel_updates_the_state_in_place() -> None:
    """The fused path really ran: it keeps the state arrays and writes into them."""
    x = np.ones(10, np.float32)
    opt = adadelta.Adadelta(x)
    opt.step(np.ones(10, np.float32))
    E_g2 = opt.state[0]["E_g2"]
    opt.step(np.ones(10, np.float32))
    assert opt.state[0]["E_g2"] is E_g2
    assert opt.state[0]["step"] == 2


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_non_contiguous_parameters_and_gradients(dtype: Any) -> None:
    """A transposed parameter goes through the rule, a transposed gradient of a contiguous
    parameter through the kernel (copied); both match the reference."""
    rng = np.random.default_rng(2)
    base = rng.standard_normal((40, 30)).astype(dtype)
    config = next(c for c in CONFIGS if c.id == "Adam-amsgrad")
    fused = config.make([base.copy().T, rng.standard_normal(50).astype(dtype)])
    reference = config.make([base.copy().T, params_of(fused)[1].copy()])
    reference.fused = False  # type: ignore[attr-defined]
    assert not params_of(fused)[0].flags.c_contiguous
    for _ in range(3):
        grads = [
            rng.standard_normal((40, 30)).astype(dtype).T,  # non-contiguous
            rng.standard_normal(100).astype(dtype)[::2],  # non-contiguous
        ]
        fused.step(grads)
        reference.step(grads)
        assert_same_state(fused, reference)


def test_read_only_gradients() -> None:
    x = np.zeros(5000, np.float32)
    g = np.ones(5000, np.float32)
    g.flags.writeable = False
    reference_x = x.copy()
    reference = adadelta.Adadelta(reference_x)
    reference.fused = False  # type: ignore[attr-defined]
    adadelta.Adadelta(x).step(g)
    reference.step(g)
    assert_close(x, reference_x)


@pytest.mark.parametrize("threads", [1, 2, 3, 16])
@pytest.mark.parametrize(
    "sizes", [[100_000], [10_000_000], [1], [0], [7, 0, 2 * kernels.CHUNK + 5], [4096] * 9]
)
def test_chunks_cover_every_array_once_in_even_pieces(sizes: list[int], threads: int) -> None:
    chunks = kernels.parallel._chunks(np.array(sizes, np.intp), threads)
    lengths = chunks[:, 2] - chunks[:, 1]
    size = int(lengths.max(initial=1))
    for t, n in enumerate(sizes):  # array t in consecutive pieces of one size, from 0 to its end
        rows = chunks[chunks[:, 0] == t]
        assert rows[:, 1].tolist() == list(range(0, n, size))
        assert rows[:, 2].tolist() == [min(start + size, n) for start in range(0, n, size)]
    assert (size <= kernels.CHUNK and size % 16 == 0) or len(chunks) <= 1
    total = sum(sizes)
    if len(sizes) == 1 and total >= kernels.CHUNK * threads:
        # one large array: the threads get as much work each (Numba gives each thread a
        # contiguous block of pieces, as many as can be; 4096-element pieces gave one of two
        # threads 6% more than the mean for 1e5 elements)
        blocks = np.array_split(lengths, threads)
        assert max(int(b.sum()) for b in blocks) <= 1.01 * total / threads


def test_many_tensors_in_one_call_equal_one_call_each() -> None:
    rng = np.random.default_rng(3)
    sizes = rng.integers(0, 3 * kernels.CHUNK, size=200)
    params = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    together = [p.copy() for p in params]
    one_by_one = [p.copy() for p in params]
    opt_together = adadelta.Adam(together, lr=1e-2, amsgrad=True)
    opts = [adadelta.Adam(p, lr=1e-2, amsgrad=True) for p in one_by_one]
    for _ in range(3):
        grads = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        opt_together.step(grads)
        for opt, g in zip(opts, grads, strict=True):
            opt.step(g)
    for a, b in zip(together, one_by_one, strict=True):
        np.testing.assert_array_equal(a, b)  # the same arithmetic, element by element


def test_mixed_dtypes_in_one_group() -> None:
    rng = np.random.default_rng(4)
    params = [rng.standard_normal(100).astype(np.float32), rng.standard_normal(100)]
    config = next(c for c in CONFIGS if c.id == "RMSprop-centered-momentum")
    fused, reference = both_paths(config, params)
    for _ in range(3):
        grads = make_grads(params_of(fused), rng)
        fused.step(grads)
        reference.step(grads)
    assert_same_state(fused, reference)
    assert (
        params_of(fused)[0].dtype == np.float32 and fused.state[0]["square_avg"].dtype == np.float32
    )


def snapshot(opt: Optimizer) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    params = [p.copy() for p in params_of(opt)]
    states = [
        {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in s.items()} for s in opt.state
    ]
    return params, states


def assert_unchanged(opt: Optimizer, before: tuple[list[np.ndarray], list[dict[str, Any]]]) -> None:
    params, states = before
    for p, p_before in zip(params_of(opt), params, strict=True):
        np.testing.assert_array_equal(p, p_before)
    for s, s_before in zip(opt.state, states, strict=True):
        assert sorted(s) == sorted(s_before)
        for key, value in s_before.items():
            np.testing.assert_array_equal(s[key], value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("config", CONFIGS, ids=[c.id for c in CONFIGS])
def test_a_non_finite_gradient_anywhere_changes_nothing(
    config: OptimizerConfig, bad: float
) -> None:
    rng = np.random.default_rng(5)
    params = {
        "a": rng.standard_normal((3, 4)).astype(np.float32),
        "b": rng.standard_normal(3 * kernels.CHUNK).astype(np.float32),
    }
    opt = config.make(params)
    grads = {k: rng.standard_normal(p.shape).astype(p.dtype) for k, p in params.items()}
    for _ in range(2):
        before = snapshot(opt)
        poisoned = {k: g.copy() for k, g in grads.items()}
        poisoned["b"][rng.integers(poisoned["b"].size)] = bad  # in the last array, any chunk
        with pytest.raises(NonFiniteGradientError, match=r"params\['b'\]: 1 of 12288 entries"):
            opt.step(poisoned)
        assert_unchanged(opt, before)  # on the first step: no state created either
        opt.step(grads)


def test_a_non_finite_gradient_in_a_later_group_changes_nothing() -> None:
    rng = np.random.default_rng(6)
    groups = [
        {"params": [rng.standard_normal(100).astype(np.float32)]},
        {"params": [rng.standard_normal(100), rng.standard_normal((20, 10)).T], "rho": 0.9},
    ]
    opt = adadelta.Adadelta(groups)
    grads = [[np.ones(100, np.float32)], [np.ones(100), np.ones((10, 20))]]
    opt.step(grads)
    before = snapshot(opt)
    grads[1][1][3, 4] = np.nan  # the transposed, non-contiguous parameter's gradient
    with pytest.raises(
        NonFiniteGradientError, match=r"param_groups\[1\]\['params'\]\[1\]: 1 of 200 entries"
    ):
        opt.step(grads)
    assert_unchanged(opt, before)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("config", CONFIGS, ids=[c.id for c in CONFIGS])
def test_without_the_check_non_finite_values_propagate_as_in_the_rules(
    config: OptimizerConfig,
) -> None:
    rng = np.random.default_rng(7)
    params = make_params(np.float32, rng)
    fused = config.make([p.copy() for p in params], check_finite=False)
    reference = config.make([p.copy() for p in params], check_finite=False)
    reference.fused = False  # type: ignore[attr-defined]
    for step in range(3):
        grads = make_grads(params_of(fused), rng)
        grads[-1][0, step] = [np.nan, np.inf, -np.inf][step]
        fused.step(grads)
        reference.step(grads)
    assert_same_state(fused, reference)  # NaN where the reference has NaN


def test_first_non_finite() -> None:
    n = 2 * kernels.CHUNK + 3
    finite = [np.full(n, np.finfo(np.float32).max, np.float32), np.full(n, 1e-45, np.float32)]
    assert kernels.first_non_finite(finite) == -1
    assert kernels.first_non_finite([]) == -1
    assert kernels.first_non_finite([np.zeros(0), np.zeros(()), np.zeros((4, 5)).T]) == -1
    for where in (0, kernels.CHUNK - 1, kernels.CHUNK, n - 1):
        for dtype in DTYPES:
            arrays = [np.zeros(n, dtype) for _ in range(4)]
            arrays[2][where] = np.nan
            arrays[3][0] = np.inf
            assert kernels.first_non_finite(arrays) == 2
    mixed = [np.zeros(3, np.float32), np.zeros((4, 5)).T, np.full(3, np.inf), np.zeros(3)]
    assert kernels.first_non_finite(mixed) == 2
    mixed[1][0, 0] = -np.inf
    assert kernels.first_non_finite(mixed) == 1
    assert kernels.first_non_finite([np.zeros(()), np.array(np.nan, np.float32)]) == 1


def test_bench_writes_its_table_json_and_plot(tmp_path: Path) -> None:
    """A tiny run of ``adadelta bench`` (no timings checked, only that it reports them): every
    condition, the interleaved ones with their matrix products, each framework in a process."""
    argv = ["step", "--sizes", "1000", "--mix", "5", "--mix-total", "2000"]
    argv += ["--repeats", "2", "--min-time", "0.001", "--out", str(tmp_path), "--no-progress"]
    assert bench.main([*argv, "--only", "ours,numpy-tutorial,triad"]) == 0
    record = json.loads((tmp_path / "bench.json").read_text())
    assert [r["case"] for r in record["results"]] == ["1e3", "5 tensors"]
    for result in record["results"]:
        assert list(result["conditions"]) == list(bench.CONDITIONS)
        for condition in result["conditions"].values():
            assert set(condition["median_s"]) == {"ours", "numpy-tutorial", "triad"}
            assert all(len(t) == 2 and min(t) > 0 for t in condition["times_s"].values())
    table = (tmp_path / "bench.md").read_text()
    assert "| 5 tensors | 2e3 |" in table and "ours / triad" in table
    assert all(f"### {condition}:" in table for condition in bench.CONDITIONS)
    assert "ours, interleaved / tight: 1e3 " in table
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_products_are_a_training_steps() -> None:
    """The interleaved conditions' products: the forward and backward of a square layer with
    as many weights as the step's elements (about), on a batch of 100 rows."""
    assert bench._layer_width(10**6) == 1000 and bench._layer_width(10**5) == 316
    bench.numpy_products(400)()  # runs (its arrays are its own)


def test_bench_competitor_runs_only_while_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[Any] = []
    popen = bench.subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> Any:
        started.append(popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(bench.subprocess, "Popen", spy)
    with bench.competitor(False):
        assert not started
    with bench.competitor(True):
        assert len(started) == 1 and started[0].poll() is None  # running
    assert started[0].poll() is not None  # stopped


@pytest.mark.parametrize("users", [None, "77"], ids=["default", "user-set"])
def test_the_thread_pool_starts_without_spinning_and_the_environment_stays(
    users: str | None,
) -> None:
    """The first kernel call starts Numba's OpenMP pool with GOMP_SPINCOUNT=0, set only while it
    starts (so that child processes and PyTorch's runtime never see it); a user's value wins."""
    code = (
        "import os, numba, numpy as np\n"
        "seen = []\n"
        "original = numba.get_num_threads\n"
        "numba.get_num_threads = lambda: seen.append(os.environ.get('GOMP_SPINCOUNT')) "
        "or original()\n"
        "import adadelta\n"
        "assert not seen  # importing starts nothing\n"
        "adadelta.Adadelta(np.zeros(3, np.float32)).step(np.ones(3, np.float32))\n"
        "print(seen[0], os.environ.get('GOMP_SPINCOUNT'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    if users is not None:
        env["GOMP_SPINCOUNT"] = users
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == (["0", "None"] if users is None else [users, users])


def test_bench_mixed_sizes_add_up() -> None:
    sizes = bench.mixed_sizes(200, 10_000_000)
    assert len(sizes) == 200 and sum(sizes) == 10_000_000 and min(sizes) >= 1
    assert max(sizes) / min(sizes) > 100  # a mix of small and large tensors


def test_tutorial_adadelta_is_the_rule() -> None:
    """The benchmark's tutorial-style baseline computes ADADELTA (lr=1) like the rule."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(50)
    expected, state = x.copy(), rules.AdadeltaState(0, None, None)
    tutorial = bench.TutorialAdadelta(rho=0.9, eps=1e-6)
    for _ in range(3):
        g = rng.standard_normal(50)
        x = tutorial.update(x, g)
        expected, state = rules.adadelta(
            expected,
            g,
            state,
            lr=1.0,
            rho=0.9,
            eps=1e-6,
            weight_decay=0.0,
            decoupled_weight_decay=False,
            maximize=False,
        )
    np.testing.assert_allclose(x, expected, rtol=1e-12)


def test_addresses_are_those_of_the_first_element() -> None:
    base = np.zeros((6, 8))
    for a in [np.zeros((), np.float32), base, base[2:], base[1:3, :], base.reshape(2, 3, 8)[1]]:
        assert kernels.parallel._address(a) == a.ctypes.data


def test_a_batch_refusing_its_first_step_removes_the_state_it_created() -> None:
    x, state = np.ones(5, np.float32), {"step": 0}
    hyper = {"lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0}
    hyper |= {"nesterov": False, "maximize": False}
    batch = kernels.Batch(kernels.SGD, hyper, [x], [state])
    assert set(state) == {"step", "momentum_buffer"} and batch.current(hyper)
    assert batch.step(hyper, [np.array([1, 2, np.inf, 4, 5], np.float32)], check=True) == 0
    assert state == {"step": 0} and not batch.current(hyper)
    np.testing.assert_array_equal(x, 1)


def test_a_parameter_made_read_only_is_refused_as_by_the_rule() -> None:
    x = np.zeros(10, np.float32)
    opt = adadelta.Adadelta(x)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        opt.step(np.ones(10, np.float32))
    assert opt.state[0] == {"step": 0}


def test_bench_epoch_writes_its_table(tmp_path: Path) -> None:
    """A tiny ``adadelta bench epoch`` (200 synthetic images): it runs and reports ours, quiet
    and busy, with the optimizer's share."""
    argv = ["epoch", "--n-train", "200", "--repeats", "1", "--out", str(tmp_path)]
    assert bench.main([*argv, "--no-progress", "--only", "ours"]) == 0
    record = json.loads((tmp_path / "epoch.json").read_text())
    assert record["source"] == "synthetic"
    assert set(record["median_s"]) == {"ours", "ours, busy"}
    assert min(record["median_s"].values()) > 0
    assert 0 < record["ours_step_s"][0] < record["median_s"]["ours"]
    text = (tmp_path / "epoch.md").read_text()
    assert "| ours |" in text and "ours: opt.step" in text and "ours, busy / ours:" in text
    assert bench.main([*argv, "--no-progress", "--only", "ours,nonsense"]) == 2


@pytest.mark.slow
def test_bench_epoch_runs_pytorch_eager_and_compiled(tmp_path: Path) -> None:
    """The PyTorch side of ``adadelta bench epoch``, eager and with a compiled training step
    (tens of seconds: Inductor compiles C++)."""
    pytest.importorskip("torch", reason="the PyTorch epochs need the torch extra")
    argv = ["epoch", "--n-train", "200", "--repeats", "1", "--out", str(tmp_path)]
    assert bench.main([*argv, "--no-progress", "--only", "pytorch,pytorch-compiled"]) == 0
    record = json.loads((tmp_path / "epoch.json").read_text())
    assert set(record["median_s"]) == {"pytorch", "pytorch-compiled"}
    assert min(record["median_s"].values()) > 0 and record["ours_step_s"] == []


def test_the_fused_plan_follows_every_change_to_the_optimizer() -> None:
    """The optimizer keeps its kernel batches from step to step; each change below must be
    seen (a new hyperparameter needing new state, state replaced by the user or by a state
    dict, a new group, the fused switch), so that the fused path keeps matching the rule."""
    rng = np.random.default_rng(11)
    params = [[rng.standard_normal(s).astype(np.float32) for s in [(5,), (2, kernels.CHUNK)]]]
    fused, reference = (
        adadelta.SGD([{"params": [p.copy() for p in params[0]]}], lr=0.01) for _ in range(2)
    )
    reference.fused = False

    def steps(count: int = 2) -> None:
        for _ in range(count):
            grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in group]
                     for group in fused._leaves]  # fmt: skip
            fused.step(grads)
            reference.step(grads)
        assert_same_state(fused, reference)

    steps()
    for opt in (fused, reference):  # momentum now: the buffer starts at the next gradient
        opt.param_groups[0]["momentum"] = 0.9
    steps()
    assert "momentum_buffer" in fused.state[1]
    for opt in (fused, reference):  # a buffer replaced by the user, non-contiguous: the rule
        opt.state[1]["momentum_buffer"] = np.ones((kernels.CHUNK, 2), np.float32).T
    steps()
    saved = reference.state_dict()
    for opt in (fused, reference):
        opt.load_state_dict(saved)
    steps()
    for opt in (fused, reference):
        opt.add_param_group({"params": [np.ones(7, np.float32)], "momentum": 0.5})
    steps()
    fused.fused = False
    steps(1)
    fused.fused = True
    steps()


def test_the_check_is_folded_into_the_kernel_call_when_one_batch_does_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default path: after the first step, the separate scan is skipped and the kernel's
    own scan refuses a NaN, changing nothing."""
    scans: list[int] = []
    original = kernels.first_non_finite
    monkeypatch.setattr(kernels, "first_non_finite", lambda a: scans.append(1) or original(a))
    x = {"W": np.ones((3, 4), np.float32), "b": np.zeros(4, np.float32)}
    opt = adadelta.Adadelta(x)
    grads = {"W": np.ones((3, 4), np.float32), "b": np.ones(4, np.float32)}
    opt.step(grads)
    assert len(scans) == 1  # the first step: the batch is made after the check
    opt.step(grads)
    before = snapshot(opt)
    grads["b"][2] = np.nan
    with pytest.raises(NonFiniteGradientError, match=r"params\['b'\]: 1 of 4 entries"):
        opt.step(grads)
    assert len(scans) == 1
    assert_unchanged(opt, before)
    # finite gradients whose sum overflows (the scan's first test) are taken, as by the rule
    huge = {k: np.full_like(v, np.finfo(np.float32).max) for k, v in grads.items()}
    reference = adadelta.Adadelta({k: v.copy() for k, v in x.items()})
    reference.load_state_dict(opt.state_dict())
    reference.fused = False
    opt.step(huge)
    assert len(scans) == 1 and opt.state[0]["step"] == 3
    with np.errstate(over="ignore"):  # g * g overflows to inf in the rule, as in the kernel
        reference.step(huge)
    assert_same_state(opt, reference)


@pytest.mark.parametrize(
    "bad_chunk", [None, 0, 3], ids=["finite", "nan-in-part-0", "nan-in-part-1"]
)
def test_every_part_is_scanned_before_any_part_is_written(
    monkeypatch: pytest.MonkeyPatch, bad_chunk: int | None
) -> None:
    """With two parts (threads), a NaN in either part's gradients leaves every array as it was,
    including the other part's; finite gradients give the one-part step to the bit."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4 * kernels.CHUNK).astype(np.float32)  # 4 chunks, 2 parts
    grads = [rng.standard_normal(x.size).astype(np.float32) for _ in range(2)]
    expected = adadelta.Adadelta(x.copy())
    opt = adadelta.Adadelta(x)
    for g in grads:
        expected.step(g)
    opt.step(grads[0])
    monkeypatch.setattr(kernels.batch, "_threads", lambda elements: 2)
    assert opt._plan is not None
    batch = opt._plan.batches[0].batch
    assert batch.elements < kernels.PARALLEL_MIN and len(batch.chunks) == 4
    if bad_chunk is None:
        opt.step(grads[1])
        assert_same_state(opt, expected)
        return
    before = snapshot(opt)
    grads[1][bad_chunk * kernels.CHUNK + 5] = np.nan
    with pytest.raises(NonFiniteGradientError, match=r"params: 1 of 16384 entries"):
        opt.step(grads[1])
    assert_unchanged(opt, before)
