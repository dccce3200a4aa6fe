"""MedCAM alignment losses (method.md §3).

- :func:`global_alignment_loss`: symmetric InfoNCE between image and sequence-level EHR embeddings
  (eq. 3–5).
- :func:`local_alignment_loss`: bidirectional InfoNCE between each image and its ``k`` most-attended
  valid EHR timesteps (eq. 6a, 6b, 7); :func:`select_topk_steps` is the (non-differentiable) selection.
- :class:`MedCAMLoss`: ``λ_global·L_global + λ_local·L_local`` (eq. 8) with a fixed or learnable
  (CLIP-clamped) temperature.

All losses normalise their inputs and compute in float32 even under autocast.
"""

from medcam_lab.losses.global_alignment import global_alignment_loss
from medcam_lab.losses.local_alignment import MedCAMLoss, local_alignment_loss, select_topk_steps

__all__ = ["global_alignment_loss", "local_alignment_loss", "select_topk_steps", "MedCAMLoss"]
