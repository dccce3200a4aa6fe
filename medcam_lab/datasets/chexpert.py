"""CheXpert (v1.0 / v1.0-small): official train / valid / test, frontal filter, uncertain-label policies.

Access: Stanford AIMI research-use agreement (registration). Label files: ``train.csv`` (223,414 rows),
``valid.csv`` (234 images, radiologist labels), the CheXlocalize ``test.csv`` (668). Values: 1 positive,
0 negative, −1 uncertain, blank not mentioned.

Policies (each explicit, recorded in the data card):
- ``uncertain``: ``"zeros"`` (−1 → 0), ``"ones"`` (−1 → 1), ``"ignore"`` (−1 → NaN, masked), or a dict
  ``{label: policy}`` (per-label; labels not named use ``"zeros"``), e.g. CheXpert's U-ones for Atelectasis
  and Edema.
- ``blank``: ``"zeros"`` (not mentioned → 0, MedFuse/MedMod and BenchX practice) or ``"ignore"`` (NaN).
  With ``"ignore"``, a "No Finding" = 1 row sets the other blank labels to 0 except Support Devices.
- ``frontal_only``: keep ``Frontal/Lateral == "Frontal"`` and ``AP/PA`` in ``views`` (default AP, PA; the
  file also holds 16 LL and 1 RL frontals).

**Decision (split):** the paper's 99.6 / 0.3 / 0.1 % equals train 223,414 / test 668 / valid 234 of 224,316;
we use the official ``train`` as train, the 668-image official test set as ``val`` and the 234-image official
valid set as ``test`` (the split column keeps the official name in ``official_split``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from medcam_lab.datasets.base import XRayDataset, check_columns

__all__ = ["CHEXPERT_PATHOLOGIES", "chexpert_labels", "apply_label_policy", "CheXpertDataset"]

CHEXPERT_PATHOLOGIES: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
)
_META_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
_POLICY_VALUES = {"zeros": 0.0, "ones": 1.0, "ignore": np.nan}
OFFICIAL_TO_SPLIT = {"train": "train", "test": "val", "valid": "test"}


def apply_label_policy(raw: pd.DataFrame, uncertain: str | Mapping[str, str] = "zeros",
                       blank: str = "zeros") -> pd.DataFrame:
    """Map raw CheXpert-labeler values (1/0/−1/NaN) of label columns to 1/0/NaN: the one label policy of
    CheXpert and MIMIC-CXR-JPG (``medcam-lab prepare``, :func:`chexpert_labels`,
    :func:`~medcam_lab.datasets.mimic_cxr.mimic_cxr_labels`).

    Args:
        raw: label columns with 1 / 0 / −1 (uncertain) / NaN (blank).
        uncertain: ``zeros`` (−1 → 0, MedFuse/MedMod), ``ones`` (−1 → 1), ``ignore`` (−1 → NaN), or
            ``{label: policy}`` (labels not named use ``zeros``).
        blank: ``zeros`` (NaN → 0, MedFuse/MedMod) or ``ignore`` (stays NaN, except that a "No Finding" = 1
            row sets the other blank labels to 0, Support Devices excepted).

    Raises:
        ValueError: an unknown policy, or a per-label policy naming a column ``raw`` does not have.
    """
    if isinstance(uncertain, str):
        per_label = dict.fromkeys(raw.columns, uncertain)
    else:
        unknown = sorted(set(uncertain) - set(raw.columns))
        if unknown:
            raise ValueError(f"uncertain policy names unknown label(s) {unknown}; labels: {list(raw.columns)}")
        per_label = {c: uncertain.get(c, "zeros") for c in raw.columns}
    bad = sorted({p for p in per_label.values() if p not in _POLICY_VALUES})
    if bad:
        raise ValueError(f"uncertain policy must be one of {sorted(_POLICY_VALUES)} (or a per-label dict), got {bad}")
    if blank not in ("zeros", "ignore"):
        raise ValueError(f"blank policy must be 'zeros' or 'ignore', got {blank!r}")
    out = raw.astype(float).copy()
    for col, policy in per_label.items():
        out.loc[raw[col] == -1.0, col] = _POLICY_VALUES[policy]
    if blank == "zeros":
        out = out.mask(raw.isna(), 0.0)
    elif "No Finding" in raw.columns:
        normal = raw["No Finding"] == 1.0
        for col in raw.columns:
            if col not in ("No Finding", "Support Devices"):
                out.loc[normal & raw[col].isna(), col] = 0.0
    return out


def chexpert_labels(table_path: str | Path, uncertain: str | Mapping[str, str] = "zeros", blank: str = "zeros",
                    frontal_only: bool = True, views: tuple[str, ...] = ("AP", "PA")) -> pd.DataFrame:
    """Labels without images: index = image path without the ``CheXpert-v1.0[-small]/`` prefix; the 14
    label columns (1/0/NaN) + ``patient_id``, ``study_id``, ``view``, ``sex``, ``age``, ``official_split``,
    ``split``.

    Raises:
        ValueError: on missing or unknown columns, or label values other than 1, 0, −1, blank.
    """
    frame = pd.read_csv(table_path)
    check_columns(frame, [*_META_COLUMNS, *CHEXPERT_PATHOLOGIES], table_path, "CheXpert")
    extra = sorted(set(frame.columns) - set(_META_COLUMNS) - set(CHEXPERT_PATHOLOGIES))
    if extra:
        raise ValueError(f"{table_path}: unknown column(s) {extra} (a different CheXpert version?)")
    raw = frame[list(CHEXPERT_PATHOLOGIES)].apply(pd.to_numeric, errors="coerce")
    odd = ~(raw.isna() | raw.isin([-1.0, 0.0, 1.0])) | (raw.isna() & frame[list(CHEXPERT_PATHOLOGIES)].notna())
    if odd.any().any():
        col = odd.any().idxmax()
        raise ValueError(f"{table_path}: column {col!r} holds values other than 1, 0, -1 or blank")
    path = frame["Path"].astype(str).str.replace(r"^CheXpert-v1\.0(-small)?/", "", regex=True)
    parts = path.str.extract(r"^(?P<official>train|valid|test)/(?P<patient>patient\d+)/(?P<study>study\d+)/")
    if parts["official"].isna().any():
        raise ValueError(f"{table_path}: Path {frame['Path'][parts['official'].isna()].iloc[0]!r} is not "
                         "<split>/patientNNNNN/studyN/<view>.jpg")
    keep = np.ones(len(frame), dtype=bool)
    if frontal_only:
        keep = (frame["Frontal/Lateral"] == "Frontal").to_numpy() & frame["AP/PA"].isin(views).to_numpy()
    out = apply_label_policy(raw, uncertain, blank)
    out.index = pd.Index(path, name="image_id")
    out["patient_id"] = parts["patient"].to_numpy()
    out["study_id"] = (parts["patient"] + "/" + parts["study"]).to_numpy()
    out["view"] = frame["AP/PA"].where(frame["Frontal/Lateral"] == "Frontal", "Lateral").to_numpy()
    out["sex"] = frame["Sex"].to_numpy()
    out["age"] = frame["Age"].to_numpy()
    out["official_split"] = parts["official"].to_numpy()
    out["split"] = parts["official"].map(OFFICIAL_TO_SPLIT).to_numpy()
    return out.loc[keep]


class CheXpertDataset(XRayDataset):
    """CheXpert images on the :mod:`medcam_lab.datasets.base` contract.

    Args:
        root: folder holding ``train.csv`` / ``valid.csv`` / ``test.csv`` and ``train/``, ``valid/``, ``test/``.
        split: ``"train"``, ``"val"`` (official test, 668), ``"test"`` (official valid, 234).
        uncertain, blank, frontal_only: as :func:`chexpert_labels`.
    """

    def __init__(self, root: str | Path, split: str = "train", uncertain: str | Mapping[str, str] = "zeros",
                 blank: str = "zeros", frontal_only: bool = True, transform: Callable | None = None) -> None:
        root = Path(root)
        official = {v: k for k, v in OFFICIAL_TO_SPLIT.items()}.get(split)
        if official is None:
            raise ValueError(f"CheXpert split must be one of {sorted(OFFICIAL_TO_SPLIT.values())}, got {split!r}")
        csv = root / f"{official}.csv"
        if not csv.is_file():
            raise FileNotFoundError(f"{csv} missing (CheXpert root layout: train.csv, valid.csv, test.csv)")
        table = chexpert_labels(csv, uncertain, blank, frontal_only)
        super().__init__(table, CHEXPERT_PATHOLOGIES, [root / p for p in table.index], transform)
