"""NIH ChestX-ray14 in its official layout: image-only, used out of distribution (no EHR).

Access: public (NIH Clinical Center), no credentialing; cite Wang, X. et al. "ChestX-ray8: Hospital-scale
chest X-ray database and benchmarks on weakly-supervised classification and localization of common thorax
diseases." CVPR 2017. Files read: ``Data_Entry_2017*.csv`` (one row per image), ``train_val_list.txt``,
``test_list.txt`` and the PNGs under ``images*/``.

Labels: exact token match on ``Finding Labels`` split at ``|`` ("No Finding" → all zeros). Splits:
``split="official"`` (default; the generated demo set ships its own official-style lists): the official test
list is the test split; the official train/val list is split by patient into train and val
(**Decision:** 1/8 of its patients to val, ≈ 70/10/20 overall, seeded). ``split="benchx"`` (real data, the
paper's protocol): the BenchX lists shipped in ``medcam_lab/datasets/splits`` (70/10/20, patient-level).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medcam_lab.data.image_cache import build_image_cache, open_image_cache
from medcam_lab.data.report import CohortReport
from medcam_lab.data.splits import patient_split
from medcam_lab.runinfo import write_json_atomic

NIH_LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis", "Hernia",
    "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
)


def find_entry_table(root: Path) -> Path:
    names = (
        "Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv.gz", "Data_Entry_2017.csv.gz",
    )
    for name in names:
        if (root / name).exists():
            return root / name
    raise FileNotFoundError(f"no Data_Entry_2017*.csv under {root}")


def nih_labels(finding_labels: pd.Series) -> pd.DataFrame:
    """One 0/1 column per NIH label from the ``|``-joined ``Finding Labels`` strings (exact tokens).

    Raises ValueError naming the unknown token if a string holds a label outside the 14 + "No Finding".
    """
    tokens = finding_labels.fillna("").str.split("|")
    known = set(NIH_LABELS) | {"No Finding"}
    flat = {t for row in tokens for t in row}
    unknown = sorted(flat - known - {""})
    if unknown:
        raise ValueError(f"unknown NIH finding label(s): {unknown}")
    return pd.DataFrame(
        {lab: tokens.map(lambda row, lab=lab: float(lab in row)) for lab in NIH_LABELS}, index=finding_labels.index
    )


def _benchx_split(entries: pd.DataFrame, report: CohortReport) -> pd.DataFrame:
    from medcam_lab.datasets.base import read_split_ids

    split_of: dict[str, str] = {}
    for name in ("train", "val", "test"):
        split_of.update(dict.fromkeys(read_split_ids(f"benchx_nih_{name}"), name))
    split = entries["Image Index"].map(split_of)
    report.drop("image: in no BenchX split list", int(split.isna().sum()))
    entries = entries.loc[split.notna()].reset_index(drop=True)
    entries["split"] = split.dropna().to_numpy()
    return entries


def prepare_nih(root: str | Path, out: str | Path, image_size: int, seed: int = 0, split: str = "official") -> dict:
    """Write an NIH image cache + ``labels.parquet`` (split, patient, 14 labels) under ``out``.

    ``split``: ``"official"`` (official test list + a seeded patient-level val carve-out) or ``"benchx"``.
    """
    root, out = Path(root), Path(out)
    if split not in ("official", "benchx"):
        raise ValueError(f"NIH split must be 'official' or 'benchx', got {split!r}")
    report = CohortReport()
    entries = pd.read_csv(find_entry_table(root))
    for col in ("Image Index", "Finding Labels", "Patient ID"):
        if col not in entries.columns:
            raise ValueError(f"{find_entry_table(root)} lacks column {col!r}")
    report.step("images in Data_Entry", len(entries), patients=int(entries["Patient ID"].nunique()))
    if split == "benchx":
        return _write_prepared(root, out, image_size, _benchx_split(entries, report), report)
    test_ids = set((root / "test_list.txt").read_text().split())
    trainval_ids = set((root / "train_val_list.txt").read_text().split())
    in_list = entries["Image Index"].isin(test_ids | trainval_ids)
    report.drop("image: in neither train_val_list nor test_list", int((~in_list).sum()))
    entries = entries.loc[in_list].reset_index(drop=True)
    split = np.where(entries["Image Index"].isin(test_ids), "test", "trainval").astype(object)
    tv = split == "trainval"
    inner = patient_split(entries.loc[tv, "Patient ID"], (7 / 8, 0.0, 1 / 8), seed)
    split[tv] = np.where(inner == "test", "val", inner)
    entries["split"] = split
    return _write_prepared(root, out, image_size, entries, report)


def _write_prepared(root: Path, out: Path, image_size: int, entries: pd.DataFrame, report: CohortReport) -> dict:
    labels = nih_labels(entries["Finding Labels"])
    found = {p.name: p for p in root.glob("images*/**/*.png")}  # one directory walk, not one per image
    paths = [found.get(name, root / "images" / name) for name in entries["Image Index"]]
    ok, failures = build_image_cache(paths, out, image_size, desc="NIH image cache")
    for failure in failures:
        report.drop(f"image: {failure['reason'].split(':')[0]}", 1, [failure["path"]])
    table = pd.concat([entries[["Image Index", "Patient ID", "split"]], labels], axis=1).loc[ok].reset_index(drop=True)
    table.to_parquet(out / "labels.parquet", index=False)
    for name in ("train", "val", "test"):
        part = table[table["split"] == name]
        report.step(f"images in {name}", len(part), patients=int(part["Patient ID"].nunique()))
    result = report.to_dict()
    write_json_atomic(out / "report.json", result)
    return result


def load_nih(prepared: str | Path) -> tuple[np.ndarray, pd.DataFrame]:
    """The prepared NIH cache (memmap) and its row-aligned label table."""
    prepared = Path(prepared)
    table = pd.read_parquet(prepared / "labels.parquet")
    images = open_image_cache(prepared)
    if len(images) != len(table):
        raise ValueError(f"{prepared}: {len(images)} cached images but {len(table)} label rows")
    return images, table
