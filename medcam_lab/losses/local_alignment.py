"""Local (top-k timestep) CXR↔EHR alignment loss (MedCAM eq. 6a, 6b, 7) and the total loss (eq. 8).

For each patient ``b`` the image attends over the patient's valid EHR timesteps; the ``k`` most-attended
valid timesteps ``Top-k(b)`` are aligned with the image in both directions (method.md §3):

- 6a (CXR→EHR): for each selected ``(b, j)``, ``-log softmax_{j'}(cos(z_cxr_b, z_ehr_{b,j'}) / τ)[j]``
  with ``j'`` over the **valid timesteps of the same patient**;
- 6b (EHR→CXR): for each selected ``(b, j)``, ``-log softmax_{b'}(cos(z_ehr_{b,j}, z_cxr_{b'}) / τ)[b]``
  with ``b'`` over **all images of the batch**;
- each direction is the mean over all selected pairs; ``L_local = ½ (6a + 6b)``.

``MedCAMLoss`` (eq. 8) lives here too: ``L = λ_global·L_global + λ_local·L_local``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medcam_lab.losses.distributed import all_reduce_sum, gather_with_grad, world_info
from medcam_lab.losses.global_alignment import as_temperature, global_alignment_loss

__all__ = ["select_topk_steps", "local_alignment_loss", "MedCAMLoss"]


def select_topk_steps(attention: Tensor, k: int, step_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Indices of the ``k`` most-attended valid timesteps of each patient (not differentiable).

    Masked steps are never selected, whatever their attention: patient ``b`` gets
    ``k_b = min(k, #valid steps of b)`` selections. Ties are broken towards the earlier timestep.

    Args:
        attention: attention of each image over its patient's timesteps (only the ranking is used;
            the tensor is detached).
        k: the number of timesteps to select per patient, ``k ≥ 1``.
        step_mask: ``True`` where a timestep is valid; ``None`` means all valid.

    Returns:
        ``(index, selected)``: ``index[b, r]`` is the timestep of rank ``r`` for patient ``b`` and
        ``selected[b, r]`` is ``True`` iff ``r < k_b`` (only those entries are selections).

    Shape:
        - attention: (B, T).
        - step_mask: (B, T) bool.
        - index: (B, min(k, T)) long.
        - selected: (B, min(k, T)) bool.
    """
    if attention.dim() != 2:
        raise ValueError(f"attention must be (B, T), got {tuple(attention.shape)}")
    if step_mask is None:
        step_mask = torch.ones_like(attention, dtype=torch.bool)
    elif step_mask.shape != attention.shape or step_mask.dtype != torch.bool:
        raise ValueError(
            f"step_mask must be a bool tensor shaped like attention {tuple(attention.shape)}, "
            f"got {step_mask.dtype} {tuple(step_mask.shape)}"
        )
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    att = attention.detach()
    # Two stable sorts = lexicographic order (valid first, then attention descending): masked steps land
    # behind every valid step even when their attention is +inf or a valid step's is -inf.
    by_att = torch.sort(att, dim=1, descending=True, stable=True).indices
    valid_sorted = step_mask.gather(1, by_att)
    by_valid = torch.sort(valid_sorted.to(torch.uint8), dim=1, descending=True, stable=True).indices
    order = by_att.gather(1, by_valid)
    k_eff = min(k, att.shape[1])
    index = order[:, :k_eff]
    k_b = step_mask.sum(dim=1).clamp(max=k)
    selected = torch.arange(k_eff, device=att.device)[None, :] < k_b[:, None]
    return index, selected


