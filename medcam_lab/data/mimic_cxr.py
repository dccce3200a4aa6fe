"""Reading MIMIC-CXR-JPG (v2.0.0 / v2.1.0) from its official layout.

MIMIC-CXR-JPG is distributed by PhysioNet under a credentialed-access data use agreement (PhysioNet
account, CITI training, signed DUA); the files stay on the user's disk and nothing is downloaded here.
Citation: Johnson, A. et al. "MIMIC-CXR-JPG, a large publicly available database of labeled chest
radiographs." arXiv:1901.07042 (2019).

Files read: ``mimic-cxr-2.0.0-metadata.csv.gz`` (one row per image), ``mimic-cxr-2.0.0-chexpert.csv.gz``
(study-level labels: 1 / 0 / −1 uncertain / blank) and the images at
``files/p{first two digits}/p{subject_id}/s{study_id}/{dicom_id}.jpg``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medcam_lab.config import LABELS_CHEXPERT14
from medcam_lab.data.mimic_iv import MimicLayoutError, read_table

METADATA_COLUMNS = ["dicom_id", "subject_id", "study_id", "ViewPosition", "StudyDate", "StudyTime"]


def _find(root: Path, stem: str) -> Path:
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
    meta = read_table(_find(root, "metadata"), METADATA_COLUMNS)
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


def read_chexpert_labels(root: str | Path) -> pd.DataFrame:
    """Study-level CheXpert labels as floats: 1, 0, −1 (uncertain), NaN (blank); one row per study."""
    path = _find(Path(root), "chexpert")
    labels = read_table(path, ["subject_id", "study_id", *LABELS_CHEXPERT14])
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


def apply_label_policy(raw: pd.DataFrame, uncertain: str = "zeros", blank: str = "zeros") -> pd.DataFrame:
    """Map raw CheXpert values to training labels (NaN = unknown, excluded per label).

    Args:
        raw: frame of label columns with 1 / 0 / −1 / NaN.
        uncertain: ``zeros`` (−1 → 0, MedFuse/MedMod), ``ones`` (−1 → 1) or ``ignore`` (−1 → NaN).
        blank: ``zeros`` (NaN → 0, MedFuse/MedMod) or ``ignore`` (stays NaN).
    """
    policies = {"zeros": 0.0, "ones": 1.0, "ignore": np.nan}
    if uncertain not in policies:
        raise ValueError(f"uncertain policy must be one of {sorted(policies)}, got {uncertain!r}")
    if blank not in ("zeros", "ignore"):
        raise ValueError(f"blank policy must be 'zeros' or 'ignore', got {blank!r}")
    out = raw.astype(float).copy()
    out = out.mask(raw == -1.0, policies[uncertain])
    if blank == "zeros":
        out = out.mask(raw.isna(), 0.0)
    return out
