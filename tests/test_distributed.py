"""adadelta.torch.Adadelta in data-parallel training: two CPU processes (gloo), each with half of
the batch, end with the parameters of one process trained on the whole batch.

Both distributed set-ups run in one pair of processes: plain ``DistributedDataParallel``, and
``ZeroRedundancyOptimizer`` (each rank steps its shard of the parameters with our Adadelta).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

import torch
import torch.distributed as dist

from adadelta.torch import Adadelta

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="needs torch.distributed with the gloo backend",
)

WORLD_SIZE = 2
STEPS = 15
BATCH = 16
HYPER: dict[str, Any] = {"lr": 0.5, "rho": 0.8, "eps": 1e-6, "weight_decay": 0.01}


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
    ).double()


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(step)
    x = torch.randn(BATCH, 5, generator=gen, dtype=torch.float64)
    return x, torch.sin(x[:, :2]) * 3


def train_single_process() -> list[torch.Tensor]:
    model = make_model()
    opt = Adadelta(model.parameters(), **HYPER)
    for step in range(STEPS):
        x, y = batch(step)
        opt.zero_grad()
        torch.autograd.backward(torch.nn.functional.mse_loss(model(x), y))
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


def train_distributed(rank: int, port: int, out_dir: str) -> None:
    """One rank: the DDP run, then the ZeRO run; rank 0 saves both results."""
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        results = {}
        for variant in ("ddp", "zero"):
            model = DistributedDataParallel(make_model())
            opt: torch.optim.Optimizer
            if variant == "ddp":
                opt = Adadelta(model.parameters(), **HYPER)
            else:
                opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=Adadelta, **HYPER)
            half = BATCH // WORLD_SIZE
            for step in range(STEPS):
                x, y = batch(step)
                mine = slice(rank * half, (rank + 1) * half)
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x[mine]), y[mine])
                torch.autograd.backward(loss)  # DDP averages the gradients over the ranks
                opt.step()
            results[variant] = [p.detach().clone() for p in model.parameters()]
        if rank == 0:
            torch.save(results, Path(out_dir) / "params.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_ddp_and_zero_match_single_process_training(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(  # type: ignore[attr-defined, no-untyped-call]
        train_distributed, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True
    )
    results = torch.load(tmp_path / "params.pt", weights_only=True)
    expected = train_single_process()
    start = [p.detach() for p in make_model().parameters()]
    for variant in ("ddp", "zero"):
        assert len(results[variant]) == len(expected)
        for got, want, initial in zip(results[variant], expected, start, strict=True):
            assert not torch.equal(want, initial)  # training moved the parameters
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("state_dtype", [None, "bfloat16", "float8"])
def test_functional_optimizer_for_zero_overlap_steps_bucket_by_bucket_as_one_step(
    state_dtype: str | None,
) -> None:
    """ZeroRedundancyOptimizer(overlap_with_ddp=True) steps the drop-in as a functional
    optimizer, one gradient bucket at a time (None: not this bucket's parameter). (ZeRO's hooks
    refuse gloo, so the overlap itself runs on GPUs with NCCL only; this is its step.)"""
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.distributed.optim.utils import functional_optim_map

    from adadelta.torch.distributed import FunctionalAdadelta

    assert functional_optim_map[Adadelta] is FunctionalAdadelta
    assert ZeroRedundancyOptimizer  # the map above is the one ZeRO looks the class up in
    kwargs = {**HYPER, "state_dtype": state_dtype}
    model = make_model().float()
    params = list(model.parameters())
    functional = FunctionalAdadelta(params, **kwargs)
    reference_model = make_model().float()
    reference = Adadelta(reference_model.parameters(), **kwargs)
    for step in range(4):
        grads = [
            torch.randn(p.shape, generator=torch.Generator().manual_seed(step)) for p in params
        ]
        for bucket in ([0, 1], [2, 3]):  # as DDP's buckets come in
            functional.step([g if i in bucket else None for i, g in enumerate(grads)])
        for p, g in zip(reference_model.parameters(), grads, strict=True):
            p.grad = g
        reference.step()
        assert all(p.grad is None for p in params)  # the gradients were lent, not kept
    for got, want in zip(params, reference_model.parameters(), strict=True):
        assert torch.equal(got, want)
    functional.param_group["lr"] = 0.0  # ZeRO writes its groups' settings into this one
    before = [p.detach().clone() for p in params]
    functional.step([torch.ones_like(p) for p in params])
    assert all(torch.equal(a, b) for a, b in zip(params, before, strict=True))
    with pytest.raises(ValueError, match="2 gradients for 4 parameters"):
        functional.step([None, None])
    with pytest.raises(ValueError, match="empty parameter list"):
        FunctionalAdadelta([], **kwargs)
    empty = FunctionalAdadelta([], _allow_empty_param_list=True, **kwargs)
    empty.step([])
    assert empty.param_groups[0]["params"] == []
