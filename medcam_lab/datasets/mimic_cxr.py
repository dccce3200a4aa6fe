"""MIMIC-CXR-JPG (v2.0.0 / v2.1.0): its official layout, and the dataset contract over it.

Access: PhysioNet credentialed (DUA: PhysioNet account, CITI training, signed agreement); the files stay on the
user's disk and nothing is downloaded. Cite Johnson, A. et al. "MIMIC-CXR-JPG, a large publicly available
database of labeled chest radiographs." arXiv:1901.07042 (2019).

Files read: ``mimic-cxr-2.0.0-metadata.csv.gz`` (one row per image, :func:`read_metadata`),
``mimic-cxr-2.0.0-chexpert.csv.gz`` (study-level labels: 1 / 0 / −1 uncertain / blank,
:func:`read_chexpert_table`), ``mimic-cxr-2.0.0-split.csv.gz`` and the images at
``files/p{first two digits}/p{subject_id}/s{study_id}/{dicom_id}.jpg`` (:func:`image_relpath`). Labels are mapped
by CheXpert's policies (:func:`medcam_lab.datasets.chexpert.apply_label_policy`; default U-zeros, blank → 0:
MedFuse/MedMod practice), the same for ``medcam-lab prepare`` and the dataset class.

- :class:`MIMICCXRDataset` (``cohort=None``): all frontal images (``views``) of the official release, with
  the official patient-level split (``mimic-cxr-2.0.0-split.csv.gz``: train / validate → ``val`` / test).
- :class:`MIMICCXRDataset` (``cohort=<dir>``): the EHR-paired cohort written by ``medcam-lab prepare``
  (its 60/20/20 patient-level split, its image cache; opened by :mod:`medcam_lab.data.cohort`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medcam_lab.config import LABELS_CHEXPERT14
from medcam_lab.datasets.base import XRayDataset
from medcam_lab.datasets.chexpert import apply_label_policy
from medcam_lab.datasets.mimic_iv import MimicLayoutError, read_header, read_table

__all__ = ["MIMIC_PATHOLOGIES", "find_table", "image_relpath", "read_metadata", "read_chexpert_table",
           "read_chexpert_labels", "study_datetime", "mimic_cxr_labels", "MIMICCXRDataset"]

MIMIC_PATHOLOGIES: tuple[str, ...] = LABELS_CHEXPERT14

METADATA_COLUMNS = ["dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime"]


def find_table(root: Path, stem: str) -> Path:
    """``mimic-cxr-2.0.0-<stem>.csv.gz`` (or 2.1.0, or uncompressed) under ``root``."""
    for version in ("2.0.0", "2.1.0"):
        for suffix in (".csv.gz", ".csv"):
            path = root / f"mimic-cxr-{version}-{stem}{suffix}"
            if path.exists():
                return path
    raise MimicLayoutError(f"MIMIC-CXR-JPG file mimic-cxr-2.0.0-{stem}.csv.gz not found under {root}")


def study_datetime(study_date: pd.Series, study_time: pd.Series) -> pd.Series:
    """StudyDate (YYYYMMDD) + StudyTime (HHMMSS.fff, leading zeros lost in the CSV) → datetime64.

    The fraction of a second is dropped, as MedFuse does; the time is zero-padded to six digits.
    """
    date = study_date.astype("int64").astype(str)
    whole_seconds = np.floor(study_time.astype(float)).astype("int64")
    time = whole_seconds.astype(str).str.zfill(6)
    return pd.to_datetime(date + time, format="%Y%m%d%H%M%S", errors="coerce")


def image_relpath(subject_id: pd.Series, study_id: pd.Series, dicom_id: pd.Series) -> pd.Series:
    """``files/pNN/p<subject>/s<study>/<dicom_id>.jpg`` for each row."""
    subj = subject_id.astype("int64").astype(str)
    study = study_id.astype("int64").astype(str)
    return "files/p" + subj.str[:2] + "/p" + subj + "/s" + study + "/" + dicom_id + ".jpg"


def read_metadata(root: str | Path) -> pd.DataFrame:
    """Image metadata with ``study_datetime`` and ``image_path`` (relative to ``root``) added."""
    root = Path(root)
    meta = read_table(find_table(root, "metadata"), METADATA_COLUMNS)
    meta["dicom_id"] = meta["dicom_id"].astype(str)
    meta["study_datetime"] = study_datetime(meta["StudyDate"], meta["StudyTime"])
    bad = meta["study_datetime"].isna()
    if bad.any():
        first = meta.loc[bad].iloc[0]
        raise MimicLayoutError(
            f"{int(bad.sum())} metadata row(s) with an unparseable StudyDate/StudyTime; first: dicom_id "
            f"{first['dicom_id']} StudyDate={first['StudyDate']!r} StudyTime={first['StudyTime']!r}"
        )
    meta["image_path"] = image_relpath(meta["subject_id"], meta["study_id"], meta["dicom_id"])
    return meta


def read_chexpert_table(path: str | Path) -> pd.DataFrame:
    """The study-level CheXpert table as floats: 1, 0, −1 (uncertain), NaN (blank); one row per study.

    Columns: ``subject_id``, ``study_id`` and the 14 labels (:data:`MIMIC_PATHOLOGIES`). Any other column, a
    value other than 1 / 0 / −1 / blank, or a study listed twice is an error naming the file.
    """
    path = Path(path)
    labels = read_table(path, ["subject_id", "study_id", *LABELS_CHEXPERT14])
    extra = sorted(set(read_header(path)) - set(labels.columns))
    if extra:
        raise MimicLayoutError(f"{path}: unknown column(s) {extra}")
    values = labels[list(LABELS_CHEXPERT14)].apply(pd.to_numeric, errors="coerce")
    unexpected = ~(values.isna() | values.isin([-1.0, 0.0, 1.0]))
    if unexpected.any().any():
        col = unexpected.any().idxmax()
        raise MimicLayoutError(f"{path}: column {col!r} holds values other than 1, 0, -1 or blank")
    labels[list(LABELS_CHEXPERT14)] = values
    dup = labels["study_id"].duplicated()
    if dup.any():
        raise MimicLayoutError(f"{path}: study_id {labels.loc[dup, 'study_id'].iloc[0]} appears twice")
    return labels


def read_chexpert_labels(root: str | Path) -> pd.DataFrame:
    """:func:`read_chexpert_table` of the release under ``root``."""
    return read_chexpert_table(find_table(Path(root), "chexpert"))


def mimic_cxr_labels(table_path: str | Path, uncertain: str | Mapping[str, str] = "zeros", blank: str = "zeros",
                     metadata_path: str | Path | None = None, views: tuple[str, ...] = ("AP", "PA"),
                     split_path: str | Path | None = None) -> pd.DataFrame:
    """Labels without images.

    Without ``metadata_path``: index ``study_id`` (labels are study-level), 14 label columns +
    ``patient_id``. With it: index ``dicom_id`` (one row per image of the given ``views``), plus ``view``,
    ``study_id`` and, with ``split_path``, the official ``split`` (``validate`` renamed ``val``).
    """
    labels = read_chexpert_table(table_path)
    out = apply_label_policy(labels[list(LABELS_CHEXPERT14)], uncertain, blank)
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
        root = Path(root)
        table = mimic_cxr_labels(find_table(root, "chexpert"), uncertain, blank, find_table(root, "metadata"), views,
                                 find_table(root, "split"))
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
