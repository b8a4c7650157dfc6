"""adadelta.torch.Adadelta under sharded training, in real process groups (gloo, CPU):
FSDP2's ``fully_shard`` with every state format against ``torch.optim.Adadelta`` under the same
sharding; distributed checkpoints saved on 2 ranks and loaded on 1, 3 and 4; ZeRO with
``overlap_with_ddp=True``; DDP with compact state; ``CPUOffloadPolicy``.

Two spawns in all (one of 2 processes, one of 4), each bounded by a timeout; the checks run in
the workers (a failed assertion fails the spawn with its traceback) and every worker writes
what it checked, which the test then reads. The optimizer-level comparisons use synthetic
gradients (the same full tensor on every rank, each rank taking its shard) so that the sharded
and the unsharded runs see the same numbers; the training comparisons use real backward passes
of two identically sharded models.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

import torch
import torch.distributed as dist

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="needs torch.distributed with the gloo backend",
)

FORMATS: list[str | None] = [None, "bfloat16", "float8"]
SHAPES = [(5, 6), (5,), (1, 5), (1,), (600,)]  # uneven, empty shards; float8 over 2 blocks
HYPER: dict[str, Any] = {"lr": 0.5, "rho": 0.8, "eps": 1e-6, "weight_decay": 0.01}
SAVED_STEPS, MORE_STEPS = 3, 2
TIMEOUT = 240  # seconds for one spawn, imports and first compilations included


def _init(rank: int, world: int, port: int) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)


def _name(fmt: str | None) -> str:
    return fmt or "float32"


def _local_of(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return t._local_tensor if isinstance(t, DTensor) else t


def _full(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def _ulps(a: torch.Tensor, b: torch.Tensor) -> int:
    """The largest distance in units in the last place between float32 tensors a and b."""
    if a.numel() == 0:
        return 0
    ia, ib = a.contiguous().view(torch.int32).long(), b.contiguous().view(torch.int32).long()
    ia = torch.where(ia < 0, -(ia & 0x7FFFFFFF), ia)
    ib = torch.where(ib < 0, -(ib & 0x7FFFFFFF), ib)
    return int((ia - ib).abs().max())


class Params(torch.nn.Module):
    """A bare parameter list of SHAPES (what the optimizer sees), deterministic values."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.p = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.randn(s, generator=gen)) for s in SHAPES]
        )


def full_grads(step: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1000 + step)
    return [torch.randn(s, generator=gen) * (j + 1) for j, s in enumerate(SHAPES)]


def set_grads(params: list[torch.Tensor], step: int) -> None:
    from torch.distributed.tensor import DTensor, distribute_tensor

    for p, g in zip(params, full_grads(step), strict=True):
        if isinstance(p, DTensor):  # this rank's shard of the full gradient, no communication
            p.grad = distribute_tensor(g, p.device_mesh, p.placements, src_data_rank=None)
        else:
            p.grad = g


def set_grads_like(params: list[torch.Tensor]) -> None:
    for p in params:
        p.grad = torch.ones_like(p)


def unsharded(
    fmt: str | None, steps: int, min_compact_size: int = 0
) -> tuple[list[torch.Tensor], Any]:
    from adadelta.torch import Adadelta

    params = list(Params().parameters())
    opt = Adadelta(
        params, **HYPER, state_dtype=fmt, fused=fmt is None, min_compact_size=min_compact_size
    )
    for step in range(steps):
        set_grads(params, step)
        opt.step()
    return [p.detach() for p in params], opt


def _sharded_params(mesh: Any) -> tuple[Params, list[torch.Tensor]]:
    from torch.distributed.fsdp import fully_shard

    module = Params()
    fully_shard(module, mesh=mesh)
    return module, list(module.parameters())


def _compact_kwargs(fmt: str | None, min_compact_size: int = 0) -> dict[str, Any]:
    # compact state: the NumPy reference step (fused=False) keeps these workers from compiling
    # the compact kernels; the fused kernel is the same call on the same local views. Every
    # tensor compact (min_compact_size=0) unless told otherwise.
    if fmt is None:
        return {}
    return {"state_dtype": fmt, "fused": False, "min_compact_size": min_compact_size}


# --- the 2-process worker ---


