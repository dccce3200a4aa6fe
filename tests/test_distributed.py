"""Data-parallel alignment is exact: on CPU with gloo and 2–3 processes, the loss and the DDP-averaged
parameter gradients of the global and the local loss equal one process on the concatenated batch, and the
two classic wrong gathers (no gradient through other ranks' embeddings; a backward that does not sum over
ranks) fail that comparison."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import medcam_lab.losses.global_alignment as global_module
import medcam_lab.losses.local_alignment as local_module
from medcam_lab.losses import MedCAMLoss
from medcam_lab.losses.distributed import gather_with_grad
from medcam_lab.models import EHREncoder, MedCAMAligner
from medcam_lab.training.align import AlignmentModule

PER_RANK, T, F_IN, SIDE = 4, 7, 5, 8
LAMBDAS = {"global": (1.0, 0.0), "local": (0.0, 1.0), "both": (1.0, 0.5)}
GATHERS = ("with_grad", "without_grad", "unsummed_backward")


class TinyImageEncoder(nn.Module):
    """A BatchNorm-free image encoder (per-rank BatchNorm statistics would differ from the global batch)."""

    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIDE * SIDE, 8), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_module(lambdas: tuple[float, float]) -> AlignmentModule:
    torch.manual_seed(0)
    model = MedCAMAligner(TinyImageEncoder(), EHREncoder(F_IN, 8, 2, 0.0), proj_dim=6, image_proj_hidden=8)
    loss = MedCAMLoss(k=3, temperature=0.2, learnable_temperature=True, lambda_global=lambdas[0],
                      lambda_local=lambdas[1])
    return AlignmentModule(model, loss)


def global_batch(world: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    n = PER_RANK * world
    images = torch.randn(n, 3, SIDE, SIDE, generator=g)
    ehr = torch.randn(n, T, F_IN, generator=g)
    lengths = torch.randint(1, T + 1, (n,), generator=g)
    lengths[1] = 0  # a patient without EHR steps: no local term of its own, still a 6b negative
    lengths[2] = 2  # fewer valid steps than k: ranks select different numbers of pairs
    ehr[torch.arange(T)[None, :] >= lengths[:, None]] = 0.0
    return images, ehr, lengths


def loss_and_grads(module: nn.Module, params: nn.Module, images, ehr, lengths) -> tuple[dict, dict]:
    result = module(images, ehr, lengths)
    result["loss"].backward()
    values = {k: result[k].detach() for k in ("loss", "global", "local") if result[k] is not None}
    return values, {n: p.grad.detach().clone() for n, p in params.named_parameters() if p.grad is not None}


class _GatherNoGrad(torch.autograd.Function):
    """Wrong on purpose: other ranks' rows are constants (open_clip without --gather-with-grad)."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


class _GatherUnsummed(_GatherNoGrad):
    """Wrong on purpose: the local slice of this rank's gradient only, never summed over ranks."""


def _gather_without_grad(x):
    out = _GatherNoGrad.apply(x.detach())  # no graph to x through the gather ...
    rank, n = dist.get_rank(), x.shape[0]
    return torch.cat([out[: rank * n], x, out[(rank + 1) * n :]])  # ... except the local slot, re-inserted


