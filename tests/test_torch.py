"""adadelta.torch.Adadelta against torch.optim.Adadelta: results, state dicts, validation, paths."""

from __future__ import annotations

import copy
import itertools
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

import torch

from adadelta.torch import Adadelta
from adadelta.torch import cpu as torch_cpu

STEPS = 200
# float32: PyTorch's vectorized sqrt is not correctly rounded (1 ulp off for ~0.6% of inputs on
# AVX-512) and its addcmul_ and add_(alpha=) fuse multiply-adds, while the kernel rounds every
# operation as written and takes one square root of the quotient where PyTorch divides two; over
# 200 steps that leaves a few units in the last place.
FLOAT32_ULPS = 8


def make_params(dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 2, 4), ()]
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


def clone_params(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_() for p in params]


def set_grads(params: list[torch.Tensor], step: int) -> None:
    """A gradient that depends on the parameter (so differences would feed back) and whose scale
    varies over eight orders of magnitude between steps and tensors."""
    gen = torch.Generator().manual_seed(1000 + step)
    for k, p in enumerate(params):
        scale = 10.0 ** ((step * 7 + k * 3) % 9 - 4)
        noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        p.grad = scale * (noise + p.detach())


def assert_same(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """float64: relative difference <= 1e-12 everywhere; float32: at most FLOAT32_ULPS units in
    the last place of the tensor's largest entry (an entry near zero has tiny ulps of its own)."""
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    a = torch.view_as_real(ours).detach() if ours.is_complex() else ours.detach()
    b = torch.view_as_real(theirs).detach() if theirs.is_complex() else theirs.detach()
    a_np, b_np = a.numpy().astype(np.float64), b.numpy().astype(np.float64)
    assert np.isfinite(a_np).all() and np.isfinite(b_np).all()
    diff = np.abs(a_np - b_np)
    if a.dtype == torch.float64:
        rel = diff / np.maximum(np.abs(b_np), np.finfo(np.float64).tiny)
        assert rel.max(initial=0.0) <= 1e-12, rel.max()
    else:
        largest = max(np.abs(a_np).max(initial=0.0), np.abs(b_np).max(initial=0.0))
        ulps = diff / np.spacing(np.float32(largest))
        assert ulps.max(initial=0.0) <= FLOAT32_ULPS, ulps.max()


def assert_same_state(ours: torch.optim.Optimizer, theirs: torch.optim.Optimizer) -> None:
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    # the same groups, key for key ("fused" is kept only when it is not the default None)
    assert ours_sd["param_groups"] == theirs_sd["param_groups"]
    assert ours_sd["state"].keys() == theirs_sd["state"].keys()
    for i, state in ours_sd["state"].items():
        assert state.keys() == theirs_sd["state"][i].keys() == {"step", "square_avg", "acc_delta"}
        assert torch.equal(state["step"], theirs_sd["state"][i]["step"])
        assert state["step"].dtype == theirs_sd["state"][i]["step"].dtype
        assert_same(state["square_avg"], theirs_sd["state"][i]["square_avg"])
        assert_same(state["acc_delta"], theirs_sd["state"][i]["acc_delta"])


def train_both(
    params: list[torch.Tensor] | list[dict[str, Any]],
    make: Callable[[Any], tuple[torch.optim.Optimizer, torch.optim.Optimizer]],
    steps: int = STEPS,
    schedulers: Callable[[torch.optim.Optimizer], Any] | None = None,
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    ours, theirs = make(params)
    sched = [schedulers(ours), schedulers(theirs)] if schedulers else []
    ours_params = [p for g in ours.param_groups for p in g["params"]]
    theirs_params = [p for g in theirs.param_groups for p in g["params"]]
    for step in range(steps):
        set_grads(ours_params, step)
        set_grads(theirs_params, step)
        ours.step()
        theirs.step()
        for s in sched:
            s.step()
    for a, b in zip(ours_params, theirs_params, strict=True):
        assert_same(a, b)
    assert_same_state(ours, theirs)
    return ours, theirs


def pair(**kwargs: Any) -> Callable[[list[torch.Tensor]], tuple[Adadelta, torch.optim.Adadelta]]:
    def make(params: list[torch.Tensor]) -> tuple[Adadelta, torch.optim.Adadelta]:
        return Adadelta(params, **kwargs), torch.optim.Adadelta(clone_params(params), **kwargs)

    return make


# --- the same results as torch.optim.Adadelta ---

CONFIGS = [
    dict(zip(("weight_decay", "maximize", "foreach", "lr", "rho", "eps"), values, strict=True))
    for values in itertools.product(
        [0.0, 0.1], [False, True], [True, False], [1.0, 0.25], [0.9, 0.5], [1e-6, 1e-3]
    )
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "config", CONFIGS, ids=["-".join(f"{k}={v}" for k, v in c.items()) for c in CONFIGS]
)
def test_matches_torch_for_every_argument(dtype: torch.dtype, config: dict[str, Any]) -> None:
    train_both(make_params(dtype), pair(**config))


def test_defaults_match_torch() -> None:
    import inspect

    ours = inspect.signature(Adadelta)
    theirs = inspect.signature(torch.optim.Adadelta)
    # PyTorch's arguments, then "fused" (keyword-only, as in PyTorch's fused optimizers) and
    # compact state's "state_dtype", "min_compact_size" and "seed" (tests/test_torch_compact.py)
    keyword_only = inspect.Parameter.KEYWORD_ONLY
    assert [(p.name, p.default, p.kind) for p in ours.parameters.values()] == [
        (p.name, p.default, p.kind) for p in theirs.parameters.values()
    ] + [
        ("fused", None, keyword_only),
        ("state_dtype", None, keyword_only),
        ("min_compact_size", 4096, keyword_only),
        ("seed", 0, keyword_only),
    ]
    params = make_params(torch.float32)
    assert Adadelta(params).defaults == torch.optim.Adadelta(params).defaults


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_param_groups_with_different_hyperparameters(dtype: torch.dtype) -> None:
    def make(params: list[torch.Tensor]) -> tuple[Adadelta, torch.optim.Adadelta]:
        def groups(ps: list[torch.Tensor]) -> list[dict[str, Any]]:
            return [
                {"params": ps[:2], "rho": 0.5, "weight_decay": 0.01},
                {"params": ps[2:3], "lr": 0.1, "eps": 1e-4, "maximize": True},
                {"params": ps[3:], "foreach": False},
            ]

        return Adadelta(groups(params), lr=0.5), torch.optim.Adadelta(
            groups(clone_params(params)), lr=0.5
        )

    train_both(make_params(dtype), make)


@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64])
@pytest.mark.parametrize("foreach", [False, True])
def test_complex_parameters_as_pairs_of_reals(dtype: torch.dtype, foreach: bool) -> None:
    params = make_params(dtype) + make_params(dtype.to_real(), seed=1)[:2]
    train_both(params, pair(weight_decay=0.1, foreach=foreach))


