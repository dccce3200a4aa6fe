"""NIH ChestX-ray14: 14 labels by exact token match, BenchX (MRM) patient-level split.

Access: public (NIH Clinical Center). Label file ``Data_Entry_2017_v2020.csv`` (or ``Data_Entry_2017.csv``,
optionally gzip-compressed); images ``images*/…/<Image Index>``. Labels: ``Finding Labels`` split at ``|``,
exact tokens ("No Finding" → all zeros; an unknown token is an error naming it). Splits: ``"benchx"`` (the
paper's protocol, the default): the BenchX lists shipped in ``medcam_lab/datasets/splits`` (train 78,468 / val
11,219 / test 22,433 images; patient-level); ``"official"``: the official ``test_list.txt`` is test and the
official ``train_val_list.txt`` is split by patient into train and val (**Decision:** 1/8 of its patients to
val, ≈ 70/10/20 overall, seeded), the lists read next to the label table as the dataset ships them (the
generated demo set ships its own), else the copies shipped in ``medcam_lab/datasets/splits``.
Cite Wang, X. et al. "ChestX-ray8: Hospital-scale chest X-ray database and benchmarks on weakly-supervised
classification and localization of common thorax diseases." CVPR 2017.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from medcam_lab.datasets.base import XRayDataset, check_columns, read_split_ids, read_split_lists
from medcam_lab.datasets.patient_split import patient_split

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


#: The split protocols of :func:`nih_labels` (``split``) and :class:`NIHDataset` (``split_source``).
SPLIT_SOURCES = ("benchx", "official")
#: Share of the official train/val list's patients that ``split="official"`` puts in val.
OFFICIAL_VAL_SHARE = 1 / 8


def _official_list(table_path: Path, name: str) -> set[str]:
    """The official list ``name`` next to the label table, else the shipped copy."""
    beside = table_path.parent / f"{name}.txt"
    if beside.is_file():
        return set(beside.read_text().split())
    return set(read_split_ids(f"nih_{name}"))


def _official_split(frame: pd.DataFrame, table_path: Path, seed: int) -> np.ndarray:
    """test / train / val (patients of the train/val list, 1/8 to val, seeded) / unassigned per row."""
    test, trainval = _official_list(table_path, "test_list"), _official_list(table_path, "train_val_list")
    ids = frame["Image Index"]
    split = np.where(ids.isin(test), "test", np.where(ids.isin(trainval), "trainval", "unassigned")).astype(object)
    tv = split == "trainval"
    inner = patient_split(frame.loc[tv, "Patient ID"], (1 - OFFICIAL_VAL_SHARE, 0.0, OFFICIAL_VAL_SHARE), seed)
    split[tv] = np.where(inner == "test", "val", inner)
    return split


def nih_labels(table_path: str | Path, split: str = "benchx", split_lists: str | Path | None = None,
               seed: int = 0) -> pd.DataFrame:
    """Labels without images: index ``Image Index``; 14 label columns (1.0/0.0) + ``patient_id``,
    ``view``, ``split``.

    Args:
        table_path: ``Data_Entry_2017*.csv[.gz]``.
        split: ``"benchx"`` (the shipped BenchX lists) or ``"official"`` (see the module docstring); an image
            in none of the lists is ``"unassigned"``.
        split_lists: a folder with one's own ``train.txt`` / ``val.txt`` / ``test.txt``
            (:func:`medcam_lab.datasets.base.read_split_lists`), used instead of ``split``; an image in none
            of them is ``"unassigned"``.
        seed: seed of the ``"official"`` val carve-out.

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
        out["split"] = _official_split(frame, Path(table_path), seed)
    else:
        raise ValueError(f"NIH split must be one of {list(SPLIT_SOURCES)}, got {split!r}")
    return out


class NIHDataset(XRayDataset):
    """NIH ChestX-ray14 images of one split, on the :mod:`medcam_lab.datasets.base` contract.

    Args:
        root: dataset root (``Data_Entry_2017*.csv`` and ``images*/``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        transform: applied to the (H, W) uint8 image tensor.
        split_lists: a folder with one's own ``train.txt`` / ``val.txt`` / ``test.txt`` instead of the lists.
        split_source: ``"benchx"`` or ``"official"`` (:func:`nih_labels`' ``split``).
        seed: seed of the ``"official"`` val carve-out.
    """

    def __init__(self, root: str | Path, split: str = "train", transform: Callable | None = None,
                 split_lists: str | Path | None = None, split_source: str = "benchx", seed: int = 0) -> None:
        root = Path(root)
        table = nih_labels(find_nih_table(root), split=split_source, split_lists=split_lists, seed=seed)
        if split != "all":
            table = table[table["split"] == split]
        index = {p.name: p for p in root.glob("images*/**/*.png")}
        paths = [index.get(name, root / "images" / name) for name in table.index]
        super().__init__(table, NIH_PATHOLOGIES, paths, transform)
