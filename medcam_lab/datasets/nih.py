"""NIH ChestX-ray14: 14 labels by exact token match, BenchX (MRM) patient-level split.

Access: public (NIH Clinical Center). Label file ``Data_Entry_2017_v2020.csv`` (or ``Data_Entry_2017.csv``,
optionally gzip-compressed); images ``images*/…/<Image Index>``. Labels: ``Finding Labels`` split at ``|``,
exact tokens ("No Finding" → all zeros; an unknown token is an error naming it). Split: the BenchX lists
shipped in ``medcam_lab/datasets/splits`` (train 78,468 / val 11,219 / test 22,433 images; patient-level).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from medcam_lab.datasets.base import XRayDataset, check_columns, read_split_ids, read_split_lists

__all__ = ["NIH_PATHOLOGIES", "nih_labels", "NIHDataset", "find_nih_table"]

NIH_PATHOLOGIES: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis", "Hernia",
    "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
)
NIH_TABLE_NAMES = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv.gz",
                   "Data_Entry_2017.csv.gz")


def find_nih_table(root: str | Path) -> Path:
    """The ``Data_Entry_2017*.csv[.gz]`` under ``root``."""
    for name in NIH_TABLE_NAMES:
        if (Path(root) / name).is_file():
            return Path(root) / name
    raise FileNotFoundError(f"no Data_Entry_2017*.csv[.gz] under {root} (is it the NIH ChestX-ray14 root?)")


def _split_map() -> dict[str, str]:
    out: dict[str, str] = {}
    for split in ("train", "val", "test"):
        out.update(dict.fromkeys(read_split_ids(f"benchx_nih_{split}"), split))
    return out


def nih_labels(table_path: str | Path, split: str = "benchx", split_lists: str | Path | None = None) -> pd.DataFrame:
    """Labels without images: index ``Image Index``; 14 label columns (1.0/0.0) + ``patient_id``,
    ``view``, ``split``.

    Args:
        table_path: ``Data_Entry_2017*.csv[.gz]``.
        split: ``"benchx"`` (the shipped BenchX lists; an image in none of them is ``"unassigned"``) or
            ``"official"`` (``trainval`` / ``test`` from the official NIH lists).
        split_lists: a folder with one's own ``train.txt`` / ``val.txt`` / ``test.txt``
            (:func:`medcam_lab.datasets.base.read_split_lists`), used instead of ``split``; an image in none
            of them is ``"unassigned"``.

    Raises:
        ValueError: on missing columns, duplicated image ids or a finding token outside the 15 known ones.
    """
    frame = pd.read_csv(table_path)
    check_columns(frame, ["Image Index", "Finding Labels", "Patient ID", "View Position"], table_path,
                  "NIH Data_Entry_2017")
    if frame["Image Index"].duplicated().any():
        first = frame.loc[frame["Image Index"].duplicated(), "Image Index"].iloc[0]
        raise ValueError(f"{table_path}: duplicated Image Index {first}")
    tokens = frame["Finding Labels"].fillna("").str.split("|")
    known = set(NIH_PATHOLOGIES) | {"No Finding"}
    unknown = sorted({t for row in tokens for t in row} - known)
    if unknown:
        raise ValueError(f"{table_path}: unknown finding label(s) {unknown}; known: {sorted(known)}")
    token_sets = tokens.map(set)
    out = pd.DataFrame({name: token_sets.map(lambda s, n=name: float(n in s)).to_numpy()
                        for name in NIH_PATHOLOGIES}, index=pd.Index(frame["Image Index"], name="image_id"))
    out["patient_id"] = frame["Patient ID"].astype(str).to_numpy()
    out["view"] = frame["View Position"].to_numpy()
    if split_lists:
        out["split"] = out.index.map(read_split_lists(split_lists)).fillna("unassigned").to_numpy()
    elif split == "benchx":
        out["split"] = out.index.map(_split_map()).fillna("unassigned").to_numpy()
    elif split == "official":
        test = set(read_split_ids("nih_test_list"))
        out["split"] = np.where(out.index.isin(list(test)), "test", "trainval")
    else:
        raise ValueError(f"NIH split must be 'benchx' or 'official', got {split!r}")
    return out


class NIHDataset(XRayDataset):
    """NIH ChestX-ray14 images of one split, on the :mod:`medcam_lab.datasets.base` contract.

    Args:
        root: dataset root (``Data_Entry_2017*.csv`` and ``images*/``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"`` (BenchX split).
        transform: applied to the (H, W) uint8 image tensor.
        split_lists: a folder with one's own ``train.txt`` / ``val.txt`` / ``test.txt`` instead of BenchX's.
    """

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None,
                 split_lists: str | Path | None = None) -> None:
        root = Path(root)
        table = nih_labels(find_nih_table(root), split_lists=split_lists)
        if split != "all":
            table = table[table["split"] == split]
        index = {p.name: p for p in root.glob("images*/**/*.png")}
        paths = [index.get(name, root / "images" / name) for name in table.index]
        super().__init__(table, NIH_PATHOLOGIES, paths, transform)