@pytest.mark.parametrize(
    "make_scheduler",
    [
        lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.5),
        lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 / (1 + epoch)),
    ],
    ids=["StepLR", "LambdaLR"],
)
def test_learning_rate_schedulers(make_scheduler: Callable[[Any], Any]) -> None:
    ours, _ = train_both(make_params(torch.float64), pair(), schedulers=make_scheduler)
    assert ours.param_groups[0]["lr"] < 1.0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_tensor_learning_rate(dtype: torch.dtype) -> None:
    def make(params: list[torch.Tensor]) -> tuple[Adadelta, torch.optim.Adadelta]:
        return Adadelta(params, lr=torch.tensor(0.5)), torch.optim.Adadelta(
            clone_params(params), lr=torch.tensor(0.5)
        )

    train_both(make_params(dtype), make, steps=20)


def test_nan_gradients_propagate_as_in_torch() -> None:
    ours, theirs = pair()(make_params(torch.float64))
    for opt in (ours, theirs):
        params = opt.param_groups[0]["params"]
        set_grads(params, 0)
        params[0].grad[0, 0] = float("nan")
        opt.step()  # no error: torch.optim.Adadelta does not check
    a, b = ours.param_groups[0]["params"][0], theirs.param_groups[0]["params"][0]
    assert torch.isnan(a[0, 0]) and torch.isnan(b[0, 0])
    assert torch.equal(a[1:], b[1:])


