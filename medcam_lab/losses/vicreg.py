"""MedMod's cross-modal VICReg (spec/baselines.md §4): invariance + variance + covariance terms.

``L = λ·MSE(z_ehr, z_img) + μ·Σ_branch mean ReLU(1 − √(Var + ε)) / 2 + ν·Σ_branch Σ_{i≠j} Cov_ij² / D``
with ``Cov = Z_cᵀ Z_c / (B − 1)`` (centred), unbiased ``Var``, λ = μ = 25, ν = 1, ε = 1e-4.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["vicreg_loss"]


def _off_diagonal_square_sum(z: Tensor) -> Tensor:
    b, d = z.shape
    zc = z - z.mean(dim=0)
    cov = zc.T @ zc / (b - 1)
    return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / d


def vicreg_loss(z_img: Tensor, z_ehr: Tensor, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0, eps: float = 1e-4) -> dict[str, Tensor]:
    """VICReg between the two modalities' projections.

    Returns:
        ``{"loss", "invariance", "variance", "covariance"}`` (float32 scalars; ``loss`` is the weighted sum).

    Shape:
        - z_img, z_ehr: (B, D), B ≥ 2.
    """
    if z_img.shape != z_ehr.shape or z_img.dim() != 2 or len(z_img) < 2:
        raise ValueError(f"z_img and z_ehr must both be (B ≥ 2, D), got {tuple(z_img.shape)}, {tuple(z_ehr.shape)}")
    x, y = z_img.float(), z_ehr.float()
    invariance = F.mse_loss(y, x)
    hinge_x, hinge_y = (torch.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean() / 2 for z in (x, y))
    variance = hinge_x + hinge_y
    covariance = _off_diagonal_square_sum(x) + _off_diagonal_square_sum(y)
    loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
    return {"loss": loss, "invariance": invariance, "variance": variance, "covariance": covariance}
