"""``medcam-lab prepare-images``: a dataset class's train / val / test written as a prepared image-label
directory, what ``medcam-lab finetune --dataset images`` reads (:mod:`medcam_lab.data.prepared_images` owns the
directory's file names and opens it).

:func:`prepare_image_dataset` builds the dataset class of ``name`` (:class:`NIHDataset`,
:class:`CheXpertDataset`, :class:`VinDrDataset`) for train / val / test and writes under ``out``:

- ``images_uint8.npy``: (N, S, S) uint8, every image decoded once (VinDr DICOMs through the dataset class's
  DICOM → 8-bit recipe), shorter side resized to S and center-cropped;
- ``labels.parquet``: row-aligned with the cache: ``image_id``, ``patient_id`` (where the dataset has one),
  ``split``, one float column per label (1/0/NaN) in the dataset's ``pathologies`` order, then metadata;
- ``dataset.json``: dataset name, pathologies, id column, policy and image size;
- ``report.json``: items per split, and every item left out with its reason (not in any split list, missing
  file, unreadable image), with ids; nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcam_lab.data.prepared_images import REPORT_FILE, finish_prepared_images, start_prepared_images
from medcam_lab.datasets.patient_split import SPLIT_NAMES
from medcam_lab.prepare.image_cache import build_image_cache

__all__ = ["PREPARABLE", "prepare_image_dataset", "prepare_images"]

PREPARABLE = ("nih", "chexpert", "vindr")
#: The policy keywords each dataset class accepts.
_POLICY_KEYS = {"nih": ("split_lists", "split_source", "seed"), "chexpert": ("uncertain", "blank", "frontal_only"),
                "vindr": ("merge",)}


def _nih_policy(policy: dict[str, Any]) -> dict[str, Any]:
    return {"split_lists": policy.get("split_lists") or None, "split_source": policy.get("split_source", "benchx"),
            "seed": policy.get("seed", 0)}


def _dataset(name: str, root: Path, split: str, policy: dict[str, Any]):
    from medcam_lab.datasets import CheXpertDataset, NIHDataset, VinDrDataset

    if name == "nih":
        return NIHDataset(root, split=split, **_nih_policy(policy))
    if name == "chexpert":
        return CheXpertDataset(root, split=split, **policy)
    return VinDrDataset(root, split=split, **policy)


def _unassigned(name: str, root: Path, policy: dict[str, Any]) -> list[str]:
    """Ids in the label files left out before any image is read: in no split list (NIH, VinDr) or not a
    frontal AP/PA view (CheXpert with ``frontal_only``)."""
    from medcam_lab.datasets import chexpert_labels, nih_labels, vindr_labels
    from medcam_lab.datasets.nih import find_nih_table

    if name == "nih":
        nih = _nih_policy(policy)
        table = nih_labels(find_nih_table(root), split=nih["split_source"], split_lists=nih["split_lists"],
                           seed=nih["seed"])
    elif name == "vindr":
        ann = root / "annotations"
        tables = [p for p in (ann / "annotations_train.csv", ann / "annotations_test.csv") if p.is_file()]
        table = vindr_labels(tables[0], policy.get("merge", "union"), tuple(tables[1:]))
    else:
        if not policy.get("frontal_only", True):
            return []
        out = []
        for csv in (root / "train.csv", root / "valid.csv", root / "test.csv"):
            if csv.is_file():
                kept = chexpert_labels(csv, frontal_only=True).index
                out += [str(i) for i in chexpert_labels(csv, frontal_only=False).index.difference(kept)]
        return out
    return [str(i) for i in table.index[table["split"] == "unassigned"]]


def _decoder(name: str) -> Callable[[Path], np.ndarray] | None:
    if name != "vindr":
        return None
    from medcam_lab.datasets.vindr import _read_vindr_image

    return _read_vindr_image


def prepare_image_dataset(name: str, root: str | Path, out: str | Path, image_size: int, num_threads: int = 0,
                          **policy: Any) -> dict:
    """Write the prepared directory of dataset ``name`` (see the module docstring); returns the report.

    Args:
        name: ``"nih"``, ``"chexpert"`` or ``"vindr"``.
        root: the dataset's raw root (the layout its dataset class reads).
        out: directory to write.
        image_size: side S of the cached square images.
        num_threads: decoding threads; 0 = every core this process may use.
        **policy: dataset-class options: NIH ``split_source`` (``benchx``/``official``), ``seed`` (of the
            official val carve-out), ``split_lists``; CheXpert ``uncertain``, ``blank``, ``frontal_only``; VinDr
            ``merge``.

    Raises:
        ValueError: unknown dataset or a policy key the dataset does not take, or a split left empty.
        FileNotFoundError: the dataset's label files are missing under ``root``.
    """
    if name not in PREPARABLE:
        raise ValueError(f"prepare-images: unknown dataset {name!r}; known: {list(PREPARABLE)}")
    bad = sorted(set(policy) - set(_POLICY_KEYS[name]))
    if bad:
        raise ValueError(f"prepare-images: {name} takes no option(s) {bad}; it takes {list(_POLICY_KEYS[name])}")
    root, out = Path(root), Path(out)
    start_prepared_images(out)
    skipped: dict[str, list[str]] = {}
    frames, labels, paths, pathologies = [], [], [], None
    for split in SPLIT_NAMES:
        ds = _dataset(name, root, split, policy)
        pathologies = ds.pathologies
        for reason, ids in ds.skipped.items():
            skipped.setdefault(reason, []).extend(ids)
        frame = ds.csv.copy()
        frame["split"] = split
        frames.append(frame)
        labels.append(ds.labels)
        paths += [Path(p) for p in ds.csv["path"]]
    assert pathologies is not None
    unassigned = _unassigned(name, root, policy)  # after the dataset classes: they name missing label files
    if unassigned:
        skipped["not frontal AP/PA" if name == "chexpert" else "not in any split list"] = unassigned
    meta = pd.concat(frames, ignore_index=True)
    label_matrix = np.concatenate(labels).astype(np.float32)
    ok, failures = build_image_cache(paths, out, image_size, num_threads, desc=f"{name} image cache",
                                     decode=_decoder(name))
    row_of = {str(path): i for i, path in enumerate(paths)}
    for failure in failures:
        reason = failure["reason"].split(":")[0]
        row = row_of[failure["path"]]
        skipped.setdefault(reason, []).append(str(meta["image_id"].iat[row]))
    columns = ["image_id", *(["patient_id"] if "patient_id" in meta.columns else []), "split"]
    extra = [c for c in meta.columns if c not in (*columns, *pathologies)]
    table = pd.concat([meta[columns], pd.DataFrame(label_matrix, columns=list(pathologies)), meta[extra]], axis=1)
    table = table.loc[ok].reset_index(drop=True)
    table["image_id"] = table["image_id"].astype(str)
    if "patient_id" in table.columns:
        table["patient_id"] = table["patient_id"].astype(str)
    counts = {s: int((table["split"] == s).sum()) for s in SPLIT_NAMES}
    info = {"dataset": name, "pathologies": list(pathologies), "id_column": "image_id", "image_size": image_size,
            "policy": {k: v for k, v in policy.items()}, "root": str(root)}
    report = {"dataset": name, "images": int(ok.sum()), "per_split": counts,
              "skipped": {reason: {"count": len(ids), "ids": ids} for reason, ids in skipped.items()},
              "label_counts": {p: {"positive": int((table[p] == 1).sum()), "negative": int((table[p] == 0).sum()),
                                   "unknown": int(table[p].isna().sum())} for p in pathologies}}
    empty = [s for s, n in counts.items() if n == 0]
    finish_prepared_images(out, table, info, report, complete=not empty)
    if empty:
        raise ValueError(f"prepare-images: {name} under {root} left split(s) {empty} empty (report: "
                         f"{out / REPORT_FILE})")
    return report


def prepare_images(cfg) -> dict:
    """:func:`prepare_image_dataset` from a :class:`~medcam_lab.config.PrepareImagesConfig` (the CLI entry);
    only the policy fields of ``cfg.dataset`` are passed on. Writes the resolved config and run info."""
    from medcam_lab.runinfo import write_run_info

    if not cfg.root or not cfg.out:
        raise ValueError("prepare-images needs --root and --out")
    policy = {key: getattr(cfg, key) for key in _POLICY_KEYS.get(cfg.dataset, ())}
    report = prepare_image_dataset(cfg.dataset, cfg.root, cfg.out, cfg.image_size, cfg.num_threads, **policy)
    write_run_info(cfg.out, "prepare-images", cfg)
    return report
