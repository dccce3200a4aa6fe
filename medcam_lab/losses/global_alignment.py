"""Global CXR↔EHR alignment loss (MedCAM eq. 3–5, method.md §3).

A symmetric InfoNCE over the batch: image ``i`` and EHR sequence ``i`` are the positive pair, every other
pairing in the batch is a negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from medcam_lab.losses.distributed import gather_with_grad, world_info

__all__ = ["global_alignment_loss", "as_temperature"]


def as_temperature(temperature: float | Tensor, device: torch.device) -> Tensor:
    """Turn a float or 0-dim tensor temperature into a float32 0-dim tensor on ``device``.

    A tensor keeps its autograd graph (a learnable temperature receives a gradient).

    Args:
        temperature: τ > 0, a Python number or a 0-dim tensor.
        device: where the loss is computed.

    Returns:
        τ as a float32 0-dim tensor.

    Raises:
        ValueError: if τ is not a scalar, or is a Python number ≤ 0.

    Shape:
        - temperature: () (a scalar).
        - output: ().
    """
    if isinstance(temperature, Tensor):
        if temperature.dim() != 0:
            raise ValueError(f"temperature must be a 0-dim tensor, got shape {tuple(temperature.shape)}")
        return temperature.to(device=device, dtype=torch.float32)
    temperature = float(temperature)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.full((), temperature, dtype=torch.float32, device=device)  # a fill: no host→device copy


def global_alignment_loss(
    z_cxr: Tensor, z_ehr: Tensor, temperature: float | Tensor, distributed: bool = False
) -> Tensor:
    """Symmetric InfoNCE between image and EHR embeddings (eq. 3–5).

    The embeddings are L2-normalised here (they need not be normalised on input). With
    ``S[i, j] = cos(z_cxr[i], z_ehr[j]) / τ``::

        L_c→e = CE(S, diag)        # rows: each image against every EHR sequence of the batch
        L_e→c = CE(Sᵀ, diag)       # columns: each EHR sequence against every image
        L     = ½ (L_c→e + L_e→c)

    The logits and the loss are computed in float32, even under ``torch.autocast`` (inputs are cast).

    Args:
        z_cxr: image embeddings ``z_cxr = g_cxr(f_cxr(x))``.
        z_ehr: sequence-level EHR embeddings ``z_ehr = g_ehr(h_last)``; row ``i`` pairs with ``z_cxr[i]``.
        temperature: τ > 0, a float or a 0-dim tensor (a learnable τ gets a gradient).
        distributed: under an initialised process group of ``W`` ranks, each holding ``B`` local pairs,
            compute this rank's share of the loss over the global batch of ``W·B`` pairs: the local rows of
            ``S`` against all gathered EHR embeddings, and the local columns against all gathered images
            (gathered with gradient, labels offset by ``rank·B``). The mean over ranks of this value is the
            single-process loss on the concatenated batch, and DDP's gradient averaging yields its exact
            gradient. Every rank must hold the same ``B``. Without a process group it changes nothing.

    Returns:
        The scalar float32 loss. For B = 1 it is exactly 0 (a single pair has no negatives).

    Raises:
        ValueError: on mismatched or non-2-D inputs, an empty batch, or τ ≤ 0.

    Shape:
        - z_cxr: (B, d).
        - z_ehr: (B, d).
        - output: () scalar.

    Examples:
        >>> z_i, z_e = torch.randn(8, 256), torch.randn(8, 256)
        >>> loss = global_alignment_loss(z_i, z_e, temperature=0.1)
    """
    if z_cxr.dim() != 2 or z_ehr.dim() != 2 or z_cxr.shape != z_ehr.shape:
        raise ValueError(
            f"z_cxr and z_ehr must both be (B, d) with equal shapes, got {tuple(z_cxr.shape)} "
            f"and {tuple(z_ehr.shape)}"
        )
    if z_cxr.shape[0] == 0:
        raise ValueError("empty batch")
    tau = as_temperature(temperature, z_cxr.device)
    with torch.autocast(device_type=z_cxr.device.type, enabled=False):
        zc = F.normalize(z_cxr.float(), dim=-1)
        ze = F.normalize(z_ehr.float(), dim=-1)
        rank, world = world_info() if distributed else (0, 1)
        labels = torch.arange(zc.shape[0], device=zc.device) + rank * zc.shape[0]
        if world == 1:
            logits = zc @ ze.t() / tau
            return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))
        zc_all, ze_all = gather_with_grad(zc), gather_with_grad(ze)  # (W·B, d) each
        loss_c2e = F.cross_entropy(zc @ ze_all.t() / tau, labels)  # this rank's rows of S
        loss_e2c = F.cross_entropy(ze @ zc_all.t() / tau, labels)  # this rank's columns of S, transposed
        return 0.5 * (loss_c2e + loss_e2c)
