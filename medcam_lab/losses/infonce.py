"""MedMod's cross-modal InfoNCE (its "simclr" objective, the ConVIRT/CLIP-like baseline; spec/baselines.md §4).

Cosine similarities divided by τ; both directions (image→EHR rows, EHR→image columns) **summed**; the
positive pair is **excluded** from each log-sum-exp denominator (the diagonal is masked), as MedMod's code
does. With ``exclude_positive=False`` it is the usual CLIP/ConVIRT form (positive in the denominator).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["cross_modal_infonce"]


def cross_modal_infonce(z_img: Tensor, z_ehr: Tensor, temperature: float | Tensor = 0.1,
                        exclude_positive: bool = True) -> Tensor:
    """``mean_i [−s_ii + lse_{j(≠i)} s_ij] + mean_j [−s_jj + lse_{i(≠j)} s_ij]`` with ``s = cos/τ``.

    Args:
        z_img: image embeddings (pair i is ``(z_img[i], z_ehr[i])``).
        z_ehr: EHR embeddings.
        temperature: τ (a float or a scalar tensor, e.g. ALIGN's learnable one).
        exclude_positive: mask the positive out of the denominators (MedMod).

    Returns:
        scalar loss (float32).

    Shape:
        - z_img, z_ehr: (B, D), B ≥ 2.
        - output: ().
    """
    if z_img.shape != z_ehr.shape or z_img.dim() != 2:
        raise ValueError(f"z_img and z_ehr must both be (B, D), got {tuple(z_img.shape)} and {tuple(z_ehr.shape)}")
    if len(z_img) < 2:
        raise ValueError("InfoNCE needs at least 2 pairs in the batch")
    logits = F.normalize(z_img.float(), dim=-1) @ F.normalize(z_ehr.float(), dim=-1).T / temperature
    positive = logits.diagonal()
    if exclude_positive:
        eye = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(eye, float("-inf"))
    rows = torch.logsumexp(logits, dim=1) - positive
    cols = torch.logsumexp(logits, dim=0) - positive
    return rows.mean() + cols.mean()