WRONG_GATHERS = {"without_grad": _gather_without_grad, "unsummed_backward": _GatherUnsummed.apply}


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        images, ehr, lengths = global_batch(world)
        rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        results = {}
        for gather_name in GATHERS:
            gather = WRONG_GATHERS.get(gather_name, gather_with_grad)
            global_module.gather_with_grad = local_module.gather_with_grad = gather
            for name, lambdas in LAMBDAS.items():
                module = make_module(lambdas)
                module.loss.distributed = True
                ddp = DistributedDataParallel(module)
                values, grads = loss_and_grads(ddp, module, images[rows], ehr[rows], lengths[rows])
                for v in values.values():
                    dist.all_reduce(v)
                results[gather_name, name] = ({k: v / world for k, v in values.items()}, grads)
        # A transposed (non-contiguous) consumer of the gathered tensor: d/dx of Σ (yᵀ ⊙ w_r) summed over ranks.
        base = torch.randn(6, PER_RANK * world, generator=torch.Generator().manual_seed(2))
        x = torch.randn(PER_RANK, 6, generator=torch.Generator().manual_seed(10 + rank), requires_grad=True)
        y = gather_with_grad(x)
        (y.t() * base * (rank + 1)).sum().backward()
        expected = base.t()[rows] * sum(r + 1 for r in range(world))
        results["transposed_consumer_ok"] = bool(torch.allclose(x.grad, expected, atol=1e-6))
        results["gathered_rows_ok"] = bool(torch.equal(y[rows], x.detach()))
        if rank == 0:
            torch.save(results, Path(out_dir) / "rank0.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _close(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)


@pytest.mark.parametrize("world", [3])  # rank 0, a middle rank and the last rank
def test_data_parallel_losses_and_gradients_equal_one_process_on_the_concatenated_batch(world, tmp_path):
    mp.start_processes(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, join=True,
                       start_method="spawn")
    results = torch.load(tmp_path / "rank0.pt", weights_only=False)
    assert results["transposed_consumer_ok"] and results["gathered_rows_ok"]
    images, ehr, lengths = global_batch(world)
    for name, lambdas in LAMBDAS.items():
        module = make_module(lambdas)
        ref_values, ref_grads = loss_and_grads(module, module, images, ehr, lengths)
        values, grads = results["with_grad", name]
        assert _close(values, ref_values), (name, values, ref_values)
        assert len(ref_grads) == sum(1 for _ in module.parameters())  # every parameter got a gradient
        assert _close(grads, ref_grads), name
        for wrong in ("without_grad", "unsummed_backward"):
            wrong_values, wrong_grads = results[wrong, name]
            assert _close(wrong_values, ref_values)  # the forward is right either way ...
            assert not _close(wrong_grads, ref_grads), (wrong, name)  # ... only the gradient shows the bug


def test_single_process_path_is_the_plain_formula():
    """Without a process group ``distributed=True`` changes nothing (world size 1)."""
    images, ehr, lengths = global_batch(2)
    plain, dist_on = make_module(LAMBDAS["both"]), make_module(LAMBDAS["both"])
    dist_on.loss.distributed = True
    v1, g1 = loss_and_grads(plain, plain, images, ehr, lengths)
    v2, g2 = loss_and_grads(dist_on, dist_on, images, ehr, lengths)
    assert all(torch.equal(v1[k], v2[k]) for k in v1) and all(torch.equal(g1[k], g2[k]) for k in g1)


def test_torchrun_alignment_equals_one_process_on_the_global_batch(tiny_cohort, tmp_path):
    """``torchrun --nproc_per_node 2 -m medcam_lab.cli align`` with 4 pairs per rank, started as a notebook
    starts it (:func:`launch_align`), trains the same model as one process with batches of 8 (frozen backbone:
    no per-rank BatchNorm statistics; no dropout)."""
    from medcam_lab.config import AlignConfig
    from medcam_lab.training.align import align, launch_align

    common = dict(cohort=str(tiny_cohort), encoder="resnet_small", image_size=32, proj_dim=16, ehr_hidden=16,
                  ehr_dropout=0.0, k=3, epochs=2, lr=1e-3, seed=3, backbone_mode="frozen", device="cpu")
    align(AlignConfig(out=str(tmp_path / "one"), batch_size=8, **common))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two_cfg = AlignConfig(out=str(tmp_path / "two"), batch_size=4, **common)
    try:
        backbone = launch_align(two_cfg, 2, capture_output=True, text=True, env=env, timeout=300)
    except subprocess.CalledProcessError as failed:
        pytest.fail(f"torchrun failed: {failed.stderr[-3000:]}")
    assert backbone == tmp_path / "two" / "adapted_backbone.pt" and backbone.is_file()
    one = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    two = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)
    assert one["model"].keys() == two["model"].keys()
    for key in one["model"]:
        assert torch.allclose(one["model"][key], two["model"][key], rtol=1e-4, atol=1e-5), key
    for a, b in zip(one["history"], two["history"], strict=True):
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5) for k in a)
    assert json.loads((tmp_path / "two" / "selected.json").read_text())["world_size"] == 2
    assert not list((tmp_path / "two").glob("*.tmp"))