def _fsdp_training(rank: int, report: dict[str, Any]) -> None:
    """A small network under fully_shard (uneven and empty shards, two meshes: FSDP next to
    HSDP), trained by the drop-in and by torch.optim.Adadelta."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from adadelta.torch import Adadelta

    mesh = init_device_mesh("cpu", (2,))
    hsdp = init_device_mesh("cpu", (2, 1), mesh_dim_names=("replicate", "shard"))
    for dtype in (torch.float32, torch.bfloat16):
        results = []
        for kind in ("drop-in", "torch"):
            torch.manual_seed(0)
            model = torch.nn.Sequential(
                torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 1)
            ).to(dtype)
            fully_shard(model[0], mesh=mesh)
            fully_shard(model[2], mesh=hsdp)  # another mesh: replicated on 2, sharded on 1
            opt: torch.optim.Optimizer
            if kind == "drop-in":
                opt = Adadelta(model.parameters(), **HYPER)
            else:  # PyTorch's foreach groups tensors across meshes, which DTensor refuses
                opt = torch.optim.Adadelta(model.parameters(), **HYPER, foreach=False)
            for step in range(4):
                gen = torch.Generator().manual_seed(step)
                x = torch.randn(8, 6, generator=gen).to(dtype)
                opt.zero_grad()
                (model(x).float() ** 2).mean().backward()
                opt.step()
                if step == 1 and kind == "drop-in":
                    (first_plan,) = opt._plans.values()  # type: ignore[attr-defined]
            if kind == "drop-in":  # every parameter went to the fused kernel, one plan kept
                (plan,) = opt._plans.values()  # type: ignore[attr-defined]
                assert plan is first_plan
                assert plan.rest == [] and len(plan.fused) == 4, (plan.rest, plan.fused)
                for p in model.parameters():
                    state = opt.state[p]
                    for name in ("square_avg", "acc_delta"):
                        assert type(state[name]) is type(p), type(state[name])
                        assert state[name].placements == p.placements
            results.append([p._local_tensor.detach().clone() for p in model.parameters()])
        for got, want in zip(*results, strict=True):
            assert got.shape == want.shape
            if dtype == torch.float32:
                ulps = _ulps(got, want)
                assert ulps <= 4, ulps
                report["fsdp_float32_max_ulps"] = max(report.get("fsdp_float32_max_ulps", 0), ulps)
            else:
                torch.testing.assert_close(got, want)
    report["shard_shapes"] = [list(t.shape) for t in results[0]]


def _fsdp_compact(rank: int, report: dict[str, Any]) -> None:
    """Compact state under fully_shard: laid out as the parameters, blocks inside the local
    shard, the shard that starts at 0 drawing the unsharded tensor's bits; with a
    min_compact_size, the smaller tensors' state float32 DTensors, as unsharded."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor

    from adadelta.kernels.compact import BLOCK
    from adadelta.torch import Adadelta

    mesh = init_device_mesh("cpu", (2,))
    for fmt, size in (("bfloat16", 0), ("float8", 0), ("float8", 30)):
        _, params = _sharded_params(mesh)
        opt = Adadelta(params, **HYPER, **_compact_kwargs(fmt, size))
        for step in range(SAVED_STEPS):
            set_grads(params, step)
            opt.step()
        want, reference = unsharded(fmt, SAVED_STEPS, size)
        for p, w, r in zip(params, want, reference.param_groups[0]["params"], strict=True):
            state, local = opt.state[p], p._local_tensor
            assert isinstance(state["square_avg"], DTensor)
            assert state["square_avg"].placements == p.placements
            assert state["square_avg"]._local_tensor.shape == local.shape
            if p.numel() < size:  # float32 state, stepped by PyTorch on the local shard
                assert "seed" not in state and state["square_avg"].dtype == torch.float32
                torch.testing.assert_close(p.full_tensor(), w)
                continue
            if fmt == "float8":
                assert state["square_avg_scale"].shape == (-(-local.numel() // BLOCK),)
            assert int(state["step"]) == SAVED_STEPS
            assert state["seed"] == reference.state[r]["seed"]
            if rank == 0 and fmt == "bfloat16":  # elementwise, same bits: the same values
                assert torch.equal(local, w[: local.shape[0]])
            # other bits (and blocks): the same values to the state's rounding
            torch.testing.assert_close(p.full_tensor(), w, rtol=0.02, atol=1e-3)


def _dcp_save(rank: int, out: Path, report: dict[str, Any]) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )
    from torch.distributed.device_mesh import init_device_mesh

    from adadelta.torch import Adadelta

    mesh = init_device_mesh("cpu", (2,))
    for fmt in FORMATS:
        module, params = _sharded_params(mesh)
        opt = Adadelta(params, **HYPER, **_compact_kwargs(fmt))
        for step in range(SAVED_STEPS):
            set_grads(params, step)
            opt.step()
        state = {
            "model": get_model_state_dict(module),
            "optim": get_optimizer_state_dict(module, opt),
        }
        dcp.save(state, checkpoint_id=out / _name(fmt))
        if fmt is not None:  # the portable form, loaded on the same shards: the same codes
            codes = [{k: v for k, v in opt.state[p].items()} for p in params]
            opt.load_state_dict(opt.state_dict())
            for p, old in zip(params, codes, strict=True):
                for k, v in old.items():
                    new = opt.state[p][k]
                    if isinstance(v, torch.Tensor):
                        assert new is not v and torch.equal(_local_of(new), _local_of(v)), k
        other = {"optim": {"state": {}, "param_groups": []}}  # other shapes: refused on load
        if fmt is None:
            bigger = torch.nn.Module()
            bigger.p = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.ones(s[0] + 2, *s[1:])) for s in SHAPES]
            )  # type: ignore[assignment]
            from torch.distributed.fsdp import fully_shard

            fully_shard(bigger, mesh=mesh)
            big_opt = Adadelta(list(bigger.parameters()), **HYPER)
            set_grads_like(list(bigger.parameters()))
            big_opt.step()
            other = {"optim": get_optimizer_state_dict(bigger, big_opt)}
            dcp.save(other, checkpoint_id=out / "other_shapes")
        if fmt is None:  # the same steps unsharded: bit for bit
            want, _ = unsharded(fmt, SAVED_STEPS)
            for p, w in zip(params, want, strict=True):
                assert torch.equal(p.full_tensor(), w)