def test_trains_a_module_like_torch() -> None:
    def model() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
        ).double()

    x = torch.randn(32, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.arange(32) % 3
    nets = [model(), model()]
    opts = [Adadelta(nets[0].parameters()), torch.optim.Adadelta(nets[1].parameters())]
    losses = []
    for net, opt in zip(nets, opts, strict=True):
        for _ in range(50):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x), y)
            torch.autograd.backward(loss)
            opt.step()
        losses.append(loss.item())
    assert losses[0] < 1.0
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert_same(a, b)


def test_closure_returns_the_loss() -> None:
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = Adadelta([w])

    def closure() -> float:
        opt.zero_grad()
        loss = (w * w).sum()
        torch.autograd.backward(loss)
        return loss.item()

    assert opt.step(closure) == 5.0
    assert w.abs().max() < 2.0


# --- state dicts ---


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
def test_state_dicts_interchange_both_ways(dtype: torch.dtype) -> None:
    for first, second in [(Adadelta, torch.optim.Adadelta), (torch.optim.Adadelta, Adadelta)]:
        params = make_params(dtype)
        trained = first(params, rho=0.8, weight_decay=0.01)
        for step in range(30):
            set_grads(params, step)
            trained.step()
        saved = copy.deepcopy(trained.state_dict())  # state_dict() holds the live tensors
        # continue the trained one, and a fresh one of the other class loaded from its state dict
        other_params = clone_params(params)
        other = second(other_params)
        other.load_state_dict(saved)
        assert other.param_groups[0]["rho"] == 0.8
        for step in range(30, 60):
            set_grads(params, step)
            set_grads(other_params, step)
            trained.step()
            other.step()
        for a, b in zip(params, other_params, strict=True):
            assert_same(a, b)
        assert_same_state(trained, other)


def test_replaced_parameter_memory_and_state_are_followed() -> None:
    """The fused path reuses its NumPy views of parameters and state between steps; it must
    follow ``param.data = ...``, replaced state tensors and loaded state dicts."""
    ours, theirs = pair()(make_params(torch.float64))
    opts = (ours, theirs)

    def step_both(first: int, last: int) -> None:
        for step in range(first, last):
            for opt in opts:
                set_grads(opt.param_groups[0]["params"], step)
                opt.step()

    step_both(0, 3)
    for opt in opts:
        p0, p1 = opt.param_groups[0]["params"][:2]
        p0.data = p0.data * 2 + 1  # new memory for the parameter
        opt.state[p1]["square_avg"] = opt.state[p1]["square_avg"].clone()  # a new state tensor
    step_both(3, 6)
    for opt in opts:
        p2, p3 = opt.param_groups[0]["params"][2:4]
        opt.state[p2] = {k: v.clone() for k, v in opt.state[p2].items()}  # a new state dict
        opt.state[p3]["step"] = torch.tensor(100.0)  # a new step count
    step_both(6, 7)
    for opt in opts:
        del opt.state[opt.param_groups[0]["params"][0]]  # its state reset: made anew
    step_both(7, 8)
    ours.load_state_dict(copy.deepcopy(ours.state_dict()))  # new state tensors for everything
    step_both(8, 10)
    for a, b in zip(ours.param_groups[0]["params"], theirs.param_groups[0]["params"], strict=True):
        assert_same(a, b)
    assert_same_state(ours, theirs)


def test_changing_sets_of_parameters_are_followed() -> None:
    """The fused path keeps its batch (table of addresses) between steps; it must follow a
    parameter that has no gradient for a while, a parameter whose dtype changes, and a group
    added in the middle of training."""
    ours, theirs = pair()(make_params(torch.float64))
    opts = (ours, theirs)

    def step_both(first: int, last: int, without: int | None = None) -> None:
        for step in range(first, last):
            for opt in opts:
                params = [p for g in opt.param_groups for p in g["params"]]
                set_grads(params, step)
                if without is not None:
                    params[without].grad = None
                opt.step()

    step_both(0, 3)
    step_both(3, 5, without=1)  # one batch entry fewer
    step_both(5, 6, without=2)  # as many entries, not the same
    step_both(6, 7)
    for opt in opts:
        p2 = opt.param_groups[0]["params"][2]
        p2.data = p2.data.float()  # from the float64 batch to a float32 one
        opt.state[p2]["square_avg"] = opt.state[p2]["square_avg"].float()
        opt.state[p2]["acc_delta"] = opt.state[p2]["acc_delta"].float()
    step_both(7, 9)
    added = make_params(torch.float64, seed=1)
    for opt in opts:
        opt.add_param_group({"params": clone_params(added), "rho": 0.5})
    step_both(9, 12, without=0)
    for a, b in zip(
        (p for g in ours.param_groups for p in g["params"]),
        (p for g in theirs.param_groups for p in g["params"]),
        strict=True,
    ):
        assert_same(a, b)
    assert_same_state(ours, theirs)


