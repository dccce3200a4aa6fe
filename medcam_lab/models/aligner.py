"""The MedCAM alignment model (method.md §2–§4): image backbone + LSTM EHR encoder + projection heads.

The model produces everything :class:`medcam_lab.losses.MedCAMLoss` consumes::

    out = aligner(images, ehr, lengths)
    loss = MedCAMLoss()(**out)["loss"]

After alignment the heads are dropped and only ``aligner.image_encoder`` (the adapted backbone) is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medcam_lab.models.ehr_encoder import EHREncoder
from medcam_lab.models.heads import ProjectionHead
from medcam_lab.models.image_encoders import encoder_width

__all__ = [
    "MedCAMAligner",
    "BACKBONE_MODES",
    "DEFAULT_BACKBONE_MODE",
    "backbone_param_groups",
    "step_attention",
]

BACKBONE_MODES = ("adapt", "frozen", "last_block", "full")
DEFAULT_BACKBONE_MODE = "adapt"


def step_attention(z_cxr: Tensor, z_ehr_steps: Tensor, step_mask: Tensor) -> Tensor:
    """Attention of each image over its own patient's valid EHR timesteps (method.md §3, **Decision**).

    ``A[b, t] = softmax_{t valid}(⟨normalize(z_cxr_b), normalize(z_ehr_{b,t})⟩ / √d)``. Parameter-free;
    masked steps get exactly 0, and a patient without valid steps gets an all-zero row.

    Args:
        z_cxr: image embeddings.
        z_ehr_steps: per-timestep EHR embeddings.
        step_mask: ``True`` = valid timestep.

    Returns:
        The attention weights (rows sum to 1 over valid steps).

    Shape:
        - z_cxr: (B, d).
        - z_ehr_steps: (B, T, d).
        - step_mask: (B, T) bool.
        - output: (B, T).
    """
    d = z_cxr.shape[-1]
    scores = torch.einsum("bd,btd->bt", F.normalize(z_cxr, dim=-1), F.normalize(z_ehr_steps, dim=-1))
    scores = (scores / math.sqrt(d)).masked_fill(~step_mask, float("-inf"))
    attention = torch.softmax(scores, dim=1)
    return attention.masked_fill(~step_mask, 0.0)  # all-masked rows: NaN → 0


class MedCAMAligner(nn.Module):
    """Image backbone ``f_cxr`` + EHR encoder ``f_ehr`` + heads ``g_cxr``, ``g_ehr`` (one ``g_ehr`` is shared
    by the sequence feature and the per-step outputs).

    Args:
        image_encoder: module mapping images to pooled features, with a ``num_features`` attribute
            (see :func:`medcam_lab.models.build_image_encoder`).
        ehr_encoder: an :class:`EHREncoder` (or any module with ``hidden_dim`` returning ``(steps, last)``).
        proj_dim: shared-space width ``d``.
        image_proj_hidden: hidden width of ``g_cxr`` (``None`` = linear).
        ehr_proj_hidden: hidden width of ``g_ehr`` (``None`` = linear).

    Attributes:
        image_encoder, ehr_encoder, image_proj (``g_cxr``), ehr_proj (``g_ehr``).

    Shape:
        - images: (B, 3, H, W).
        - ehr: (B, T, F).
        - lengths: (B,) long.
        - output: dict with ``z_cxr`` (B, d), ``z_ehr`` (B, d), ``z_ehr_steps`` (B, T, d; zero at padded
          steps), ``step_mask`` (B, T) bool, ``attention`` (B, T).
    """

    def __init__(
        self,
        image_encoder: nn.Module,
        ehr_encoder: EHREncoder,
        proj_dim: int = 256,
        image_proj_hidden: int | None = None,
        ehr_proj_hidden: int | None = None,
    ) -> None:
        super().__init__()
        width = encoder_width(image_encoder)
        self.image_encoder = image_encoder
        self.ehr_encoder = ehr_encoder
        self.proj_dim = proj_dim
        self.image_proj = ProjectionHead(width, proj_dim, image_proj_hidden)
        self.ehr_proj = ProjectionHead(int(ehr_encoder.hidden_dim), proj_dim, ehr_proj_hidden)

    def train(self, mode: bool = True) -> MedCAMAligner:
        """Set train/eval mode; BatchNorm layers of the backbone whose parameters are all frozen stay in
        eval mode (their running statistics must not drift in ``frozen``/``last_block`` modes).
        """
        super().train(mode)
        if mode:
            for module in self.image_encoder.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    params = list(module.parameters(recurse=False))
                    if params and not any(p.requires_grad for p in params):
                        module.eval()
        return self

    def forward(self, images: Tensor, ehr: Tensor, lengths: Tensor) -> dict[str, Tensor]:
        """Embed a paired batch.

        Args:
            images: preprocessed CXR images.
            ehr: zero-padded EHR sequences.
            lengths: valid steps per sequence.

        Returns:
            ``{"z_cxr", "z_ehr", "z_ehr_steps", "step_mask", "attention"}`` (the keyword arguments of
            :class:`medcam_lab.losses.MedCAMLoss`).

        Shape:
            - images: (B, 3, H, W).
            - ehr: (B, T, F).
            - lengths: (B,).
            - z_cxr, z_ehr: (B, d).
            - z_ehr_steps: (B, T, d).
            - step_mask, attention: (B, T).
        """
        z_cxr = self.image_proj(self.image_encoder(images))
        steps, last = self.ehr_encoder(ehr, lengths)
        T = ehr.shape[1]
        lengths = torch.as_tensor(lengths).to(ehr.device, non_blocking=True)  # no wait on the GPU's queue
        step_mask = torch.arange(T, device=ehr.device)[None, :] < lengths[:, None]
        z_ehr = self.ehr_proj(last)
        z_ehr_steps = self.ehr_proj(steps).masked_fill(~step_mask[..., None], 0.0)
        attention = step_attention(z_cxr, z_ehr_steps, step_mask)
        return {
            "z_cxr": z_cxr,
            "z_ehr": z_ehr,
            "z_ehr_steps": z_ehr_steps,
            "step_mask": step_mask,
            "attention": attention,
        }


def backbone_param_groups(
    model: MedCAMAligner,
    mode: str,
    lr: float,
    backbone_lr_mult: float = 0.1,
    extra_params: Iterable[nn.Parameter] = (),
) -> list[dict]:
    """Set which backbone parameters train and return optimizer param groups (method.md §4).

    Modes (the image backbone is the anchor; the heads and the EHR encoder always train at ``lr``):

    - ``"adapt"`` (default, :data:`DEFAULT_BACKBONE_MODE`): the whole backbone trains at
      ``lr × backbone_lr_mult`` (0.1): it changes only as much as the alignment asks.
    - ``"frozen"``: no backbone parameter trains (``requires_grad=False``) and its BatchNorms stay in eval
      mode; a sanity baseline: the "adapted" encoder equals the original.
    - ``"last_block"``: only ``layer4`` of the backbone trains, at ``lr × backbone_lr_mult``; the other
      backbone parameters are frozen and their BatchNorms stay in eval mode.
    - ``"full"``: the whole backbone trains at the full ``lr``.

    The ``requires_grad`` flags are set in place (so switching mode works) and the model's BatchNorm modes
    are refreshed (``model.train(model.training)``).

    Args:
        model: the aligner.
        mode: one of :data:`BACKBONE_MODES`.
        lr: base learning rate (heads, EHR encoder, ``extra_params``).
        backbone_lr_mult: backbone learning-rate multiplier for ``adapt`` and ``last_block``.
        extra_params: further parameters for the base group, e.g. a learnable loss temperature.

    Returns:
        ``[{"name": "heads_ehr", "params", "lr"}, {"name": "backbone", "params", "lr"}]``; the backbone
        group is omitted in ``frozen`` mode.

    Raises:
        ValueError: on an unknown mode, ``lr ≤ 0``, ``backbone_lr_mult ≤ 0``, or ``last_block`` with a
            backbone that has no ``layer4``.
    """
    if mode not in BACKBONE_MODES:
        raise ValueError(f"unknown backbone mode {mode!r}; choose one of {BACKBONE_MODES}")
    if not lr > 0 or not backbone_lr_mult > 0:
        raise ValueError(f"lr and backbone_lr_mult must be > 0, got {lr}, {backbone_lr_mult}")
    backbone = model.image_encoder
    if mode == "last_block" and not hasattr(backbone, "layer4"):
        raise ValueError("mode 'last_block' needs a ResNet-style backbone with a `layer4`")
    trainable_names = set()
    for name, param in backbone.named_parameters():
        train = mode in ("adapt", "full") or (mode == "last_block" and name.startswith("layer4."))
        param.requires_grad_(train)
        if train:
            trainable_names.add(name)
    model.train(model.training)

    backbone_ids = {id(p) for p in backbone.parameters()}
    base = [p for p in model.parameters() if id(p) not in backbone_ids]
    for param in base:
        param.requires_grad_(True)
    extra = [p for p in extra_params if all(p is not q for q in base)]
    groups: list[dict] = [{"name": "heads_ehr", "params": base + extra, "lr": lr}]
    if trainable_names:
        bb_lr = lr if mode == "full" else lr * backbone_lr_mult
        params = [p for n, p in backbone.named_parameters() if n in trainable_names]
        groups.append({"name": "backbone", "params": params, "lr": bb_lr})
    return groups