def _zero_and_ddp(rank: int, report: dict[str, Any]) -> None:
    """ZeRO and DDP, for every format, against one process. (ZeRO's overlap_with_ddp=True
    refuses gloo, with which its hooks may hang: constructed here, stepped on a GPU.)"""
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.nn.parallel import DistributedDataParallel

    from adadelta.torch import Adadelta
    from adadelta.torch.distributed import FunctionalAdadelta

    model = DistributedDataParallel(torch.nn.Linear(3, 2))
    zero = ZeroRedundancyOptimizer(
        model.parameters(), optimizer_class=Adadelta, overlap_with_ddp=True, lr=0.5
    )
    assert zero._optim_constructor is FunctionalAdadelta

    steps, batch = 6, 8

    def data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(step)
        x = torch.randn(batch, 5, generator=gen)
        return x, torch.sin(x[:, :2])

    def net() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))

    for fmt in FORMATS:
        kwargs = {**HYPER, **_compact_kwargs(fmt)}
        for variant in ("zero", "ddp"):
            model = DistributedDataParallel(net())
            opt: Any
            if variant == "zero":
                opt = ZeroRedundancyOptimizer(
                    model.parameters(), optimizer_class=Adadelta, **kwargs
                )
            else:
                opt = Adadelta(model.parameters(), **kwargs)
            half = batch // 2
            for step in range(steps):
                x, y = data(step)
                mine = slice(rank * half, (rank + 1) * half)
                opt.zero_grad()
                torch.nn.functional.mse_loss(model(x[mine]), y[mine]).backward()
                opt.step()
            single = net()
            ref = Adadelta(single.parameters(), **kwargs)
            for step in range(steps):
                x, y = data(step)
                ref.zero_grad()
                torch.nn.functional.mse_loss(single(x), y).backward()
                ref.step()
            start = list(net().parameters())
            for got, want, s in zip(model.parameters(), single.parameters(), start, strict=True):
                assert not torch.equal(want, s)
                # float32 state: the all-reduce's rounding of the mean gradient only; compact
                # state under ZeRO: each rank's seeds count its own parameters (other bits)
                tol = 1e-5 if fmt is None or variant == "ddp" else 0.05
                torch.testing.assert_close(got, want, rtol=tol, atol=tol)
            report[f"{variant}_{_name(fmt)}"] = "matches one process"


def _cpu_offload(rank: int, report: dict[str, Any]) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, fully_shard

    from adadelta.torch import Adadelta

    mesh = init_device_mesh("cpu", (2,))
    results = []
    for kind in ("drop-in", "torch"):
        module = Params()
        fully_shard(module, mesh=mesh, offload_policy=CPUOffloadPolicy(pin_memory=False))
        params = list(module.parameters())
        opt = (
            Adadelta(params, **HYPER)
            if kind == "drop-in"
            else torch.optim.Adadelta(params, **HYPER, foreach=True)
        )
        for step in range(3):
            set_grads(params, step)
            opt.step()
        results.append([p._local_tensor.clone() for p in params])
    for got, want in zip(*results, strict=True):
        assert _ulps(got, want) <= 4
    report["cpu_offload"] = "matches torch.optim.Adadelta"