def local_alignment_loss(
    z_cxr: Tensor,
    z_ehr_steps: Tensor,
    attention: Tensor,
    k: int,
    temperature: float | Tensor,
    step_mask: Tensor | None = None,
    distributed: bool = False,
) -> Tensor:
    """Bidirectional top-k timestep InfoNCE (eq. 6a, 6b, 7), vectorised over patients and timesteps.

    ``Top-k(b)`` comes from :func:`select_topk_steps` on the detached attention (selection is not
    differentiable; gradients flow through the embeddings and τ). A patient with no valid step selects
    nothing and contributes no term of its own, but its image still appears among the 6b negatives of the
    other patients. Embeddings are L2-normalised here; everything is computed in float32, even under
    autocast.

    Args:
        z_cxr: image embeddings.
        z_ehr_steps: per-timestep EHR embeddings ``z_ehr,t = g_ehr(h_t)``; values at masked steps are
            ignored.
        attention: image-to-timestep attention (only its ranking over valid steps matters).
        k: timesteps selected per patient, ``k ≥ 1`` (``k_b = min(k, #valid steps of b)``).
        temperature: τ > 0, a float or a 0-dim tensor.
        step_mask: ``True`` = valid timestep; ``None`` = all valid.
        distributed: under an initialised process group of ``W`` ranks with equal local batches ``B``,
            compute this rank's share of the loss over the global batch: 6a is local to each patient, 6b
            normalises each local selected timestep over the ``W·B`` images gathered with gradient (positive
            at ``rank·B + b``), and both sums are divided by the all-reduced number of selected pairs and
            multiplied by ``W``. The mean over ranks is then the single-process loss on the concatenated
            batch and DDP's gradient averaging gives its exact gradient. Without a process group it changes
            nothing.

    Returns:
        Scalar float32 loss ``½ (L_6a + L_6b)``, each the mean over all selected ``(b, j)`` pairs.

    Raises:
        ValueError: on bad shapes, ``k < 1``, τ ≤ 0, or when no ``(b, j)`` pair is selected in the whole
            batch (every patient has zero valid steps).

    Shape:
        - z_cxr: (B, d).
        - z_ehr_steps: (B, T, d).
        - attention: (B, T).
        - step_mask: (B, T) bool.
        - output: () scalar.

    Examples:
        >>> B, T, d = 4, 6, 32
        >>> mask = torch.arange(T)[None, :] < torch.tensor([6, 2, 5, 1])[:, None]
        >>> loss = local_alignment_loss(torch.randn(B, d), torch.randn(B, T, d), torch.rand(B, T),
        ...                             k=3, temperature=0.1, step_mask=mask)
    """
    if z_cxr.dim() != 2 or z_ehr_steps.dim() != 3:
        raise ValueError(
            f"expected z_cxr (B, d) and z_ehr_steps (B, T, d), got {tuple(z_cxr.shape)} and "
            f"{tuple(z_ehr_steps.shape)}"
        )
    B, T, d = z_ehr_steps.shape
    if z_cxr.shape != (B, d):
        raise ValueError(f"z_cxr must be ({B}, {d}) to match z_ehr_steps, got {tuple(z_cxr.shape)}")
    if attention.shape != (B, T):
        raise ValueError(f"attention must be ({B}, {T}), got {tuple(attention.shape)}")
    if step_mask is None:
        step_mask = torch.ones(B, T, dtype=torch.bool, device=z_cxr.device)
    index, selected = select_topk_steps(attention, k, step_mask)
    rank, world = world_info() if distributed else (0, 1)
    # The number of selected pairs over the (global) batch, kept on the device: no host sync on CUDA.
    n_pairs = selected.sum().to(torch.float32)
    if world > 1:
        n_pairs = all_reduce_sum(n_pairs)
    if n_pairs.device.type == "cpu":
        if float(n_pairs) == 0:
            raise ValueError("local_alignment_loss: no (patient, timestep) pair selected (no valid EHR step)")
    else:
        torch._assert_async(n_pairs > 0, "local_alignment_loss: no (patient, timestep) pair selected")
    tau = as_temperature(temperature, z_cxr.device)

    with torch.autocast(device_type=z_cxr.device.type, enabled=False):
        zc = F.normalize(z_cxr.float(), dim=-1)  # (B, d)
        zs = F.normalize(z_ehr_steps.float(), dim=-1)  # (B, T, d)

        # 6a: each image against the valid timesteps of its own patient.
        logits_a = torch.einsum("bd,btd->bt", zc, zs) / tau  # (B, T)
        # Patients without valid steps are never selected; unmasking their row keeps log_softmax finite
        # (an all -inf row would give NaN and poison the backward pass).
        row_mask = step_mask | ~step_mask.any(dim=1, keepdim=True)
        logits_a = logits_a.masked_fill(~row_mask, float("-inf"))
        logp_a = torch.log_softmax(logits_a, dim=1).gather(1, index)  # (B, k_eff)
        sum_a = torch.where(selected, logp_a, 0.0).sum()

        # 6b: each selected timestep against every image of the (global) batch; the positive is its own image.
        zc_all = gather_with_grad(zc) if world > 1 else zc  # (W·B, d)
        zs_sel = zs.gather(1, index[..., None].expand(-1, -1, d))  # (B, k_eff, d)
        logits_b = torch.einsum("bkd,cd->bkc", zs_sel, zc_all) / tau  # (B, k_eff, W·B)
        own = (torch.arange(B, device=zc.device) + rank * B)[:, None, None].expand(-1, index.shape[1], 1)
        logp_b = torch.log_softmax(logits_b, dim=2).gather(2, own).squeeze(2)  # (B, k_eff)
        sum_b = torch.where(selected, logp_b, 0.0).sum()
        return -0.5 * (sum_a + sum_b) * world / n_pairs


