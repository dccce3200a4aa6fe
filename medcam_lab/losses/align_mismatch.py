"""MedMod's ALIGN-style baseline (spec/baselines.md §4): InfoNCE with a learnable raw temperature
(init 0.07) on batches in which a fraction of the EHR samples is deliberately swapped between two slices of
the batch, imitating ALIGN's noisy image–text pairs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from medcam_lab.losses.infonce import cross_modal_infonce

__all__ = ["mismatch_permutation", "AlignMismatchLoss"]


def mismatch_permutation(batch_size: int, low: float = 0.16, high: float = 0.20,
                         generator: torch.Generator | None = None) -> Tensor:
    """A permutation of ``range(batch_size)`` that swaps ``m`` EHR rows of one slice with ``m`` rows of
    another: ``m = round(f · B / 2)``, ``f ~ U(low, high)``, so a fraction ≈ f of the pairs is mismatched.
    Apply it as ``ehr[perm]``.

    Shape:
        - output: (B,) long.
    """
    if not 0 <= low <= high < 1:
        raise ValueError(f"need 0 <= low <= high < 1, got {low}, {high}")
    fraction = low + (high - low) * float(torch.rand((), generator=generator))
    m = min(batch_size // 2, int(round(fraction * batch_size / 2)))
    perm = torch.arange(batch_size)
    if m == 0:
        return perm
    rows = torch.randperm(batch_size, generator=generator)
    first, second = rows[:m], rows[m:2 * m]
    perm[first], perm[second] = second.clone(), first.clone()
    return perm


class AlignMismatchLoss(nn.Module):
    """InfoNCE (MedMod form: summed directions, positives masked) with a learnable raw temperature.

    Shape:
        - z_img, z_ehr: (B, D); output: ().
    """

    def __init__(self, init_temperature: float = 0.07, min_temperature: float = 1e-3) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.tensor(float(init_temperature)))
        self.min_temperature = min_temperature

    def forward(self, z_img: Tensor, z_ehr: Tensor) -> Tensor:
        """The InfoNCE loss at the current temperature (clamped below at ``min_temperature``)."""
        return cross_modal_infonce(z_img, z_ehr, self.temperature.clamp(min=self.min_temperature))