def two_ranks(rank: int, port: int, out: str) -> None:
    _init(rank, 2, port)
    report: dict[str, Any] = {}
    try:
        _fsdp_training(rank, report)
        _fsdp_compact(rank, report)
        _dcp_save(rank, Path(out), report)
        _zero_and_ddp(rank, report)
        _cpu_offload(rank, report)
        (Path(out) / f"report2_{rank}.json").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


# --- the 4-process worker: load on 4, 3 and 1 ranks ---


def _load(rank: int, world: int, ranks: list[int], out: Path, report: dict[str, Any]) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )
    from torch.distributed.device_mesh import DeviceMesh

    from adadelta.torch import Adadelta

    group = dist.new_group(ranks) if len(ranks) < world else dist.group.WORLD
    if rank not in ranks:
        return
    mesh = DeviceMesh.from_group(group, "cpu")
    for fmt in FORMATS:
        module, params = _sharded_params(mesh)
        opt = Adadelta(params, **HYPER, **_compact_kwargs(fmt))
        state = {
            "model": get_model_state_dict(module),
            "optim": get_optimizer_state_dict(module, opt),
        }
        dcp.load(state, checkpoint_id=out / _name(fmt), process_group=group)
        set_model_state_dict(module, state["model"])
        set_optimizer_state_dict(module, opt, state["optim"])
        # training continues as it would have
        for step in range(SAVED_STEPS, SAVED_STEPS + MORE_STEPS):
            set_grads(params, step)
            opt.step()
        want_params, _ = unsharded(fmt, SAVED_STEPS + MORE_STEPS)
        for p, w in zip(params, want_params, strict=True):
            if fmt is None:
                assert torch.equal(p.full_tensor(), w)
            else:
                torch.testing.assert_close(p.full_tensor(), w, rtol=0.02, atol=1e-3)
        report[f"{len(ranks)}_{_name(fmt)}"] = "resumed"
        _refusals(module, opt, fmt, group, out, report)
    dist.barrier(group)


