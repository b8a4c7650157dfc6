"""Time one optimizer step under FSDP2 (``fully_shard``) on 2 CPU processes (gloo): the
drop-in against ``torch.optim.Adadelta`` (foreach, and its step under ``torch.compile``) under
the same sharding, for the parameter lists of ResNet-50 and GPT-2 small.

The lists are built from the architectures (shapes only, no weights): ResNet-50 (He et al.,
2016; torchvision's layout: 161 tensors, 25.6M parameters) and GPT-2 small (Radford et al.,
2019; Hugging Face's layout, the output layer tied to the token embedding: 148 tensors, 124.4M
parameters). Each rank shards the list with ``fully_shard`` (dim 0, as FSDP2 shards any
module) and gets random gradients of its shards as DTensors, as FSDP2's reduce-scatter leaves
them; every optimizer steps the same parameters and gradients, one step each per round (so
that drifts in the load hit all alike). A step's time is the slower rank's (each rank's time is
all-reduced with MAX after the rounds); the table shows the median over the rounds and each
one's speed-up over ``torch.optim.Adadelta(foreach=True)``. Each rank runs one thread
(``torch.set_num_threads(1)``, ``NUMBA_NUM_THREADS=1``): two ranks on two cores.

    python benchmarks/fsdp_step.py                     # both lists, 20 rounds
    python benchmarks/fsdp_step.py --lists resnet50 --rounds 5 --no-compile
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import torch.distributed as dist

from adadelta.app.bench_models import Shapes, gpt2_small, resnet50

WORLD = 2
LISTS: dict[str, Callable[[], Shapes]] = {"resnet50": resnet50, "gpt2-small": gpt2_small}


def _optimizers(params: list[Any], compiled: bool) -> dict[str, Callable[[], Any]]:
    from adadelta.torch import Adadelta

    hyper: dict[str, Any] = {"lr": 1e-3, "rho": 0.9, "eps": 1e-6}
    foreach = torch.optim.Adadelta(params, **hyper, foreach=True)
    steps: dict[str, Callable[[], Any]] = {
        "adadelta.torch": Adadelta(params, **hyper).step,
        "torch foreach": foreach.step,
    }
    if compiled:
        peer = torch.optim.Adadelta(params, **hyper, foreach=True)
        steps["torch.compile"] = torch.compile(peer.step)
    steps["adadelta.torch bfloat16 state"] = Adadelta(params, **hyper, state_dtype="bfloat16").step
    steps["adadelta.torch float8 state"] = Adadelta(params, **hyper, state_dtype="float8").step
    return steps


def _rank(rank: int, port: int, names: list[str], rounds: int, compiled: bool, out: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import distribute_tensor

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    lines = []
    try:
        mesh = init_device_mesh("cpu", (WORLD,))
        for name in names:
            shapes = LISTS[name]()
            module = torch.nn.Module()
            module.params = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.randn(s) * 0.02) for s in shapes]
            )
            fully_shard(module, mesh=mesh)
            params: list[Any] = list(module.parameters())
            gen = torch.Generator().manual_seed(rank)
            for p in params:
                local = torch.randn(p.shape, generator=gen) * 1e-3  # full shape, then sharded
                p.grad = distribute_tensor(local, mesh, p.placements, src_data_rank=None)
            steps = _optimizers(params, compiled)
            for step in steps.values():  # first steps: state, plans, compilation
                step()
                step()
            times: dict[str, list[float]] = {k: [] for k in steps}
            for _ in range(rounds):
                for key, step in steps.items():
                    dist.barrier()
                    start = time.perf_counter()
                    step()
                    times[key].append(time.perf_counter() - start)
            for key in times:  # the slower rank's time, step by step
                t = torch.tensor(times[key], dtype=torch.float64)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                times[key] = t.tolist()
            local_n = sum(p._local_tensor.numel() for p in params)
            total = sum(p.numel() for p in params)
            median = {k: statistics.median(v) for k, v in times.items()}
            lines.append(
                f"\n{name}: {len(shapes)} tensors, {total / 1e6:.1f}M parameters, "
                f"{local_n / 1e6:.1f}M on rank {rank}\n"
            )
            lines.append("| optimizer | median step (ms) | speed-up over torch foreach |")
            lines.append("|---|---:|---:|")
            for key, m in median.items():
                lines.append(f"| {key} | {m * 1e3:.1f} | {median['torch foreach'] / m:.2f}x |")
            if "torch.compile" in median:
                ratio = median["torch.compile"] / median["adadelta.torch"]
                lines.append(f"\nadadelta.torch (float32 state) over torch.compile: {ratio:.2f}x")
            del steps, module, params
    finally:
        dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lists", nargs="+", choices=list(LISTS), default=list(LISTS))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out")
    args = parser.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "table.md")
        torch.multiprocessing.spawn(  # type: ignore[attr-defined, no-untyped-call]
            _rank,
            args=(port, args.lists, args.rounds, not args.no_compile, out),
            nprocs=WORLD,
            join=True,
        )
        table = Path(out).read_text()
    load = os.getloadavg()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {WORLD} ranks (gloo), one thread each; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end; {args.rounds} rounds"
    )
    print(table)


if __name__ == "__main__":
    main()