def test_state_layout_matches_torch() -> None:
    params = make_params(torch.float32)
    ours, theirs = pair()(params)
    for opt in (ours, theirs):
        set_grads(opt.param_groups[0]["params"], 0)
        opt.step()
    for i, state in ours.state_dict()["state"].items():
        their_state = theirs.state_dict()["state"][i]
        for key in ("step", "square_avg", "acc_delta"):
            assert type(state[key]) is type(their_state[key]) is torch.Tensor
            assert state[key].dtype == their_state[key].dtype
            assert state[key].shape == their_state[key].shape
            assert state[key].device == their_state[key].device
        assert state["step"].item() == 1.0


def test_load_state_dict_with_numeric_step() -> None:
    params = make_params(torch.float64)
    opt = Adadelta(params)
    set_grads(params, 0)
    opt.step()
    saved = opt.state_dict()
    for state in saved["state"].values():
        state["step"] = 1  # as in state dicts of old PyTorch versions
    fresh = Adadelta(clone_params(params))
    fresh.load_state_dict(saved)
    step = fresh.state[fresh.param_groups[0]["params"][0]]["step"]
    assert torch.is_tensor(step) and step.item() == 1.0


def test_state_dict_survives_torch_save_with_weights_only(tmp_path: Any) -> None:
    params = make_params(torch.float32)
    opt = Adadelta(params)
    set_grads(params, 0)
    opt.step()
    torch.save(opt.state_dict(), tmp_path / "opt.pt")
    loaded = torch.load(tmp_path / "opt.pt", weights_only=True)
    theirs = torch.optim.Adadelta(clone_params(params))
    theirs.load_state_dict(loaded)
    assert_same_state(opt, theirs)


# --- validation ---

INVALID = [
    ({"lr": -0.1}, "Invalid learning rate: -0.1"),
    ({"lr": float("nan")}, "Invalid learning rate: nan"),
    ({"rho": 1.5}, "Invalid rho value: 1.5"),
    ({"rho": -0.1}, "Invalid rho value: -0.1"),
    ({"eps": -1e-6}, "Invalid epsilon value: -1e-06"),
    ({"weight_decay": -0.5}, "Invalid weight_decay value: -0.5"),
    ({"lr": torch.tensor([0.1, 0.2])}, "Tensor lr must be 1-element"),
]


@pytest.mark.parametrize(("kwargs", "message"), INVALID)
def test_constructor_refuses_invalid_hyperparameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message.replace('.', '[.]')}$"):
        Adadelta(make_params(torch.float32), **kwargs)
    with pytest.raises(ValueError, match=f"^{message.replace('.', '[.]')}$"):
        torch.optim.Adadelta(make_params(torch.float32), **kwargs)  # the same message


@pytest.mark.parametrize(("kwargs", "message"), INVALID)
def test_add_param_group_refuses_invalid_hyperparameters(
    kwargs: dict[str, Any], message: str
) -> None:
    params = make_params(torch.float32)
    opt = Adadelta(params[:2])
    with pytest.raises(ValueError, match=f"^{message.replace('.', '[.]')}$"):
        opt.add_param_group({"params": params[2:], **kwargs})
    assert len(opt.param_groups) == 1
    opt.add_param_group({"params": params[2:], "rho": 0.5})
    assert opt.param_groups[1]["rho"] == 0.5 and opt.param_groups[1]["lr"] == 1.0


def test_load_state_dict_refuses_invalid_hyperparameters() -> None:
    params = make_params(torch.float32)
    opt = Adadelta(params)
    set_grads(params, 0)
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    saved["param_groups"][0]["rho"] = 1.5
    saved["state"][0]["step"] = torch.tensor(7.0)
    with pytest.raises(ValueError, match=r"^Invalid rho value: 1\.5$"):
        opt.load_state_dict(saved)
    assert opt.param_groups[0]["rho"] == 0.9 and opt.state[params[0]]["step"].item() == 1.0


