"""EHR attributions for the image–EHR similarity, per variable × timestep, and the column → variable map.

The discretizer writes 76 (``medfuse``) or 60 (``clean``) columns for 17 variables (``ehr.md``): one
column per continuous variable, one per category of a categorical variable, and one ``mask-><variable>``
column each (1 = observed in the bin, 0 = imputed). :func:`variable_groups` recovers which columns belong
to which variable from the cohort's ``ehr_columns.json`` names; per-variable attributions are the sum over
a variable's value and mask columns.

**Decision (baseline):** zeros in the normalized space the model reads: the training mean of each
continuous variable, no category and "not observed". Padded steps after a stay's length never reach the
LSTM (packed sequences), so their attribution is exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medcam_lab.explain.images import integrated_gradients

__all__ = ["VariableGroup", "variable_groups", "variable_matrix", "ehr_attributions", "attributions_by_variable"]

MASK_PREFIX = "mask->"


@dataclass(frozen=True)
class VariableGroup:
    """The discretizer columns of one variable.

    Attributes:
        name: the variable (e.g. ``"Heart Rate"``).
        value_columns: column indices holding its value (one, or one per category).
        categories: category strings of a categorical variable (empty for a continuous one).
        mask_column: index of its ``mask->`` column, or ``None`` when the cohort stores no masks.
    """

    name: str
    value_columns: tuple[int, ...]
    categories: tuple[str, ...]
    mask_column: int | None

    @property
    def columns(self) -> tuple[int, ...]:
        """Value columns and the mask column."""
        return self.value_columns + (() if self.mask_column is None else (self.mask_column,))


def variable_groups(columns: list[str]) -> list[VariableGroup]:
    """Group discretizer column names (``"<var>"``, ``"<var>-><category>"``, ``"mask-><var>"``) by variable.

    Raises:
        ValueError: when a mask column names a variable without value columns.

    Shape:
        - no tensor arguments.
    """
    order: list[str] = []
    values: dict[str, list[int]] = {}
    cats: dict[str, list[str]] = {}
    masks: dict[str, int] = {}
    for i, name in enumerate(columns):
        if name.startswith(MASK_PREFIX):
            masks[name[len(MASK_PREFIX):]] = i
            continue
        var, _, cat = name.partition("->")
        if var not in values:
            order.append(var)
            values[var], cats[var] = [], []
        values[var].append(i)
        if cat:
            cats[var].append(cat)
    orphans = sorted(set(masks) - set(values))
    if orphans:
        raise ValueError(f"mask columns without value columns: {orphans}")
    return [VariableGroup(v, tuple(values[v]), tuple(cats[v]), masks.get(v)) for v in order]


def variable_matrix(raw: np.ndarray, columns: list[str], length: int) -> tuple[np.ndarray, list[list[str]], list[str]]:
    """One stay's discretized EHR as a variable × time table for display.

    Colour values are scaled per variable to [0, 1] over the valid steps (a continuous variable by its
    min–max, a categorical one by the position of its category); the texts give the actual value and
    whether it was observed in the bin or imputed.

    Args:
        raw: the stay's discretized (not normalized) EHR.
        columns: the cohort's column names (``ehr_columns.json``).
        length: valid steps (``n_bins``).

    Returns:
        ``(scaled, texts, names)``: ``scaled`` (V, length) with NaN where nothing can be shown, ``texts``
        V lists of ``length`` strings, and the V variable names.

    Shape:
        - raw: (T, F) with T ≥ length.
    """
    groups = variable_groups(columns)
    steps = raw[:length]
    scaled = np.full((len(groups), length), np.nan)
    texts: list[list[str]] = []
    for v, g in enumerate(groups):
        observed = steps[:, g.mask_column] > 0.5 if g.mask_column is not None else np.ones(length, bool)
        tag = ["observed" if o else "imputed" for o in observed]
        if g.categories:
            block = steps[:, list(g.value_columns)]
            has = block.max(axis=1) > 0.5
            pos = block.argmax(axis=1)
            scaled[v] = np.where(has, pos / max(len(g.categories) - 1, 1), np.nan)
            texts.append([f"{g.categories[p]} ({t})" if h else f"— ({t})" for p, h, t in zip(pos, has, tag)])
        else:
            col = steps[:, g.value_columns[0]].astype(float)
            lo, hi = (np.nanmin(col), np.nanmax(col)) if length else (0.0, 0.0)
            scaled[v] = (col - lo) / (hi - lo) if hi > lo else np.full(length, 0.5)
            texts.append([f"{x:.4g} ({t})" for x, t in zip(col, tag)])
    return scaled, texts, [g.name for g in groups]


def _ehr_similarity(aligner: nn.Module):
    def forward(ehr: Tensor, lengths: Tensor, z_cxr: Tensor) -> Tensor:
        _, last = aligner.ehr_encoder(ehr, lengths)
        z_ehr = F.normalize(aligner.ehr_proj(last), dim=-1)
        return (z_ehr * F.normalize(z_cxr, dim=-1)).sum(-1)

    return forward


def ehr_attributions(
    aligner: nn.Module,
    ehr: Tensor,
    lengths: Tensor,
    z_cxr: Tensor,
    baselines: Tensor | None = None,
    n_steps: int = 32,
    batch_size: int = 16,
    internal_batch_size: int | None = 256,
) -> tuple[Tensor, Tensor]:
    """Integrated Gradients of ``cos(z_cxr, g_ehr(f_ehr(ehr)))`` with respect to every EHR cell.

    The aligner must be in eval mode (no dropout: attributions must be deterministic). cuDNN is disabled
    for the call: cuDNN's LSTM backward only runs in train mode.

    Args:
        aligner: a :class:`~medcam_lab.models.MedCAMAligner` in eval mode.
        ehr: normalized, zero-padded EHR sequences.
        lengths: valid steps per sequence.
        z_cxr: the image embeddings to compare with (fixed).
        baselines: reference sequences; ``None`` = zeros.
        n_steps, batch_size, internal_batch_size: as :func:`~medcam_lab.explain.integrated_gradients`.

    Returns:
        ``(attributions, delta)`` on the CPU (inputs are moved to the aligner's device); attributions are 0
        at padded steps.

    Raises:
        ValueError: when the aligner is in train mode.

    Shape:
        - ehr: (B, T, F).
        - lengths: (B,) long.
        - z_cxr: (B, d).
        - attributions: (B, T, F).
        - delta: (B,).
    """
    if aligner.training:
        raise ValueError("call aligner.eval() first: attributions in train mode are stochastic (dropout)")
    device = next(aligner.parameters()).device
    lengths = torch.as_tensor(lengths, dtype=torch.long).cpu()  # the encoder packs with CPU lengths
    with torch.backends.cudnn.flags(enabled=False):
        attr, delta = integrated_gradients(
            _ehr_similarity(aligner), ehr.to(device), baselines=None if baselines is None else baselines.to(device),
            additional_forward_args=(lengths, z_cxr.detach().to(device)), n_steps=n_steps, batch_size=batch_size,
            internal_batch_size=internal_batch_size,
        )
    return attr.cpu(), delta.cpu()


def attributions_by_variable(attributions: Tensor, columns: list[str]) -> tuple[Tensor, list[str]]:
    """Sum cell attributions over each variable's value and mask columns.

    Shape:
        - attributions: (B, T, F).
        - output: (B, T, V) with V variables (17 for the MIMIC-IV discretizer).
    """
    groups = variable_groups(columns)
    summed = torch.stack([attributions[..., list(g.columns)].sum(-1) for g in groups], dim=-1)
    return summed, [g.name for g in groups]