class MedCAMLoss(nn.Module):
    """Total MedCAM alignment loss (eq. 8): ``λ_global·L_global + λ_local·L_local``.

    The forward's argument names equal the keys of :class:`medcam_lab.models.MedCAMAligner`'s output, so
    ``loss_fn(**aligner(images, ehr, lengths))`` works.

    Temperature: fixed by default (τ = 0.1). With ``learnable_temperature=True`` the module holds a
    CLIP-style log-scale parameter ``logit_scale = log(1/τ)``; call :meth:`clamp_` after each optimizer
    step to keep ``exp(logit_scale) ≤ 100`` (τ ≥ 0.01), as CLIP does.

    Args:
        k: timesteps selected per patient by the local loss, ``k ≥ 1``.
        temperature: τ > 0 (the initial value when learnable; then it must be ≥ 0.01).
        learnable_temperature: learn τ through ``logit_scale``.
        lambda_global: weight of the global loss, ≥ 0 (0 = term not computed).
        lambda_local: weight of the local loss, ≥ 0 (0 = term not computed).
        distributed: compute this rank's share of the loss over the batch gathered from all ranks (see
            :func:`global_alignment_loss`); without a process group it changes nothing. Can be changed on
            the instance (e.g. off for a single-rank evaluation).

    Raises:
        ValueError: on ``k < 1``, τ ≤ 0 (or < 0.01 when learnable), a negative weight, or both weights 0.

    Shape:
        - z_cxr: (B, d).
        - z_ehr: (B, d).
        - z_ehr_steps: (B, T, d).
        - attention: (B, T).
        - step_mask: (B, T) bool.
        - output: dict of () scalars.

    Examples:
        >>> loss_fn = MedCAMLoss(k=10, temperature=0.1)
        >>> out = loss_fn(**aligner(images, ehr, lengths))  # doctest: +SKIP
        >>> out["loss"].backward()  # doctest: +SKIP
    """

    MAX_LOGIT_SCALE = math.log(100.0)

    def __init__(
        self,
        k: int = 10,
        temperature: float = 0.1,
        learnable_temperature: bool = False,
        lambda_global: float = 1.0,
        lambda_local: float = 1.0,
        distributed: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be an int >= 1, got {k!r}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if learnable_temperature and temperature < 0.01:
            raise ValueError(f"a learnable temperature is clamped to >= 0.01, got initial {temperature}")
        if lambda_global < 0 or lambda_local < 0:
            raise ValueError(f"loss weights must be >= 0, got {lambda_global}, {lambda_local}")
        if lambda_global == 0 and lambda_local == 0:
            raise ValueError("lambda_global and lambda_local cannot both be 0")
        self.k = k
        self.lambda_global = float(lambda_global)
        self.lambda_local = float(lambda_local)
        self.learnable_temperature = learnable_temperature
        self.distributed = distributed
        self._fixed_temperature = float(temperature)
        if learnable_temperature:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    @property
    def temperature(self) -> Tensor:
        """Current τ as a 0-dim tensor (differentiable when learnable).

        Shape:
            - output: ().
        """
        if self.learnable_temperature:
            return torch.exp(-self.logit_scale)
        return torch.tensor(self._fixed_temperature)

    @torch.no_grad()
    def clamp_(self) -> None:
        """Clamp the learnable ``logit_scale`` to ``≤ log(100)`` (τ ≥ 0.01); a no-op for a fixed τ."""
        if self.learnable_temperature:
            self.logit_scale.clamp_(max=self.MAX_LOGIT_SCALE)

    def forward(
        self,
        z_cxr: Tensor,
        z_ehr: Tensor,
        z_ehr_steps: Tensor,
        attention: Tensor,
        step_mask: Tensor | None = None,
    ) -> dict[str, Tensor | None]:
        """Compute the weighted total loss.

        Args:
            z_cxr: image embeddings.
            z_ehr: sequence-level EHR embeddings.
            z_ehr_steps: per-timestep EHR embeddings.
            attention: image-to-timestep attention.
            step_mask: ``True`` = valid timestep; ``None`` = all valid.

        Returns:
            ``{"loss", "global", "local", "temperature"}``: ``loss`` is the weighted sum to backpropagate;
            ``global``/``local`` are the unweighted terms, or ``None`` when their weight is 0 (not
            computed); ``temperature`` is the detached τ used.

        Shape:
            - z_cxr: (B, d).
            - z_ehr: (B, d).
            - z_ehr_steps: (B, T, d).
            - attention: (B, T).
            - step_mask: (B, T) bool.
            - output values: () scalars.
        """
        tau: float | Tensor = self.temperature if self.learnable_temperature else self._fixed_temperature
        dist_on = self.distributed
        loss_g = global_alignment_loss(z_cxr, z_ehr, tau, dist_on) if self.lambda_global > 0 else None
        loss_l = (
            local_alignment_loss(z_cxr, z_ehr_steps, attention, self.k, tau, step_mask, dist_on)
            if self.lambda_local > 0
            else None
        )
        terms = [(self.lambda_global, loss_g), (self.lambda_local, loss_l)]
        total = torch.stack([w * term for w, term in terms if term is not None]).sum()
        return {
            "loss": total,
            "global": loss_g,
            "local": loss_l,
            "temperature": self.temperature.detach(),
        }

    def extra_repr(self) -> str:
        """One-line summary for ``print(module)``."""
        return (
            f"k={self.k}, temperature={float(self.temperature.detach()):.4g}, "
            f"learnable_temperature={self.learnable_temperature}, lambda_global={self.lambda_global}, "
            f"lambda_local={self.lambda_local}, distributed={self.distributed}"
        )
