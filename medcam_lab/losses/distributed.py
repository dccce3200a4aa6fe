"""Collectives for contrastive losses that stay exact across data-parallel ranks.

DDP *averages* parameter gradients over the ``W`` ranks. A contrastive loss whose negatives come from other
ranks is exact (same loss and same gradients as one process on the concatenated batch of ``N = W·n``) only if
the other ranks' embeddings are gathered **with** their gradient and each rank's loss is a mean over its own
rows (see ``docs/decisions.md``, "Multi-GPU alignment"). :func:`gather_with_grad` is that gather: its backward
sums the upstream gradient over ranks (an all-reduce of a *contiguous* copy, so transposed or sliced consumers
get the right gradient, unlike ``torch.distributed.nn.functional.all_gather``, pytorch#120386) and returns
this rank's slice.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["world_info", "is_distributed", "gather_with_grad", "all_reduce_sum"]


def is_distributed() -> bool:
    """True when a default process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_info() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward all-reduces (sums) the gradient and keeps this rank's rows."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        world = dist.get_world_size()
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()  # contiguous: a transposed/sliced consumer must not corrupt the sum
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0, differentiably; the identity without a process group.

    Every rank must pass the same shape (equal per-rank batches); the forward checks the gathered size.

    Args:
        x: this rank's rows.

    Returns:
        The rows of all ranks in rank order; rows ``rank·n … rank·n + n − 1`` are ``x`` itself.

    Shape:
        - x: (n, ...).
        - output: (W·n, ...).
    """
    if not is_distributed():
        return x
    out = _GatherWithGrad.apply(x)
    if out.shape[0] != x.shape[0] * dist.get_world_size():  # pragma: no cover - all_gather raises first
        raise RuntimeError("gather_with_grad: ranks passed different batch sizes")
    return out


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of ``x`` over ranks (no gradient; for counts and logging); ``x`` itself without a process group.

    Shape:
        - x: any; output: same shape.
    """
    if not is_distributed():
        return x
    out = x.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out