def test_sparse_gradients_are_refused_like_torch() -> None:
    dense = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    sparse = torch.ones(4, dtype=torch.float64, requires_grad=True)
    opt = Adadelta([{"params": [dense]}, {"params": [sparse]}])
    dense.grad = torch.ones(4, dtype=torch.float64)
    sparse.grad = torch.ones(4, dtype=torch.float64).to_sparse()
    with pytest.raises(RuntimeError, match="Adadelta does not support sparse gradients"):
        opt.step()
    # nothing was changed, not even the first group's parameter
    assert torch.equal(dense, torch.zeros(4, dtype=torch.float64)) and not opt.state


# --- zero_grad and missing gradients ---


def test_parameters_without_gradient_are_skipped() -> None:
    params = make_params(torch.float32)
    before = [p.detach().clone() for p in params]
    opt = Adadelta(params)
    set_grads(params, 0)
    params[1].grad = None
    opt.step()
    assert params[1] not in opt.state and torch.equal(params[1], before[1])
    assert all(
        not torch.equal(p, b) for p, b in zip(params, before, strict=True) if p is not params[1]
    )
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    opt.step()  # no gradients: nothing moves, no step is counted
    assert all(opt.state[p]["step"].item() == 1.0 for p in params if p is not params[1])


def test_zero_grad_without_set_to_none() -> None:
    params = make_params(torch.float32)
    opt = Adadelta(params)
    set_grads(params, 0)
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in params)


# --- which path does the work ---


@pytest.fixture
def fused_calls(monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The parameters that the fused kernel updated."""
    calls: list[torch.Tensor] = []
    original = torch_cpu._Plan.step

    def counting(plan: Any, *args: Any) -> None:
        calls.extend(plan.params[i] for i in plan.fused)
        original(plan, *args)

    monkeypatch.setattr(torch_cpu._Plan, "step", counting)
    return calls


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64, torch.complex128])
def test_fused_kernel_updates_contiguous_cpu_tensors(
    fused_calls: list[torch.Tensor], dtype: torch.dtype
) -> None:
    params = make_params(dtype)
    train_both(params, pair(), steps=3)
    assert len(fused_calls) == 3 * len(params)
    assert {id(p) for p in fused_calls} == {id(p) for p in params}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_parameters_are_fused_and_as_accurate_as_torch(
    fused_calls: list[torch.Tensor], dtype: torch.dtype
) -> None:
    """bfloat16/float16: the kernel computes in float32 and rounds once per stored value,
    PyTorch after each operation; so ours is compared with the same steps in float64, and must
    be no further from them than PyTorch's own 16-bit result (within an ulp of the largest
    value), the state in the parameter's dtype as PyTorch keeps it."""
    params = make_params(dtype)
    ours, theirs = pair(weight_decay=0.1, lr=0.5)(params)
    exact_params = [p.detach().double().requires_grad_() for p in params]
    exact = torch.optim.Adadelta(exact_params, weight_decay=0.1, lr=0.5)
    theirs_params = theirs.param_groups[0]["params"]
    for step in range(5):
        set_grads(params, step)
        for q, e, p in zip(theirs_params, exact_params, params, strict=True):
            q.grad, e.grad = p.grad.clone(), p.grad.double()
        for opt in (ours, theirs, exact):
            opt.step()
    assert len(fused_calls) == 5 * len(params)
    for p, q, e in zip(params, theirs_params, exact_params, strict=True):
        for key in ("square_avg", "acc_delta"):
            assert ours.state[p][key].dtype == theirs.state[q][key].dtype == dtype
        pairs = [(p, q, e)] + [
            (ours.state[p][k], theirs.state[q][k], exact.state[e][k])
            for k in ("square_avg", "acc_delta")
        ]
        for a, b, c in pairs:
            ours_error = (a.detach().double() - c.detach()).abs().max().item()
            theirs_error = (b.detach().double() - c.detach()).abs().max().item()
            ulp = torch.finfo(dtype).eps * c.detach().abs().max().item()
            assert ours_error <= max(theirs_error, ulp), (ours_error, theirs_error)
        assert ours.state[p]["step"].item() == 5


