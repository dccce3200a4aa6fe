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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from medcam_lab.explain.images import integrated_gradients
from medcam_lab.models import MedCAMAligner

__all__ = ["VariableGroup", "VariableTable", "variable_groups", "variable_matrix", "variable_table",
           "ehr_attributions", "attributions_by_variable", "CLINICAL_GROUPS"]

MASK_PREFIX = "mask->"

#: The 17 variables in clinical groups, the display order of the EHR views (a variable not listed goes last).
CLINICAL_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vital signs", ("Heart Rate", "Systolic blood pressure", "Diastolic blood pressure", "Mean blood pressure",
                     "Respiratory rate", "Oxygen saturation", "Temperature")),
    ("respiratory support and blood gas", ("Fraction inspired oxygen", "pH")),
    ("neurological (GCS)", ("Glascow coma scale total", "Glascow coma scale eye opening",
                            "Glascow coma scale motor response", "Glascow coma scale verbal response")),
    ("perfusion", ("Capillary refill rate",)),
    ("laboratory", ("Glucose",)),
    ("body size", ("Height", "Weight")),
)
MEASURED, CARRIED, NORMAL = "measured", "carried forward", "normal-filled"


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
    """One stay's discretized EHR as a variable × time table, variables in :func:`variable_groups` order: the
    colour values, texts "value (measured / carried forward / normal-filled)" and the names of
    :func:`variable_table`.

    Shape:
        - raw: (T, F) with T ≥ length; scaled: (V, length).
    """
    table = variable_table(raw, columns, length)
    back = np.argsort(table.order)
    texts = [[f"{v} ({s})" for v, s in zip(table.values[i], table.status[i])] for i in back]
    return table.scaled[back], texts, [table.names[i] for i in back]


@dataclass(frozen=True)
class VariableTable:
    """One stay's EHR as a variable × time table a clinician reads: variables in clinical groups, the value
    of every cell as charted (with its unit; a categorical one as its text) and how the cell was filled.

    Attributes:
        names: variable names in display order (:data:`CLINICAL_GROUPS`); groups: the group of each.
        units: the unit of each variable (``""`` when unknown or unitless).
        scaled: colour value per cell in [0, 1]: a continuous variable by its min–max over the stay's valid
            steps, a categorical one by the position of its category (NaN: nothing to show).
        values: the cell's value as text (``"92 /min"``, ``"4 Spontaneously"``).
        status: per cell ``"measured"`` (observed in the bin), ``"carried forward"`` (the last measurement of
            the window repeated) or ``"normal-filled"`` (nothing measured yet in the window: the
            discretizer's normal value); ``"unknown"`` when the cohort stores no masks.
        order: for each displayed row, its index in :func:`variable_groups` (to reorder other tables).

    Shape:
        - scaled: (V, length); values, status: V lists of length strings.
    """

    names: list[str]
    groups: list[str]
    units: list[str]
    scaled: np.ndarray
    values: list[list[str]]
    status: list[list[str]]
    order: list[int]


def _display_order(names: list[str]) -> list[int]:
    rank = {n: i for i, (_, members) in enumerate(CLINICAL_GROUPS) for n in members}
    within = {n: j for _, members in CLINICAL_GROUPS for j, n in enumerate(members)}
    return sorted(range(len(names)), key=lambda i: (rank.get(names[i], len(CLINICAL_GROUPS)),
                                                    within.get(names[i], 0), names[i]))


def _fill_status(observed: np.ndarray) -> list[str]:
    seen = np.cumsum(observed) > 0
    return [MEASURED if o else (CARRIED if s else NORMAL) for o, s in zip(observed, seen)]


def variable_table(raw: np.ndarray, columns: list[str], length: int,
                   units: dict[str, str] | None = None) -> VariableTable:
    """The display table of one stay (see :class:`VariableTable`).

    Args:
        raw: the stay's discretized (not normalized) EHR.
        columns: the cohort's column names (``ehr_columns.json``).
        length: valid steps (``n_bins``).
        units: unit per variable (e.g. ``medcam_lab.ehr.ranges.VALID_RANGES``'s, in ``clean`` mode).

    Shape:
        - raw: (T, F) with T ≥ length.
    """
    units = units or {}
    groups = variable_groups(columns)
    group_of = {n: g for g, members in CLINICAL_GROUPS for n in members}
    steps = np.asarray(raw)[:length]
    order = _display_order([g.name for g in groups])
    scaled = np.full((len(groups), length), np.nan)
    values: list[list[str]] = []
    status: list[list[str]] = []
    for row, v in enumerate(order):
        g = groups[v]
        if g.mask_column is not None:
            status.append(_fill_status(steps[:, g.mask_column] > 0.5))
        else:
            status.append(["unknown"] * length)
        unit = units.get(g.name, "")
        if g.categories:
            block = steps[:, list(g.value_columns)]
            has = block.max(axis=1) > 0.5
            pos = block.argmax(axis=1)
            scaled[row] = np.where(has, pos / max(len(g.categories) - 1, 1), np.nan)
            values.append([g.categories[p] if h else "—" for p, h in zip(pos, has)])
        else:
            col = steps[:, g.value_columns[0]].astype(float)
            lo, hi = (np.nanmin(col), np.nanmax(col)) if length else (0.0, 0.0)
            scaled[row] = (col - lo) / (hi - lo) if hi > lo else np.full(length, 0.5)
            values.append([f"{x:.4g} {unit}".strip() for x in col])
    names = [groups[v].name for v in order]
    return VariableTable(names, [group_of.get(n, "other") for n in names], [units.get(n, "") for n in names],
                         scaled, values, status, order)


def _ehr_similarity(aligner: MedCAMAligner) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    def forward(ehr: Tensor, lengths: Tensor, z_cxr: Tensor) -> Tensor:
        _, last = aligner.ehr_encoder(ehr, lengths)
        z_ehr = F.normalize(aligner.ehr_proj(last), dim=-1)
        return (z_ehr * F.normalize(z_cxr, dim=-1)).sum(-1)

    return forward


def ehr_attributions(
    aligner: MedCAMAligner,
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
        n_steps: interpolation steps.
        batch_size: sequences attributed per call (bounds memory together with ``internal_batch_size``).
        internal_batch_size: forward batch inside one call (``None`` = all ``n_steps × batch`` at once).

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
