"""VinDr-CXR: 14 local labels from the box annotations, radiologists merged by a configurable rule,
BenchX split.

Access: PhysioNet (credentialed, VinDr-CXR 1.0.0) or the Kaggle VinBigData competition ``train.csv``.
Label files: PhysioNet ``annotations/annotations_{train,test}.csv`` or Kaggle ``train.csv`` (one row per
image × radiologist × box: ``image_id``, ``rad_id``, ``class_name``, box). A finding is positive for an
image if the merge rule holds over the radiologists who annotated it: ``"union"`` (≥ 1, BenchX and
torchxrayvision; the default), ``"majority"`` (more than half) or ``"all"``. "No finding" rows give
all-zero images. Split: the BenchX lists (train 12,000 / val 3,000 from the official training set, test =
the official 3,000 test images). Images: DICOM, converted by :mod:`medcam_lab.datasets.dicom`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from medcam_lab.datasets.base import XRayDataset, check_columns, read_gray_image, read_split_ids
from medcam_lab.datasets.dicom import DicomReadError, read_dicom_uint8

__all__ = ["VINDR_PATHOLOGIES", "VINDR_CLASS_NAMES", "vindr_labels", "VinDrDataset"]

#: BenchX label names (alphabetical) → the class_name in the annotation files.
VINDR_CLASS_NAMES: dict[str, str] = {
    "Aortic enlargement": "Aortic enlargement", "Atelectasis": "Atelectasis", "Calcification": "Calcification",
    "Cardiomegaly": "Cardiomegaly", "Consolidation": "Consolidation", "Effusion": "Pleural effusion",
    "ILD": "ILD", "Infiltration": "Infiltration", "Lesion": "Other lesion", "Lung Opacity": "Lung Opacity",
    "Nodule/Mass": "Nodule/Mass", "Pleural_Thickening": "Pleural thickening", "Pneumothorax": "Pneumothorax",
    "Pulmonary Fibrosis": "Pulmonary fibrosis",
}
VINDR_PATHOLOGIES: tuple[str, ...] = tuple(VINDR_CLASS_NAMES)
NO_FINDING = "No finding"
MERGE_RULES = ("union", "majority", "all")


def _split_map() -> dict[str, str]:
    out: dict[str, str] = {}
    for split in ("train", "val", "test"):
        out.update(dict.fromkeys(read_split_ids(f"benchx_vindr_{split}"), split))
    return out


def vindr_labels(table_path: str | Path, merge: str = "union", extra_tables: tuple[str | Path, ...] = ()
                 ) -> pd.DataFrame:
    """Labels without images: index ``image_id``; 14 label columns (1/0) + ``n_radiologists``, ``split``.

    Args:
        table_path: box annotations (PhysioNet ``annotations_*.csv`` or Kaggle ``train.csv``).
        merge: ``"union"``, ``"majority"`` or ``"all"`` over each image's radiologists.
        extra_tables: more annotation files to concatenate (e.g. ``annotations_test.csv``).

    Raises:
        ValueError: on missing columns, an unknown merge rule, or a class name outside the 22 local labels
            + "No finding" of VinDr-CXR (global labels never appear in box files).
    """
    if merge not in MERGE_RULES:
        raise ValueError(f"merge must be one of {MERGE_RULES}, got {merge!r}")
    frames = []
    for path in (table_path, *extra_tables):
        frame = pd.read_csv(path)
        check_columns(frame, ["image_id", "rad_id", "class_name"], path, "VinDr-CXR box annotation")
        frames.append(frame[["image_id", "rad_id", "class_name"]])
    boxes = pd.concat(frames, ignore_index=True)
    local = {"Clavicle fracture", "Edema", "Emphysema", "Enlarged PA", "Lung cavity", "Lung cyst",
             "Mediastinal shift", "Rib fracture", *VINDR_CLASS_NAMES.values(), NO_FINDING}
    unknown = sorted(set(boxes["class_name"].astype(str)) - local)
    if unknown:
        raise ValueError(f"{table_path}: unknown class_name(s) {unknown}")
    n_rad = boxes.groupby("image_id")["rad_id"].nunique()
    marks = boxes.drop_duplicates(["image_id", "rad_id", "class_name"])
    votes = pd.crosstab(marks["image_id"], marks["class_name"]).reindex(index=n_rad.index, fill_value=0)
    if merge == "union":
        need = pd.Series(1, index=n_rad.index)
    elif merge == "majority":
        need = n_rad // 2 + 1
    else:
        need = n_rad
    out = pd.DataFrame(index=pd.Index(n_rad.index, name="image_id"))
    for label, class_name in VINDR_CLASS_NAMES.items():
        count = votes[class_name] if class_name in votes.columns else pd.Series(0, index=n_rad.index)
        out[label] = (count >= need).astype(float).to_numpy()
    out["n_radiologists"] = n_rad.to_numpy()
    out["split"] = out.index.map(_split_map()).fillna("unassigned").to_numpy()
    return out


def _read_vindr_image(path: Path) -> np.ndarray:
    """DICOM through the BenchX recipe, PNG/JPG (already converted) as 8-bit grayscale."""
    return read_dicom_uint8(path) if path.suffix.lower() in (".dicom", ".dcm") else read_gray_image(path)


class VinDrDataset(XRayDataset):
    """VinDr-CXR images on the :mod:`medcam_lab.datasets.base` contract.

    Args:
        root: PhysioNet layout (``annotations/annotations_{train,test}.csv``, ``train/``, ``test/`` with
            ``<image_id>.dicom``) or a folder of converted ``<image_id>.png``.
        split: ``"train"``, ``"val"``, ``"test"`` (BenchX).
        merge: radiologist merge rule.
        verify_dicoms: decode every DICOM once at construction; unreadable ones are dropped and listed in
            ``skipped["unreadable DICOM"]`` (slow on the full set; without it a bad file raises on access).
    """

    def __init__(self, root: str | Path, split: str = "train", merge: str = "union",
                 transform: Callable | None = None, verify_dicoms: bool = False) -> None:
        root = Path(root)
        ann = root / "annotations"
        tables = [p for p in (ann / "annotations_train.csv", ann / "annotations_test.csv") if p.is_file()]
        if not tables:
            raise FileNotFoundError(f"{ann}/annotations_train.csv missing (VinDr-CXR 1.0.0 PhysioNet layout)")
        table = vindr_labels(tables[0], merge, tuple(tables[1:]))
        table = table[table["split"] == split]
        folder = "test" if split == "test" else "train"
        paths = []
        for image_id in table.index:
            candidates = [root / folder / f"{image_id}.dicom", root / folder / f"{image_id}.png",
                          root / f"{image_id}.png"]
            paths.append(next((p for p in candidates if p.is_file()), candidates[0]))
        super().__init__(table, VINDR_PATHOLOGIES, paths, transform, reader=_read_vindr_image)
        if verify_dicoms:
            bad = []
            for i, path in enumerate(self.csv["path"]):
                try:
                    if path.endswith((".dicom", ".dcm")):
                        read_dicom_uint8(path)
                except DicomReadError:
                    bad.append(i)
            if bad:
                self.skipped["unreadable DICOM"] = self.csv["image_id"].iloc[bad].astype(str).tolist()
                keep = np.setdiff1d(np.arange(len(self.labels)), bad)
                self.labels = self.labels[keep]
                self.csv = self.csv.iloc[keep].reset_index(drop=True)
