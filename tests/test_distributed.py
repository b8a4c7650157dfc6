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
