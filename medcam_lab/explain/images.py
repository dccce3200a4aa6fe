"""Image attributions with Captum: Integrated Gradients and Grad-CAM on the backbone's last block.

Both run in chunks of ``batch_size`` images (Integrated Gradients also caps its interpolation batch with
``internal_batch_size``: ``n_steps`` multiplies the batch), and Captum removes the hooks it registers even
when the forward raises (tested in ``tests/test_explain_hooks.py``). The model must be in eval mode: the
attribution of a BatchNorm network in train mode depends on the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from torch import Tensor, nn

from medcam_lab.models import MedCAMAligner

__all__ = ["image_ehr_similarity", "integrated_gradients", "grad_cam"]


def image_ehr_similarity(aligner: MedCAMAligner) -> Callable[[Tensor, Tensor], Tensor]:
    """A forward function ``(images, z_ehr) → cos(g_cxr(f_cxr(images)), z_ehr)`` for attributions.

    ``z_ehr`` (the patient's EHR embedding, fixed) goes through ``additional_forward_args`` so Captum
    expands it with the images.

    Shape:
        - images: (B, 3, H, W).
        - z_ehr: (B, d).
        - output: (B,).
    """

    def forward(images: Tensor, z_ehr: Tensor) -> Tensor:
        z_cxr = F.normalize(aligner.image_proj(aligner.image_encoder(images)), dim=-1)
        return (z_cxr * F.normalize(z_ehr, dim=-1)).sum(-1)

    return forward


def _chunk_args(args: tuple[Any, ...] | None, start: int, stop: int, batch: int) -> tuple[Any, ...] | None:
    """Slice the tensors of ``args`` that carry the batch axis; pass everything else through."""
    if args is None:
        return None
    return tuple(a[start:stop] if torch.is_tensor(a) and a.dim() > 0 and a.shape[0] == batch else a for a in args)


def _chunk_target(target: Any, start: int, stop: int, batch: int) -> Any:
    if torch.is_tensor(target) and target.dim() > 0 and target.shape[0] == batch:
        return target[start:stop]
    if isinstance(target, list) and len(target) == batch:
        return target[start:stop]
    return target


def integrated_gradients(
    forward_func: Callable[..., Tensor],
    inputs: Tensor,
    baselines: Tensor | None = None,
    additional_forward_args: tuple[Any, ...] | None = None,
    target: int | list[int] | Tensor | None = None,
    n_steps: int = 32,
    batch_size: int = 8,
    internal_batch_size: int | None = 64,
) -> tuple[Tensor, Tensor]:
    """Integrated Gradients of ``forward_func`` at ``inputs`` (Gauss–Legendre, Captum's default).

    Completeness: ``attributions[b].sum() ≈ f(inputs[b]) − f(baselines[b])``; ``delta`` is the gap.

    Args:
        forward_func: maps ``(inputs, *additional_forward_args)`` to (B,) scores or (B, C) with ``target``.
        inputs: the images (or any tensor batch).
        baselines: reference inputs; ``None`` = zeros (the dataset mean after normalization).
        additional_forward_args: extra forward arguments; tensors with the batch axis are chunked with it.
        target: output column(s) when the forward returns (B, C).
        n_steps: interpolation steps.
        batch_size: inputs attributed per call (bounds memory together with ``internal_batch_size``).
        internal_batch_size: forward batch inside one call (``None`` = all ``n_steps × batch`` at once).

    Returns:
        ``(attributions, delta)``.

    Shape:
        - inputs, baselines, attributions: (B, ...).
        - delta: (B,).
    """
    if baselines is None:
        baselines = torch.zeros_like(inputs)
    ig = IntegratedGradients(forward_func)
    n = inputs.shape[0]
    attributions, deltas = [], []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        chunk = inputs[start:stop]
        attr, delta = ig.attribute(
            chunk, baselines=baselines[start:stop], target=_chunk_target(target, start, stop, n),
            additional_forward_args=_chunk_args(additional_forward_args, start, stop, n), n_steps=n_steps,
            internal_batch_size=None if internal_batch_size is None else max(internal_batch_size, len(chunk)),
            return_convergence_delta=True,
        )
        attributions.append(attr.detach())
        deltas.append(delta.detach())
    return torch.cat(attributions), torch.cat(deltas)


def grad_cam(
    forward_func: Callable[..., Tensor],
    layer: nn.Module,
    inputs: Tensor,
    additional_forward_args: tuple[Any, ...] | None = None,
    target: int | list[int] | Tensor | None = None,
    batch_size: int = 32,
    relu: bool = True,
) -> Tensor:
    """Grad-CAM on ``layer`` (the backbone's last block), upsampled bilinearly to the input size.

    Args:
        forward_func: as for :func:`integrated_gradients`.
        layer: the module whose output is weighted by its pooled gradients (``last_block(encoder)``).
        inputs: the images.
        additional_forward_args: extra forward arguments, chunked like the inputs.
        target: output column(s) when the forward returns (B, C).
        batch_size: images per call.
        relu: keep only positive evidence (the usual Grad-CAM map).

    Returns:
        One map per image at the input resolution.

    Shape:
        - inputs: (B, C, H, W).
        - output: (B, H, W).
    """
    cam = LayerGradCam(forward_func, layer)
    n, size = inputs.shape[0], inputs.shape[-2:]
    maps = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        attr = cam.attribute(
            inputs[start:stop], target=_chunk_target(target, start, stop, n),
            additional_forward_args=_chunk_args(additional_forward_args, start, stop, n), relu_attributions=relu,
        )
        maps.append(LayerAttribution.interpolate(attr.detach(), tuple(size), interpolate_mode="bilinear")[:, 0])
    return torch.cat(maps)
