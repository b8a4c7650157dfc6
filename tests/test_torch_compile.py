"""adadelta.torch.Adadelta over PyTorch's own optimizer inputs (``optim_db`` of
``torch.testing._internal.common_optimizers``, the table that PyTorch's ``test/test_optim.py``
runs), eagerly and under ``torch.compile``: the error inputs raise what PyTorch's class raises,
and every input steps as ``torch.optim.Adadelta`` does, step by step."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("torch")

import torch
from torch.testing._internal.common_optimizers import (
    OptimizerErrorEnum,
    OptimizerInput,
    _get_optim_inputs_including_global_cliquey_kwargs,
    optim_db,
)

from adadelta.torch import Adadelta

INFO = next(info for info in optim_db if info.optim_cls is torch.optim.Adadelta)
DEVICE = "cpu"
# PyTorch's variants of each input (the flags at False, then differentiable=True; on the CPU
# it leaves foreach out, which test_foreach_matches_forloop sets itself): here foreach=True too
INPUTS = _get_optim_inputs_including_global_cliquey_kwargs(DEVICE, torch.float32, INFO)
INPUTS += [
    OptimizerInput(params=None, kwargs={**i.kwargs, "foreach": True}, desc=i.desc)
    for i in INFO.optim_inputs_func(device=DEVICE)
]
STEPS = 3


def input_id(optim_input: Any) -> str:
    return f"{optim_input.desc}-" + "-".join(f"{k}={v}" for k, v in optim_input.kwargs.items())


def make_params(dtype: torch.dtype, differentiable: bool) -> list[torch.Tensor]:
    """A weight, a bias, a scalar and (for real dtypes) a complex tensor."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen, dtype=dtype) for s in [(4, 3), (3,), ()]]
    if not differentiable:
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        params.append(torch.randn(5, generator=gen, dtype=complex_dtype))
    leaves = [p.requires_grad_() for p in params]
    # differentiable=True updates non-leaf tensors (a leaf that requires grad refuses in-place)
    return [p.clone() for p in leaves] if differentiable else leaves


def set_grads(params: list[torch.Tensor], step: int) -> None:
    gen = torch.Generator().manual_seed(100 + step)
    for k, p in enumerate(params):
        scale = 10.0 ** ((3 * step + k) % 5 - 2)
        p.grad = scale * torch.randn(p.shape, generator=gen, dtype=p.dtype) + 0.1 * p.detach()


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    return (
        {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 2e-6, "atol": 1e-7}
    )


def assert_same_steps(
    kwargs: dict[str, Any],
    dtype: torch.dtype,
    wrap: Callable[[Callable[[], Any]], Callable[[], Any]] | None = None,
) -> None:
    """Ours (its step wrapped by ``wrap``) and PyTorch's, eager, from the same parameters and
    gradients: the same parameters and state after every step."""
    differentiable = bool(kwargs.get("differentiable"))
    ours_params = make_params(dtype, differentiable)
    theirs_params = make_params(dtype, differentiable)
    ours = Adadelta(ours_params, **copy.deepcopy(kwargs))
    theirs = torch.optim.Adadelta(theirs_params, **copy.deepcopy(kwargs))
    wrap = wrap or NO_WRAP
    ours_step = wrap(ours.step)
    torch._dynamo.utils.counters.clear()
    for step in range(STEPS):
        set_grads(ours_params, step)
        set_grads(theirs_params, step)
        ours_step()
        theirs.step()
        for a, b in zip(ours_params, theirs_params, strict=True):
            torch.testing.assert_close(a, b, **tolerance(dtype))
        for a, b in zip(ours_params, theirs_params, strict=True):
            for key in ("square_avg", "acc_delta", "step"):
                torch.testing.assert_close(
                    ours.state[a][key], theirs.state[b][key], **tolerance(dtype)
                )
    compiled = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    assert compiled > 0 if wrap is not NO_WRAP else compiled == 0


def NO_WRAP(step: Callable[[], Any]) -> Callable[[], Any]:
    return step


def test_optim_db_has_the_inputs_this_file_expects() -> None:
    # the variants of each input: foreach False/True and differentiable True
    assert len(INPUTS) >= 18
    assert {k for i in INPUTS for k in i.kwargs} >= {"lr", "weight_decay", "maximize", "rho"}
    assert any(i.kwargs.get("foreach") for i in INPUTS)
    assert any(i.kwargs.get("differentiable") for i in INPUTS)


@pytest.mark.parametrize(
    "error_input",
    INFO.optim_error_inputs_func(device=DEVICE, dtype=torch.float32),
    ids=lambda e: e.optimizer_error_input.desc,
)
def test_error_inputs_raise_what_torch_raises(error_input: Any) -> None:
    optim_input = error_input.optimizer_error_input
    for cls in (torch.optim.Adadelta, Adadelta):
        kwargs = copy.deepcopy(optim_input.kwargs)
        expect: Any = (
            pytest.warns(error_input.error_type, match=error_input.error_regex)
            if issubclass(error_input.error_type, Warning)
            else pytest.raises(error_input.error_type, match=error_input.error_regex)
        )
        if error_input.error_on == OptimizerErrorEnum.CONSTRUCTION_ERROR:
            with expect:
                cls(optim_input.params, **kwargs)
        else:
            opt = cls(optim_input.params, **kwargs)
            with expect:
                opt.step()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("optim_input", INPUTS, ids=input_id)
