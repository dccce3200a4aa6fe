"""The prepared image-label directory (``medcam-lab prepare-images``): its one owner.

Files (the names below are the only place they are spelled):

- ``images_uint8.npy``: (N, S, S) uint8 image cache (:mod:`medcam_lab.data.image_cache`);
- ``labels.parquet`` (:data:`LABELS_FILE`): row-aligned with the cache: ``image_id``, ``patient_id`` (where the
  dataset has one), ``split``, one float column per label (1/0/NaN) in the dataset's ``pathologies`` order,
  then metadata;
- ``dataset.json`` (:data:`DATASET_FILE`): dataset name, pathologies, id column, policy and image size;
- ``report.json`` (:data:`REPORT_FILE`): items per split, every item left out with its reason and ids.

``labels.parquet`` and ``dataset.json`` are written last (:func:`finish_prepared_images`): a directory holds a
finished prepared set exactly when it has ``dataset.json`` (:func:`is_prepared_images`); a run that replaces one
removes both first (:func:`start_prepared_images`). :func:`load_prepared_images` opens it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcam_lab.data.image_cache import open_image_cache
from medcam_lab.runinfo import write_json_atomic

__all__ = ["DATASET_FILE", "LABELS_FILE", "REPORT_FILE", "is_prepared_images", "read_dataset_info",
           "start_prepared_images", "finish_prepared_images", "load_prepared_images"]

DATASET_FILE = "dataset.json"
LABELS_FILE = "labels.parquet"
REPORT_FILE = "report.json"


def is_prepared_images(prepared: str | Path) -> bool:
    """Whether ``prepared`` holds a finished prepared image-label directory (its ``dataset.json``)."""
    return (Path(prepared) / DATASET_FILE).is_file()


def read_dataset_info(prepared: str | Path) -> dict[str, Any]:
    """``dataset.json`` of a prepared directory: ``dataset``, ``pathologies``, ``id_column``, ``image_size``,
    ``policy``, ``root``.

    Raises:
        FileNotFoundError: ``prepared`` is not a finished ``medcam-lab prepare-images`` directory.
    """
    path = Path(prepared) / DATASET_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: not a `medcam-lab prepare-images` directory")
    return json.loads(path.read_text())


def start_prepared_images(prepared: str | Path) -> None:
    """Create the directory; a finished set there stops being one until :func:`finish_prepared_images`."""
    prepared = Path(prepared)
    prepared.mkdir(parents=True, exist_ok=True)
    for stale in (DATASET_FILE, LABELS_FILE):
        (prepared / stale).unlink(missing_ok=True)


def finish_prepared_images(prepared: str | Path, table: pd.DataFrame, info: dict[str, Any], report: dict[str, Any],
                           complete: bool = True) -> None:
    """Write the report, then (where ``complete``) the label table and ``dataset.json`` last."""
    prepared = Path(prepared)
    write_json_atomic(prepared / REPORT_FILE, report)
    if complete:
        table.to_parquet(prepared / LABELS_FILE, index=False)
        write_json_atomic(prepared / DATASET_FILE, info)


def load_prepared_images(prepared: str | Path) -> tuple[np.ndarray, pd.DataFrame, tuple[str, ...]]:
    """Open a prepared image-label directory.

    Returns:
        ``(images, table, pathologies)``: the memory-mapped cache, its row-aligned label table and the label
        names.

    Raises:
        FileNotFoundError: not a finished prepared directory, or no image cache.
        ValueError: the cache and the table disagree in length, or a label column is missing.

    Shape:
        - images: (N, S, S) uint8; table: N rows.
    """
    prepared = Path(prepared)
    info = read_dataset_info(prepared)
    table = pd.read_parquet(prepared / LABELS_FILE)
    images = open_image_cache(prepared)
    if len(images) != len(table):
        raise ValueError(f"{prepared}: {len(images)} cached images but {len(table)} label rows")
    missing = [p for p in info["pathologies"] if p not in table.columns]
    if missing:
        raise ValueError(f"{prepared / LABELS_FILE}: label column(s) {missing} missing")
    return images, table, tuple(info["pathologies"])