def _refusals(module: Any, opt: Any, fmt: str | None, group: Any, out: Path, report: Any) -> None:
    """A checkpoint of other shapes, and corrupted state: clear errors, nothing loaded."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import (
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )

    before = {k: v for k, v in opt.state_dict()["state"].items()}
    snapshot = {
        i: {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in s.items()}
        for i, s in before.items()
    }
    state = {"optim": get_optimizer_state_dict(module, opt)}
    with pytest.raises(CheckpointException, match=r"Size mismatch|Missing key"):
        dcp.load(state, checkpoint_id=out / "other_shapes", process_group=group)
    # corrupted values: refused by every rank's own checks, before anything is installed
    sd = get_optimizer_state_dict(module, opt)
    key = next(iter(sd["state"]))
    local = sd["state"][key]["square_avg"]._local_tensor
    if local.numel():  # (float32 state: the optimizer's own tensor, as PyTorch hands it out)
        kept = local.view(-1)[0].item()
        local.view(-1)[0] = float("nan")
        with pytest.raises(ValueError, match="NaN, infinity or negative"):
            set_optimizer_state_dict(module, opt, sd)
        local.view(-1)[0] = kept
    after = opt.state_dict()["state"]
    for i, s in snapshot.items():
        for k, v in s.items():
            got = after[i][k]
            got = got.full_tensor() if hasattr(got, "full_tensor") else got
            assert torch.equal(torch.as_tensor(got), torch.as_tensor(v)), (i, k)
    report[f"refusals_{_name(fmt)}"] = "nothing loaded"


def four_ranks(rank: int, port: int, out: str) -> None:
    _init(rank, 4, port)
    report: dict[str, Any] = {}
    try:
        for n in (4, 3, 1):
            _load(rank, 4, list(range(n)), Path(out), report)
        (Path(out) / f"report4_{rank}.json").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _spawn(fn: Any, nprocs: int, out: Path) -> None:
    """Run ``fn(rank, port, out)`` in ``nprocs`` processes; kill them all after TIMEOUT."""
    ctx = multiprocessing.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=fn, args=(r, port, str(out))) for r in range(nprocs)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(TIMEOUT)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    codes = [p.exitcode for p in procs]
    assert codes == [0] * nprocs, f"worker exit codes {codes} (see the tracebacks above)"


def test_fsdp2_zero_ddp_offload_and_checkpoints_that_reshard(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))  # the workers import this module
    _spawn(two_ranks, 2, tmp_path)
    report = json.loads((tmp_path / "report2_0.json").read_text())
    assert report["fsdp_float32_max_ulps"] <= 4
    assert report["shard_shapes"] == [[3, 6], [3], [1, 5], [1]]
    for fmt in FORMATS:
        assert report[f"zero_{_name(fmt)}"] == report[f"ddp_{_name(fmt)}"] == "matches one process"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "bfloat16",
        "float32",
        "float8",
        "other_shapes",
    ]
    _spawn(four_ranks, 4, tmp_path)
    reports = [json.loads((tmp_path / f"report4_{r}.json").read_text()) for r in range(4)]
    for n in (4, 3, 1):
        for fmt in FORMATS:
            assert reports[0][f"{n}_{_name(fmt)}"] == "resumed"
    assert "1_float32" not in reports[1] and "3_float32" in reports[2]


def test_refusals_in_a_world_of_one() -> None:
    """What the drop-in refuses of sharded parameters, each a ValueError naming the problem with
    the parameters and state left as they were (one process, a world of size 1)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    from adadelta.torch import Adadelta

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("a",))
        other = init_device_mesh("cpu", (1,), mesh_dim_names=("b",))
        for fmt in FORMATS:
            w = torch.nn.Parameter(distribute_tensor(torch.ones(4, 3), mesh, [Shard(0)]))
            opt = Adadelta([w], **_compact_kwargs(fmt))
            w.grad = distribute_tensor(torch.ones(4, 3), mesh, [Shard(0)])
            opt.step()
            saved = opt.state_dict()
            before = w.detach().full_tensor().clone()
            for grad, message in (
                (torch.ones(4, 3), "is a DTensor but its gradient a plain Tensor"),
                (distribute_tensor(torch.ones(4, 3), other, [Shard(0)]), "different device mesh"),
            ):
                w.grad = grad
                with pytest.raises(ValueError, match=message):
                    opt.step()
                assert torch.equal(w.detach().full_tensor(), before)
            state = opt.state_dict()["state"][0]
            kept = {k: _full(v).clone() for k, v in state.items() if isinstance(v, torch.Tensor)}
            wrong = distribute_tensor(torch.ones(5, 3), mesh, [Shard(0)])
            for bad, message in (
                ({**state, "square_avg": wrong}, r"'square_avg' must be torch.float32 of shape"),
                ({**state, "acc_delta": -state["acc_delta"]}, "NaN, infinity or negative"),
                ({**state, "acc_delta": state["acc_delta"].full_tensor()}, "must be a DTensor"),
            ):
                with pytest.raises(ValueError, match=message):
                    opt.load_state_dict({"state": {0: bad}, "param_groups": saved["param_groups"]})
                now = opt.state_dict()["state"][0]
                assert all(torch.equal(_full(now[k]), v) for k, v in kept.items())
    finally:
        dist.destroy_process_group()


def test_a_gradient_in_a_states_memory_is_refused_in_a_world_of_one() -> None:
    """A sharded parameter's gradient whose local shard is another parameter's state (compact
    codes): ValueError naming both, nothing stepped."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Shard, distribute_tensor

    from adadelta.torch import Adadelta

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        mesh = init_device_mesh("cpu", (1,), mesh_dim_names=("a",))
        for fmt, floats in (("bfloat16", 6), ("float8", 3)):  # 12 codes as float32s
            w = torch.nn.Parameter(distribute_tensor(torch.ones(4, 3), mesh, [Shard(0)]))
            v = torch.nn.Parameter(distribute_tensor(torch.ones(floats), mesh, [Shard(0)]))
            opt = Adadelta([w, v], **_compact_kwargs(fmt))
            w.grad = distribute_tensor(torch.ones(4, 3), mesh, [Shard(0)])
            v.grad = distribute_tensor(torch.ones(floats), mesh, [Shard(0)])
            opt.step()
            codes = opt.state[w]["acc_delta"].to_local()
            alias = codes.reshape(-1).view(torch.uint8).view(torch.float32)
            assert alias.numel() == floats
            v.grad = DTensor.from_local(alias, mesh, [Shard(0)], run_check=False)
            before = [w.detach().full_tensor().clone(), v.detach().full_tensor().clone()]
            with pytest.raises(ValueError, match="gradient for parameter 1 shares memory with "
                               "state 'acc_delta' of parameter 0"):  # fmt: skip
                opt.step()
            assert torch.equal(w.detach().full_tensor(), before[0])
            assert torch.equal(v.detach().full_tensor(), before[1])
            assert int(opt.state[w]["step"]) == 1
    finally:
        dist.destroy_process_group()
