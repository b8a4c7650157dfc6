"""The drop-in's state under careless and hostile use: compact state replaced behind its back
(checked as the NumPy optimizer checks its own, nothing stepped), compact state dicts offered
to float32 state, and state dicts interchangeable with ``torch.optim.Adadelta``'s for every
PyTorch option, in both directions (``docs/guarantees-state.md``)."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from adadelta.torch import Adadelta  # noqa: E402

FORMATS = ("bfloat16", "float8")


def _params() -> list[Any]:
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=gen).requires_grad_() for s in [(600,), (40, 10), ()]]


def _stepped(state_dtype: str) -> tuple[Adadelta, list[Any]]:
    params = _params()
    opt = Adadelta(params, state_dtype=state_dtype, min_compact_size=0)  # every tensor compact
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    return opt, params


def _snapshot(opt: Adadelta, params: list[Any]) -> list[Any]:
    state = [
        {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in opt.state[p].items()}
        for p in params
    ]
    return [p.detach().clone() for p in params] + state


def _assert_unchanged(before: list[Any], after: list[Any]) -> None:
    for a, b in zip(before, after, strict=True):
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for k in a:
                if isinstance(a[k], torch.Tensor):
                    assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k
                else:
                    assert a[k] == b[k], k
        else:
            assert torch.equal(a, b)


def _replacements(state_dtype: str, p: Any, opt: Adadelta) -> list[tuple[str, Any, str]]:
    codes = torch.uint16 if state_dtype == "bfloat16" else torch.uint8
    cases = [
        ("square_avg", torch.zeros(10, dtype=codes), r"'square_avg' must be"),
        ("square_avg", torch.zeros_like(p), r"'square_avg' must be"),  # a reset
        ("acc_delta", torch.zeros(600, dtype=torch.int16), r"'acc_delta' must be"),
        (
            "acc_delta",
            opt.state[p]["square_avg"],
            r"shares memory with state 'square_avg' of parameter 0",
        ),
        ("seed", -1, r"'seed' must be"),
        ("step", torch.tensor(2.5), r"'step' must be"),
        ("step", 3, r"'step' must be"),
        ("step", torch.tensor([3]), r"'step' must be"),
    ]
    if state_dtype == "float8":
        cases.append(("square_avg_scale", torch.zeros(1), r"'square_avg_scale' must be"))
    return cases


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_replaced_compact_state_is_refused_and_nothing_is_stepped(state_dtype: str) -> None:
    # was: a uint16 square_avg of another length segfaulted, a shorter scale tensor aborted, a
    # float32 square_avg (torch.zeros_like(p)) was read as codes
    opt, params = _stepped(state_dtype)
    p = params[0]
    for key, value, message in _replacements(state_dtype, p, opt):
        saved = opt.state[p][key]
        opt.state[p][key] = value
        before = _snapshot(opt, params)
        with pytest.raises(ValueError, match=message):
            opt.step()
        _assert_unchanged(before, _snapshot(opt, params))
        opt.state[p][key] = saved
    del opt.state[params[1]]["acc_delta"]
    with pytest.raises(ValueError, match=r"state of parameter 1: .*'acc_delta'"):
        opt.step()
    opt.state[params[1]].clear()  # a state reset: made again by the step
    opt.step()


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_a_gradient_sharing_memory_with_a_parameter_is_refused(state_dtype: str) -> None:
    opt, params = _stepped(state_dtype)
    params[2].grad = params[0].detach()[:1].reshape(())  # another parameter's memory
    before = _snapshot(opt, params)
    with pytest.raises(ValueError, match=r"gradient for parameter 2 shares memory with parame"):
        opt.step()
    _assert_unchanged(before, _snapshot(opt, params))


@pytest.mark.parametrize("state_dtype", FORMATS)
def test_a_compact_state_dict_without_its_seed_is_refused_by_float32_state(
    state_dtype: str,
) -> None:
    # was: loaded, and its codes read as float values (16065.0)
    opt, _ = _stepped(state_dtype)
    saved = opt.state_dict()
    for state in saved["state"].values():
        del state["seed"]
    for group in saved["param_groups"]:  # groups of float32 state
        del group["state_dtype"], group["min_compact_size"]
    plain = Adadelta(_params())
    with pytest.raises(ValueError, match=r"state of parameter 0 is compact"):
        plain.load_state_dict(saved)
    assert len(plain.state) == 0


# --- state dicts interchangeable with torch.optim.Adadelta's, for every option ---

OPTIONS = [
    dict(zip(("foreach", "maximize", "weight_decay", "lr", "differentiable"), v, strict=True))
    for v in itertools.product(
        [None, True, False], [False, True], [0.0, 0.1], [1.0, "tensor"], [False, True]
    )
    if not (v[0] and v[4])  # PyTorch: "_foreach ops don't support autograd"
]


def _leaves(n: int = 3) -> list[Any]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(s, generator=gen) for s in [(5, 4), (4,), ()]][:n]


def _run(make: Callable[[list[Any]], Any], params: list[Any], steps: int) -> Any:
    opt = make(params)
    for t in range(steps):
        for k, p in enumerate(params):
            p.grad = (p.detach() + 0.1 * (t + k)) * 10.0 ** (k - 1)
        opt.step()
    return opt


def _assert_same_state_dict(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """The same keys everywhere; the same hyperparameters and step counts exactly, the same
    state tensors (dtype, shape, and values to rounding: the fused kernel takes one root where
    PyTorch takes two)."""
    assert len(ours["param_groups"]) == len(theirs["param_groups"])
    for a, b in zip(ours["param_groups"], theirs["param_groups"], strict=True):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(b[k], torch.Tensor):
                assert torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype, k
            else:
                assert a[k] == b[k] and type(a[k]) is type(b[k]), k
    assert ours["state"].keys() == theirs["state"].keys()
    for i, state in ours["state"].items():
        other = theirs["state"][i]
        assert state.keys() == other.keys()
        for k in state:
            assert state[k].dtype == other[k].dtype and state[k].shape == other[k].shape
            if k == "step":
                assert torch.equal(state[k], other[k])
            else:
                torch.testing.assert_close(state[k], other[k], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "options", OPTIONS, ids=["-".join(f"{k}={v}" for k, v in o.items()) for o in OPTIONS]
)
def test_state_dicts_equal_torchs_for_every_option_in_both_directions(
    options: dict[str, Any],
) -> None:
    # was: the drop-in's groups carried a "fused" key that torch.optim.Adadelta lacks
    kwargs = {**options, "lr": torch.tensor(0.5) if options["lr"] == "tensor" else options["lr"]}

    def ours(params: list[Any]) -> Any:
        return Adadelta(params, **kwargs)

    def theirs(params: list[Any]) -> Any:
        return torch.optim.Adadelta(params, **kwargs)

    a, b = _run(ours, _leaves(), 3), _run(theirs, _leaves(), 3)
    _assert_same_state_dict(a.state_dict(), b.state_dict())
    # across: each loads the other's state dict, and gives it back unchanged
    theirs_loaded = torch.optim.Adadelta(_leaves(), **kwargs)
    theirs_loaded.load_state_dict(a.state_dict())
    _assert_same_state_dict(theirs_loaded.state_dict(), a.state_dict())
    ours_loaded = Adadelta(_leaves(), **kwargs)
    ours_loaded.load_state_dict(b.state_dict())
    _assert_same_state_dict(ours_loaded.state_dict(), b.state_dict())
    assert "fused" not in Adadelta(_leaves(), **kwargs).param_groups[0]
    assert Adadelta(_leaves(), fused=False).param_groups[0]["fused"] is False


# --- fuzzing the drop-in's refusals ---


@settings(max_examples=30, deadline=None, database=None)
@given(data=st.data())
def test_fuzz_refused_compact_steps_change_nothing(data: Any) -> None:
    state_dtype = data.draw(st.sampled_from(FORMATS))
    opt, params = _stepped(state_dtype)
    i = data.draw(st.integers(0, len(params) - 1))
    p, state = params[i], opt.state[params[i]]
    other = opt.state[params[(i + 1) % len(params)]]
    names = [k for k, v in state.items() if isinstance(v, torch.Tensor) and k != "step"]
    key = data.draw(st.sampled_from(names))
    value = state[key]
    mutations = {
        "long": torch.zeros(value.numel() + 3, dtype=value.dtype),
        "short": value.flatten()[:-1].clone() if value.numel() else None,
        "other-float": value.float() if value.dtype != torch.float32 else value.double(),
        "int64": value.long(),
        "bfloat16-tensor": value.to(torch.bfloat16),
        "alias": other[key] if other[key].shape == value.shape else None,
        "transposed-shape": value.reshape(-1, 1).clone() if value.dim() else None,
    }
    name = data.draw(st.sampled_from(sorted(k for k, v in mutations.items() if v is not None)))
    if name == "alias" and value.numel() == 0:
        return
    state[key] = mutations[name]
    before = _snapshot(opt, params)
    with pytest.raises(ValueError) as refused:
        opt.step()
    _assert_unchanged(before, _snapshot(opt, params))
    assert key in str(refused.value) or "shares memory" in str(refused.value), refused.value
    assert p.grad is not None


def test_convert_state_checks_the_state_it_converts() -> None:
    # was: a float8 state dict with a scale tensor too long converted to float32 silently
    from adadelta.torch import convert_state

    opt, _ = _stepped("float8")
    broken = copy.deepcopy(opt.state_dict())  # PyTorch's holds the live state records
    broken["state"][0]["square_avg_scale"] = torch.zeros(4)  # 600 elements: 3 blocks
    with pytest.raises(ValueError, match=r"state of parameter 0: 'E_g2_scale' must be"):
        convert_state(broken, None)
    back = convert_state(convert_state(opt.state_dict(), None), "float8")
    Adadelta(_params(), state_dtype="float8", min_compact_size=0).load_state_dict(back)