def test_non_contiguous_parameters_fall_back_to_torch(fused_calls: list[torch.Tensor]) -> None:
    gen = torch.Generator().manual_seed(0)
    transposed = torch.randn(4, 6, generator=gen, dtype=torch.float64).t().requires_grad_()
    contiguous = torch.randn(5, generator=gen, dtype=torch.float64).requires_grad_()
    assert not transposed.is_contiguous()
    train_both([transposed, contiguous], pair(), steps=10)
    assert {id(p) for p in fused_calls} == {id(contiguous)}


def test_differentiable_and_capturable_defer_to_torch(fused_calls: list[torch.Tensor]) -> None:
    # capturable: PyTorch supports it on accelerators only, and says so
    params = make_params(torch.float64)
    set_grads(params, 0)
    with pytest.raises(AssertionError, match="If capturable=True"):
        Adadelta(params, capturable=True).step()
    with pytest.raises(AssertionError, match="If capturable=True"):
        torch.optim.Adadelta(params, capturable=True).step()
    assert not fused_calls

    # differentiable: the step itself can be differentiated, as with torch.optim.Adadelta
    results = []
    for cls in (Adadelta, torch.optim.Adadelta):
        w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
        x = w.clone()  # a non-leaf that the optimizer updates in place, inside the graph
        opt = cls([x], differentiable=True)
        x.grad = torch.tensor([0.5, 0.25], dtype=torch.float64)
        opt.step()
        (grad_w,) = torch.autograd.grad(x.sum(), w)
        results.append((x.detach(), grad_w))
    assert not fused_calls
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_without_kernel_everything_goes_through_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_cpu, "_fused_kernel", lambda: None)
    train_both(make_params(torch.float32), pair(), steps=20)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_matches_torch_on_cuda(fused_calls: list[torch.Tensor]) -> None:
    params = [p.detach().cuda().requires_grad_() for p in make_params(torch.float32)]
    ours, theirs = (
        Adadelta(params, weight_decay=0.01),
        torch.optim.Adadelta(clone_params(params), weight_decay=0.01),
    )
    for step in range(50):
        for opt in (ours, theirs):
            on_cuda = opt.param_groups[0]["params"]
            on_cpu = [p.detach().cpu() for p in on_cuda]
            set_grads(on_cpu, step)  # the same numbers for both optimizers
            for p, q in zip(on_cuda, on_cpu, strict=True):
                p.grad = q.grad.cuda()
            opt.step()
    for a, b in zip(ours.param_groups[0]["params"], theirs.param_groups[0]["params"], strict=True):
        assert_same(a.cpu(), b.cpu())
    assert not fused_calls


# --- the optional import ---


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_importing_adadelta_does_not_import_torch() -> None:
    result = run_python("import sys, adadelta; print('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_import_without_torch_asks_for_the_extra() -> None:
    result = run_python(
        "import sys\n"
        "sys.modules['torch'] = None  # as if PyTorch were not installed\n"
        "try:\n"
        "    import adadelta.torch\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install "adadelta[torch]"' in result.stdout


def test_triton_is_imported_only_for_gpu_tensors() -> None:
    """Importing the drop-in loads neither Triton nor its GPU kernel, and a CPU step does not
    load the kernel (PyTorch's own step imports TorchDynamo, which may import Triton)."""
    result = run_python(
        "import sys, torch\n"
        "import adadelta.torch\n"
        "print('triton' in sys.modules, 'adadelta.torch.triton_kernel' in sys.modules)\n"
        "w = torch.ones(3, requires_grad=True)\n"
        "w.grad = torch.ones(3)\n"
        "adadelta.torch.Adadelta([w]).step()\n"
        "print('adadelta.torch.triton_kernel' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "False"]


def test_flags_changed_between_steps_change_the_path(fused_calls: list[torch.Tensor]) -> None:
    params = make_params(torch.float64)
    opt = Adadelta(params)
    set_grads(params, 0)
    opt.step()
    assert len(fused_calls) == len(params)
    opt.param_groups[0]["fused"] = False  # PyTorch's step from now on
    set_grads(params, 1)
    opt.step()
    assert len(fused_calls) == len(params)
    opt.param_groups[0]["capturable"] = True  # as TorchDynamo sets it; refused on the CPU
    with pytest.raises(AssertionError, match="If capturable=True"):
        opt.step()
