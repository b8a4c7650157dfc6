"""Compact state (``state_dtype``) in the PyTorch drop-in: the NumPy optimizer's results, bit
for bit; state dicts; conversion to and from ``torch.optim.Adadelta``'s; refusals."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import adadelta  # noqa: E402
from adadelta.kernels import compact  # noqa: E402
from adadelta.torch import Adadelta, convert_state  # noqa: E402

FORMATS = ["bfloat16", "float8"]
SHAPES = [(300,), (20, 7), (3,)]  # float8: more than one block, a partial block


def _arrays(seed: int) -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def _grads(rng: np.random.Generator) -> list[np.ndarray[Any, Any]]:
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def _step(opt: Any, params: list[Any], grads: list[np.ndarray[Any, Any]]) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.from_numpy(g.copy())
    opt.step()


NAMES = {"E_g2": "square_avg", "E_dx2": "acc_delta"}


def _assert_same_state(numpy_opt: Any, torch_opt: Any, params: list[Any], fmt: str) -> None:
    saved = numpy_opt.state_dict()["state"]
    for i, p in enumerate(params):
        ours, theirs = torch_opt.state[p], saved[i]
        assert int(ours["step"]) == theirs["step"]
        assert ours["seed"] == theirs["seed"]
        as_numpy = {k: ours[n].numpy() for k, n in NAMES.items()}
        if fmt == "float8":
            as_numpy |= {k + "_scale": ours[n + "_scale"].numpy() for k, n in NAMES.items()}
        for key in NAMES:
            np.testing.assert_array_equal(as_numpy[key], theirs[key])
            np.testing.assert_array_equal(
                compact.dequantize(as_numpy, key, fmt), compact.dequantize(theirs, key, fmt)
            )


@pytest.mark.parametrize("fused", [None, False])
@pytest.mark.parametrize("fmt", FORMATS)
def test_same_bits_as_numpy(fmt: str, fused: bool | None) -> None:
    arrays = _arrays(0)
    params = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    numpy_opt = adadelta.Adadelta(arrays, preset="torch", state_dtype=fmt, seed=7)
    numpy_opt.fused = fused is not False
    torch_opt = Adadelta(params, state_dtype=fmt, min_compact_size=0, seed=7, fused=fused)
    rng = np.random.default_rng(1)
    for _ in range(5):
        grads = _grads(rng)
        numpy_opt.step(grads)
        _step(torch_opt, params, grads)
    for a, p in zip(arrays, params, strict=True):
        np.testing.assert_array_equal(p.detach().numpy(), a)
    assert not np.array_equal(arrays[0], _arrays(0)[0])  # it moved
    _assert_same_state(numpy_opt, torch_opt, params, fmt)


def test_hyperparameters_and_seeds_follow_positions() -> None:
    """weight decay, maximize, two groups; a parameter without a gradient keeps its position."""
    arrays = _arrays(2)
    params = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    hyper = {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.1, "maximize": True}
    numpy_opt = adadelta.Adadelta(
        [{"params": arrays[:1]}, {"params": arrays[1:]}], state_dtype="bfloat16", seed=3, **hyper
    )
    torch_opt = Adadelta(
        [{"params": params[:1]}, {"params": params[1:]}],
        state_dtype="bfloat16",
        min_compact_size=0,
        seed=3,
        **hyper,
    )
    rng = np.random.default_rng(4)
    for _ in range(3):
        grads = _grads(rng)
        numpy_opt.step([grads[:1], grads[1:]])
        _step(torch_opt, params, grads)
    for a, p in zip(arrays, params, strict=True):
        np.testing.assert_array_equal(p.detach().numpy(), a)
    _assert_same_state(numpy_opt, torch_opt, params, "bfloat16")
    # only the last parameter has a gradient: its seed is still that of position 2
    fresh = [torch.zeros(s, requires_grad=True) for s in SHAPES]
    opt = Adadelta(fresh, state_dtype="float8", min_compact_size=0, seed=3)
    fresh[2].grad = torch.ones(SHAPES[2])
    opt.step()
    assert set(opt.state) == {fresh[2]}
    assert opt.state[fresh[2]]["seed"] == compact.parameter_seed(3, 2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_state_dict_round_trip(fmt: str) -> None:
    arrays = _arrays(5)
    params = [torch.tensor(a, requires_grad=True) for a in arrays]
    opt = Adadelta(params, state_dtype=fmt, min_compact_size=0, seed=11)
    rng = np.random.default_rng(6)
    _step(opt, params, _grads(rng))
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    copies = [p.detach().clone().requires_grad_() for p in params]
    other = Adadelta(
        copies, state_dtype=fmt, min_compact_size=0, seed=0
    )  # the seeds come from the state dict
    other.load_state_dict(saved)
    for _ in range(3):
        grads = _grads(rng)
        _step(opt, params, grads)
        _step(other, copies, grads)
    for p, q in zip(params, copies, strict=True):
        assert torch.equal(p, q)
        for key, value in opt.state[p].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(other.state[q][key]))
    # the loaded state is a copy, not the saved tensors
    assert all(
        other.state[q]["square_avg"].data_ptr() != saved["state"][i]["square_avg"].data_ptr()
        for i, q in enumerate(copies)
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_conversion_to_and_from_torch_optim(fmt: str) -> None:
    arrays = _arrays(8)
    params = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    numpy_opt = adadelta.Adadelta(arrays, preset="torch", state_dtype=fmt, seed=2)
    opt = Adadelta(params, state_dtype=fmt, min_compact_size=0, seed=2)
    rng = np.random.default_rng(9)
    for _ in range(3):
        grads = _grads(rng)
        numpy_opt.step(grads)
        _step(opt, params, grads)
    as_float = convert_state(opt.state_dict(), None)
    expected = adadelta.convert_state(numpy_opt.state_dict(), None)
    for i in range(len(params)):
        state = as_float["state"][i]
        assert set(state) == {"step", "square_avg", "acc_delta"}
        assert state["step"].dtype == torch.float32 and float(state["step"]) == 3.0
        for key, name in NAMES.items():
            assert state[name].dtype == torch.float32
            np.testing.assert_array_equal(state[name].numpy(), expected["state"][i][key])
    # torch.optim.Adadelta loads it and continues where the NumPy optimizer with float32 state does
    theirs = torch.optim.Adadelta(params)
    theirs.load_state_dict(as_float)
    numpy_float = adadelta.Adadelta(arrays, preset="torch")
    numpy_float.load_state_dict(expected)
    grads = _grads(rng)
    numpy_float.step(grads)
    _step(theirs, params, grads)
    for a, p in zip(arrays, params, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), a, rtol=1e-6, atol=1e-6)
    # and back: torch.optim.Adadelta's state dict into the drop-in, as adadelta.convert_state
    back = convert_state(theirs.state_dict(), fmt, seed=4, min_compact_size=0)
    reference = adadelta.convert_state(
        adadelta.convert_state(numpy_float.state_dict(), None), fmt, seed=4
    )
    drop_in = Adadelta(params, state_dtype=fmt, min_compact_size=0)
    drop_in.load_state_dict(back)
    for i, p in enumerate(params):
        state = drop_in.state[p]
        assert state["seed"] == compact.parameter_seed(4, i) == reference["state"][i]["seed"]
        assert state["step"].dtype == torch.int64 and int(state["step"]) == 4
        assert state["square_avg"].dtype == (torch.uint16 if fmt == "bfloat16" else torch.uint8)
        for key, name in NAMES.items():
            np.testing.assert_allclose(
                compact.dequantize({key: state[name].numpy(), **_scales(state)}, key, fmt),
                compact.dequantize(reference["state"][i], key, fmt),
                rtol=1e-6,
            )
    _step(drop_in, params, _grads(rng))
    assert all(int(drop_in.state[p]["step"]) == 5 for p in params)


def _scales(state: dict[str, Any]) -> dict[str, Any]:
    return {
        k + "_scale": state[n + "_scale"].numpy() for k, n in NAMES.items() if n + "_scale" in state
    }


def test_compiled_step_runs_the_same_step() -> None:
    """Under torch.compile the compact step is a graph break and runs as it does eagerly."""
    ws = [torch.linspace(-1, 1, 50, requires_grad=True) for _ in range(2)]
    opts = [Adadelta([w], state_dtype="bfloat16", min_compact_size=0) for w in ws]
    for w in ws:
        w.grad = torch.linspace(2, -1, 50)

    def step(opt: Adadelta) -> None:
        opt.step()

    step(opts[0])
    torch.compile(step)(opts[1])
    assert torch.equal(ws[0], ws[1]) and not torch.equal(ws[0], torch.linspace(-1, 1, 50))
    assert torch.equal(opts[0].state[ws[0]]["acc_delta"], opts[1].state[ws[1]]["acc_delta"])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Adadelta([torch.zeros(3)], state_dtype="int8", min_compact_size=0),
            "Invalid state_dtype value",
        ),
        (
            lambda: Adadelta([torch.zeros(3)], state_dtype="float8", min_compact_size=0, seed=-1),
            "Invalid seed",
        ),
        (
            lambda: Adadelta(
                [torch.zeros(3, dtype=torch.float64)], state_dtype="bfloat16", min_compact_size=0
            ),
            "needs contiguous float32, bfloat16 or float16 parameters on the CPU or a CUDA "
            "device; parameter 0 of the group is torch.float64",
        ),
        (
            lambda: Adadelta(
                [torch.zeros(3, device="meta")], state_dtype="bfloat16", min_compact_size=0
            ),
            "parameter 0 of the group is torch.float32 on meta",
        ),
        (
            lambda: Adadelta([torch.zeros(4, 4).t()], state_dtype="float8", min_compact_size=0),
            "needs contiguous float32, bfloat16 or float16 parameters",
        ),
        (
            lambda: Adadelta(
                [torch.zeros(3)], state_dtype="float8", min_compact_size=0, differentiable=True
            ),
            "does not support differentiable=True",
        ),
        (
            lambda: Adadelta(
                [torch.zeros(3)], state_dtype="float8", min_compact_size=0, capturable=True
            ),
            "does not support capturable=True",
        ),
        (
            lambda: Adadelta(
                [torch.zeros(3)], state_dtype="bfloat16", min_compact_size=0, foreach=True
            ),
            "does not support foreach=True",
        ),
    ],
)
def test_construction_refusals(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_refusals_change_nothing() -> None:
    w = torch.ones(5, requires_grad=True)
    opt = Adadelta([w], state_dtype="bfloat16", min_compact_size=0)
    with pytest.raises(ValueError, match=r"parameter 0 of the group is torch\.float64"):
        opt.add_param_group({"params": [torch.zeros(2, dtype=torch.float64)]})
    assert len(opt.param_groups) == 1
    w.grad_dtype = None  # PyTorch refuses such a gradient otherwise
    w.grad = torch.ones(5, dtype=torch.float64)
    with pytest.raises(
        ValueError, match=r"parameter 0 needs a torch\.float32 gradient of its shape on cpu"
    ):
        opt.step()
    assert torch.equal(w, torch.ones(5)) and len(opt.state) == 0
    w.grad = torch.ones(5)
    opt.param_groups[0]["foreach"] = True  # edited after construction
    with pytest.raises(ValueError, match="does not support foreach=True"):
        opt.step()
    assert torch.equal(w, torch.ones(5)) and len(opt.state) == 0
    opt.param_groups[0]["foreach"] = None
    opt.step()
    before = {k: torch.as_tensor(v).clone() for k, v in opt.state[w].items()}
    # a float32 state dict (torch.optim.Adadelta's) is refused, naming the fix
    theirs = torch.optim.Adadelta([torch.ones(5, requires_grad=True)])
    theirs.param_groups[0]["params"][0].grad = torch.ones(5)
    theirs.step()
    with pytest.raises(ValueError, match=r"format float.*adadelta.torch.convert_state"):
        opt.load_state_dict(theirs.state_dict())
    # so is compact state of the other format, or of the wrong shape
    other = Adadelta([torch.ones(5, requires_grad=True)], state_dtype="float8", min_compact_size=0)
    other.param_groups[0]["params"][0].grad = torch.ones(5)
    other.step()
    mislabelled = other.state_dict()  # float8 state in a group that says bfloat16
    mislabelled["param_groups"][0]["state_dtype"] = "bfloat16"
    with pytest.raises(ValueError, match="format float8"):
        opt.load_state_dict(mislabelled)
    # and a compact state dict in an optimizer with float state (PyTorch would cast the codes)
    # whose groups do not say so (a saved group's state_dtype would replace the group's)
    plain = Adadelta([torch.ones(5, requires_grad=True)])
    unlabelled = opt.state_dict()
    del unlabelled["param_groups"][0]["state_dtype"]
    with pytest.raises(ValueError, match=r"is compact.*convert_state\(state_dict, None\)"):
        plain.load_state_dict(unlabelled)
    assert len(plain.state) == 0
    wrong = opt.state_dict()
    wrong = {
        "state": {0: {**wrong["state"][0], "acc_delta": torch.zeros(4, dtype=torch.uint16)}},
        "param_groups": wrong["param_groups"],
    }
    with pytest.raises(ValueError, match="'E_dx2' must be a uint16 array of shape"):
        opt.load_state_dict(wrong)
    for key, value in opt.state[w].items():
        assert torch.equal(torch.as_tensor(value), before[key])


def test_default_state_is_unchanged() -> None:
    w = torch.ones(3, requires_grad=True)
    opt = Adadelta([w])
    w.grad = torch.ones(3)
    opt.step()
    assert opt.state_dtype is None
    assert {k: v.dtype for k, v in opt.state[w].items()} == {
        "step": torch.float32,
        "square_avg": torch.float32,
        "acc_delta": torch.float32,
    }


def test_deepcopy_keeps_the_format() -> None:
    import copy

    w = torch.ones(300, requires_grad=True)
    opt = Adadelta([w], state_dtype="float8", min_compact_size=0, seed=9)
    w.grad = torch.linspace(-1, 1, 300)
    opt.step()
    twin = copy.deepcopy(opt)
    assert (twin.state_dtype, twin.seed) == ("float8", 9)
    (v,) = twin.param_groups[0]["params"]
    v.grad = w.grad.clone()
    opt.step()
    twin.step()
    assert torch.equal(v, w) and torch.equal(twin.state[v]["acc_delta"], opt.state[w]["acc_delta"])


# --- the policy: min_compact_size, state_dtype per group ---


def test_small_tensors_keep_float32_state_and_float_groups_keep_torchs_keys() -> None:
    big, small = torch.ones(5000, requires_grad=True), torch.ones(10, requires_grad=True)
    plain = torch.ones(7, requires_grad=True)
    opt = Adadelta([{"params": [big, small]}, {"params": [plain], "state_dtype": None}], seed=1)
    opt.add_param_group({"params": [torch.ones(3)], "state_dtype": "float8"})
    assert "state_dtype" not in opt.param_groups[0] and "state_dtype" not in opt.param_groups[1]
    assert opt.param_groups[2]["state_dtype"] == "float8"
    assert opt.param_groups[2]["min_compact_size"] == 4096
    compact_opt = Adadelta([big, small], state_dtype="bfloat16")
    for p in (big, small):
        p.grad = torch.full_like(p, 0.5)
    compact_opt.step()
    assert compact_opt.state[big]["square_avg"].dtype == torch.uint16
    assert set(compact_opt.state[small]) == {"step", "square_avg", "acc_delta"}
    assert compact_opt.state[small]["square_avg"].dtype == torch.float32
    saved = compact_opt.state_dict()
    assert saved["param_groups"][0]["state_dtype"] == "bfloat16"
    assert saved["param_groups"][0]["min_compact_size"] == 4096
    # the small tensor's step is torch's (float32 state), the big one's the compact kernel's
    ref = torch.ones(10, requires_grad=True)
    ref.grad = torch.full_like(ref, 0.5)
    torch.optim.Adadelta([ref]).step()
    torch.testing.assert_close(small, ref)
    # a float32-state optimizer's state dict is torch.optim.Adadelta's, keys included
    w = torch.ones(5, requires_grad=True)
    ours, theirs = Adadelta([w]), torch.optim.Adadelta([w])
    assert set(ours.state_dict()["param_groups"][0]) - {"fused"} == set(
        theirs.state_dict()["param_groups"][0]
    )


def test_policy_changes_are_refused_until_converted() -> None:
    w = torch.ones(300, requires_grad=True)
    opt = Adadelta([w], state_dtype="bfloat16", min_compact_size=0)
    w.grad = torch.ones(300)
    opt.step()
    opt.param_groups[0]["min_compact_size"] = 1000  # now it should have float32 state
    with pytest.raises(ValueError, match="is compact, but its group keeps float32 state"):
        opt.step()
    assert int(opt.state[w]["step"]) == 1
    opt.param_groups[0]["min_compact_size"] = 0
    opt.param_groups[0]["state_dtype"] = "float8"
    with pytest.raises(ValueError, match="has keys"):
        opt.step()
    with pytest.raises(ValueError, match="Invalid min_compact_size value: -1"):
        Adadelta([w], state_dtype="bfloat16", min_compact_size=-1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_plan_follows_replaced_state_and_tensors(fmt: str) -> None:
    """The compact plan (addresses kept between steps) is remade when the state or a tensor is
    replaced, and steps as a fresh optimizer does."""
    shapes = [(300,), (700,), (3, 90)]
    a = [torch.linspace(-1, 1, math.prod(s)).reshape(s).requires_grad_() for s in shapes]
    b = [p.detach().clone().requires_grad_() for p in a]
    opt_a = Adadelta(a, state_dtype=fmt, min_compact_size=0, seed=5)
    opt_b = Adadelta(b, state_dtype=fmt, min_compact_size=0, seed=5)
    for step in range(4):
        for pa, pb in zip(a, b, strict=True):
            pa.grad = torch.cos(pa.detach() * (step + 1))
            pb.grad = pa.grad.clone()
        opt_a.step()
        if step == 1:  # state replaced by copies, in place of the kept tensors
            opt_b.state[b[1]] = {k: torch.as_tensor(v).clone() if torch.is_tensor(v) else v
                                 for k, v in opt_b.state[b[1]].items()}  # fmt: skip
        if step == 2:
            opt_b.load_state_dict(opt_b.state_dict())
        opt_b.step()
        for pa, pb in zip(a, b, strict=True):
            assert torch.equal(pa, pb)
    for pa, pb in zip(a, b, strict=True):
        for key, value in opt_a.state[pa].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt_b.state[pb][key]))


# --- 16-bit parameters ---


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("fmt", FORMATS)
def test_16_bit_parameters_step_as_float32_ones_rounded(fmt: str, dtype: torch.dtype) -> None:
    """bfloat16/float16 parameters: the float32 kernel's arithmetic on the widened values, the
    parameter rounded to nearest once: each step gives the bits of a float32 parameter that
    starts from the same values, rounded (and the same state); the reference (fused=False)
    follows within the dtype's rounding."""
    shapes = [(300,), (20, 7)]
    start = [torch.linspace(-1, 1, math.prod(s)).reshape(s) for s in shapes]
    half = [x.to(dtype).requires_grad_() for x in start]
    wide = [x.detach().float().requires_grad_() for x in half]
    ref = [x.detach().clone().requires_grad_() for x in half]
    opts = [
        Adadelta(params, state_dtype=fmt, min_compact_size=0, seed=3, lr=0.5, fused=fused)
        for params, fused in [(half, None), (wide, None), (ref, False)]
    ]
    for step in range(3):
        for h, w, r in zip(half, wide, ref, strict=True):
            h.grad = torch.sin(h.detach().float() * (step + 2)).to(dtype)
            r.grad = h.grad.clone()
            with torch.no_grad():
                w.copy_(h)  # in place: the plan's addresses stay
            w.grad = h.grad.float()
        for opt in opts:
            opt.step()
        for h, w, r in zip(half, wide, ref, strict=True):
            assert h.dtype == dtype and torch.equal(h, w.detach().to(dtype))
            for key, value in opts[0].state[h].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(opts[1].state[w][key]))
            torch.testing.assert_close(r, h, atol=0.02, rtol=0.02)
    assert not torch.equal(half[0].float(), start[0])