def test_every_input_steps_like_torch(optim_input: Any, dtype: torch.dtype) -> None:
    assert_same_steps(optim_input.kwargs, dtype)


@pytest.mark.parametrize(
    "optim_input",
    [i for i in INPUTS if not i.kwargs.get("differentiable") and not i.kwargs.get("foreach")],
    ids=input_id,
)
def test_every_input_steps_like_torch_under_dynamo(optim_input: Any) -> None:
    """PYTORCH_TEST_WITH_DYNAMO=1's mode: the step traced by TorchDynamo (backend "eager"),
    for each of PyTorch's inputs (the foreach variants trace the same step of ours, which
    hands the flag to PyTorch's code: left to the eager test, for time)."""
    torch._dynamo.reset()
    assert_same_steps(
        optim_input.kwargs, torch.float32, lambda step: torch.compile(step, backend="eager")
    )


@pytest.mark.parametrize(
    "backend", ["eager", "aot_eager", pytest.param("inductor", marks=pytest.mark.slow)]
)
def test_compiled_step_with_every_backend(backend: str) -> None:
    torch._dynamo.reset()
    kwargs = {"lr": 0.5, "weight_decay": 0.1, "maximize": True}
    assert_same_steps(kwargs, torch.float32, lambda step: torch.compile(step, backend=backend))


def test_constructed_inside_a_compiled_function() -> None:
    """PYTORCH_TEST_WITH_DYNAMO=1 compiles each whole test, the optimizer's construction
    included (was: AttributeError: 'Adadelta' object has no attribute 'state_dtype', from
    add_param_group, in 34 of PyTorch's Adadelta tests)."""
    torch._dynamo.reset()

    def train(cls: type[torch.optim.Optimizer]) -> torch.Tensor:
        w = torch.nn.Parameter(torch.arange(4.0))
        opt = cls([w], lr=0.5, weight_decay=0.1)
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(2))], "lr": 0.1})
        for _ in range(2):
            w.grad = w.detach() - 1.0
            opt.step()
        return w.detach()

    ours = torch.compile(train, backend="eager")(Adadelta)
    torch.testing.assert_close(ours, train(torch.optim.Adadelta))


@pytest.mark.slow  # inductor compiles C++: about 10 s on 2 cores
def test_compiled_training_step_calls_the_step() -> None:
    """A whole training step (forward, backward, ``opt.step()``) under torch.compile."""
    torch._dynamo.reset()
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh()))
    ours = Adadelta(models[0].parameters(), lr=0.5)
    theirs = torch.optim.Adadelta(models[1].parameters(), lr=0.5)
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))

    def train(model: torch.nn.Module, opt: torch.optim.Optimizer) -> torch.Tensor:
        opt.zero_grad()
        loss = model(x).pow(2).sum()
        loss.backward()
        opt.step()
        return loss.detach()

    compiled = torch.compile(train, backend="inductor")
    for _ in range(3):
        torch.testing.assert_close(compiled(models[0], ours), train(models[1], theirs))
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(a, b)
        assert ours.state[a]["step"].item() == theirs.state[b]["step"].item() == 3


@pytest.mark.parametrize(
    "optim_input", [i for i in INPUTS if not i.kwargs.get("differentiable")], ids=input_id
)
def test_state_dicts_without_the_newer_flags_load(optim_input: Any) -> None:
    """As PyTorch's test_can_load_older_state_dict: a state dict saved before the flags
    existed (maximize, foreach, fused, differentiable, capturable) loads and steps; a deep copy
    keeps every public attribute (test_deepcopy_copies_all_public_attrs)."""
    params = make_params(torch.float32, differentiable=False)
    opt = Adadelta(params, **copy.deepcopy(optim_input.kwargs))
    for step in range(2):
        set_grads(params, step)
        opt.step()
    old = copy.deepcopy(opt.state_dict())
    for group in old["param_groups"]:
        for flag in ("maximize", "foreach", "fused", "differentiable", "capturable"):
            group.pop(flag, None)
    opt.load_state_dict(old)
    # "fused": absent, as in torch.optim.Adadelta's groups (None, the default, is not kept)
    assert "fused" not in opt.param_groups[0] and opt.param_groups[0]["maximize"] is False
    set_grads(params, 2)
    opt.step()
    assert all(opt.state[p]["step"].item() == 3 for p in params)
    public = {k for k in opt.__dict__ if not k.startswith("_")}
    assert {k for k in copy.deepcopy(opt).__dict__ if not k.startswith("_")} == public
