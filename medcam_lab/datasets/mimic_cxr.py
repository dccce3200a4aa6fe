"""MIMIC-CXR-JPG on the dataset contract: the EHR-paired cohort and the all-frontal image set.

Access: PhysioNet credentialed (DUA); nothing is downloaded. Labels are the study-level
``mimic-cxr-2.0.0-chexpert.csv.gz`` values (1 / 0 / −1 / blank), 14 labels including "No Finding",
mapped by the same policies as CheXpert (default U-zeros, blank → 0: MedFuse/MedMod practice).

- :class:`MIMICCXRDataset` (``cohort=None``): all frontal images (``views``) of the official release, with
  the official patient-level split (``mimic-cxr-2.0.0-split.csv.gz``: train / validate → ``val`` / test).
- :class:`MIMICCXRDataset` (``cohort=<dir>``): the EHR-paired cohort written by ``medcam-lab prepare``
  (its 60/20/20 patient-level split, its image cache).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medcam_lab.config import LABELS_CHEXPERT14
from medcam_lab.datasets.base import XRayDataset, check_columns
from medcam_lab.datasets.chexpert import apply_uncertain_policy

__all__ = ["MIMIC_PATHOLOGIES", "mimic_cxr_labels", "MIMICCXRDataset"]

MIMIC_PATHOLOGIES: tuple[str, ...] = LABELS_CHEXPERT14


def mimic_cxr_labels(table_path: str | Path, uncertain: str | Mapping[str, str] = "zeros", blank: str = "zeros",
                     metadata_path: str | Path | None = None, views: tuple[str, ...] = ("AP", "PA"),
                     split_path: str | Path | None = None) -> pd.DataFrame:
    """Labels without images.

    Without ``metadata_path``: index ``study_id`` (labels are study-level), 14 label columns +
    ``patient_id``. With it: index ``dicom_id`` (one row per image of the given ``views``), plus ``view``,
    ``study_id`` and, with ``split_path``, the official ``split`` (``validate`` renamed ``val``).
    """
    labels = pd.read_csv(table_path)
    check_columns(labels, ["subject_id", "study_id", *LABELS_CHEXPERT14], table_path, "MIMIC-CXR-JPG chexpert")
    extra = sorted(set(labels.columns) - {"subject_id", "study_id", *LABELS_CHEXPERT14})
    if extra:
        raise ValueError(f"{table_path}: unknown column(s) {extra}")
    if labels["study_id"].duplicated().any():
        first = labels.loc[labels["study_id"].duplicated(), "study_id"].iloc[0]
        raise ValueError(f"{table_path}: duplicated study_id {first}")
    raw = labels[list(LABELS_CHEXPERT14)].apply(pd.to_numeric, errors="coerce")
    if (~(raw.isna() | raw.isin([-1.0, 0.0, 1.0]))).any().any():
        raise ValueError(f"{table_path}: label values other than 1, 0, -1 or blank")
    out = apply_uncertain_policy(raw, uncertain, blank)
    out.index = pd.Index(labels["study_id"].astype("int64"), name="study_id")
    out["patient_id"] = labels["subject_id"].astype(str).to_numpy()
    if metadata_path is None:
        return out
    meta = pd.read_csv(metadata_path, usecols=["dicom_id", "subject_id", "study_id", "ViewPosition"])
    meta = meta[meta["ViewPosition"].isin(views)]
    joined = meta.join(out.drop(columns="patient_id"), on="study_id", how="inner")
    result = joined.set_index("dicom_id")[list(LABELS_CHEXPERT14)]
    result.index.name = "image_id"
    result["patient_id"] = joined["subject_id"].astype(str).to_numpy()
    result["study_id"] = joined["study_id"].to_numpy()
    result["view"] = joined["ViewPosition"].to_numpy()
    if split_path is not None:
        split = pd.read_csv(split_path, usecols=["dicom_id", "split"]).set_index("dicom_id")["split"]
        result["split"] = result.index.map(split).fillna("unassigned").str.replace("validate", "val").to_numpy()
    return result


class _CachedImages:
    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def __call__(self, row: int) -> np.ndarray:
        return np.array(self.images[row])  # a writable copy of the memory-mapped row


class MIMICCXRDataset(XRayDataset):
    """MIMIC-CXR-JPG images on the :mod:`medcam_lab.datasets.base` contract.

    Args:
        root: MIMIC-CXR-JPG root (``mimic-cxr-2.0.0-*.csv.gz`` and ``files/``); unused with ``cohort``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        cohort: a prepared cohort directory → the EHR-paired images (from its cache) and its split.
        views, uncertain, blank: as :func:`mimic_cxr_labels`.
    """

    def __init__(self, root: str | Path | None = None, split: str = "train", cohort: str | Path | None = None,
                 views: tuple[str, ...] = ("AP", "PA"), uncertain: str | Mapping[str, str] = "zeros",
                 blank: str = "zeros", transform: Callable | None = None) -> None:
        if cohort is not None:
            from medcam_lab.data.cohort import load_cohort

            c = load_cohort(cohort)
            table = c.pairs.set_index("dicom_id")
            rows = np.arange(len(table)) if split == "all" else np.flatnonzero(table["split"].to_numpy() == split)
            table = table.iloc[rows]
            table.insert(len(table.columns), "cache_row", rows)
            cache = _CachedImages(c.images)
            super().__init__(table, MIMIC_PATHOLOGIES, [str(r) for r in rows], transform, check_files=False,
                             reader=lambda p: cache(int(str(p))))
            return
        if root is None:
            raise ValueError("give the MIMIC-CXR-JPG root or a prepared cohort directory")
        from medcam_lab.data.mimic_cxr import _find, image_relpath

        root = Path(root)
        table = mimic_cxr_labels(_find(root, "chexpert"), uncertain, blank, _find(root, "metadata"), views,
                                 _find(root, "split"))
        if split != "all":
            table = table[table["split"] == split]
        ids = pd.Series(table.index, index=table.index)
        rel = image_relpath(table["patient_id"].astype("int64"), table["study_id"], ids)
        super().__init__(table, MIMIC_PATHOLOGIES, [root / p for p in rel], transform)

    def __getitem__(self, idx: int) -> dict:
        item = super().__getitem__(idx)
        if not torch.is_tensor(item["image"]):
            item["image"] = torch.as_tensor(item["image"])
        return item
