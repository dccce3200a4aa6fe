"""Barlow Twins loss (Zbontar et al., ICML 2021), used for the image-only pretraining stand-in.

BarlowTwins-CXR pretrained its ResNet-50 with this objective on chest X-rays; the demo reproduces that
image-only stage on the generated images, so that MedCAM has an image-pretrained encoder to adapt.
"""

from __future__ import annotations

import torch
from torch import Tensor


def barlow_twins_loss(z_a: Tensor, z_b: Tensor, lambda_offdiag: float = 5e-3, eps: float = 1e-5) -> Tensor:
    """Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij², with C the cross-correlation of the batch-standardized views.

    Each embedding dimension is standardized over the batch (biased std, as the reference implementation's
    BatchNorm without affine), and C = z_aᵀ z_b / B. Computed in at least float32.

    Shape:
        z_a, z_b: (B, D) with B ≥ 2; returns a scalar.
    """
    if z_a.shape != z_b.shape or z_a.dim() != 2 or z_a.shape[0] < 2:
        raise ValueError(f"expected two (B, D) tensors with B >= 2, got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    dtype = torch.promote_types(z_a.dtype, torch.float32)  # at least float32, float64 kept
    a, b = z_a.to(dtype), z_b.to(dtype)
    a = (a - a.mean(0)) / torch.sqrt(a.var(0, unbiased=False) + eps)
    b = (b - b.mean(0)) / torch.sqrt(b.var(0, unbiased=False) + eps)
    c = a.T @ b / a.shape[0]
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on_diag + lambda_offdiag * off_diag