def test_convert_state_follows_the_policy() -> None:
    """torch.optim.Adadelta's state dict, converted with the default policy, loads into a
    compact optimizer with the default policy: the big tensor's state compact, the small's not."""
    big, small = torch.ones(5000, requires_grad=True), torch.ones(10, requires_grad=True)
    theirs = torch.optim.Adadelta([big, small])
    big.grad, small.grad = torch.ones(5000), torch.ones(10)
    theirs.step()
    converted = convert_state(theirs.state_dict(), "float8", seed=2)
    assert converted["param_groups"][0]["state_dtype"] == "float8"
    assert converted["state"][0]["square_avg"].dtype == torch.uint8
    assert converted["state"][1]["square_avg"].dtype == torch.float32
    ours = Adadelta([big, small], state_dtype="float8")
    ours.load_state_dict(converted)
    ours.step()
    assert int(ours.state[big]["step"]) == 2 and float(ours.state[small]["step"]) == 2.0
    back = convert_state(ours.state_dict(), None)
    assert "state_dtype" not in back["param_groups"][0]
    torch.optim.Adadelta([big, small]).load_state_dict(back)


def test_memory_checks_of_gpu_members() -> None:
    """The memory checks that compact state on a GPU takes (its tensors have no NumPy views),
    run here on CPU tensors: tensors sharing memory, a gradient inside a state tensor or
    another parameter, refused by name; a gradient that is its parameter itself taken."""
    from adadelta.torch.compact_state import _check_apart, _empty_compact

    buffer = torch.zeros(300)
    p, q = buffer[:100], buffer[100:200]
    states = {p: _empty_compact(p, "float8", 0, 0), q: _empty_compact(q, "float8", 0, 1)}
    members = [(p, torch.zeros(100), 0), (q, torch.zeros(100), 1)]
    _check_apart(states, members)  # apart: nothing raised
    _check_apart(states, [(p, p, 0), (q, q, 1)])  # each gradient its parameter itself
    with pytest.raises(ValueError, match="gradient for parameter 0 shares memory with parameter 1"):
        _check_apart(states, [(p, buffer[150:250], 0), (q, torch.zeros(100), 1)])
    with pytest.raises(ValueError, match="gradient for parameter 1 shares memory with parameter 1"):
        _check_apart(states, [(q, buffer[101:201], 1)])  # its parameter, shifted
    codes = states[q]["acc_delta"]
    grad = codes.view(torch.uint8)[:0]  # empty: no memory
    _check_apart(states, [(q, grad, 1)])
    message = "gradient for parameter 0 shares memory with state 'acc_delta' of parameter 1"
    alias = codes.view(torch.uint8)[:8].view(torch.float32)
    with pytest.raises(ValueError, match=message):
        _check_apart(states, [(p, alias, 0), (q, torch.zeros(100), 1)])
    states[q]["square_avg"] = states[p]["square_avg"]
    with pytest.raises(ValueError, match="shares memory with state 'square_avg' of parameter 0"):
        _check_apart(states, members)
    strided = torch.zeros(100, 3)[:, 0]  # a strided gradient: its span is checked
    assert strided.stride() == (3,)
    _check_apart({p: _empty_compact(p, "float8", 0, 0)}, [(p, strided, 0)])
