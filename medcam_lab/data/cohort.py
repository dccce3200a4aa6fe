"""The cohort directory: its one owner. :func:`start_cohort`, :func:`write_cohort_ehr` and :func:`finish_cohort`
write it (for ``medcam-lab prepare``, :mod:`medcam_lab.prepare.cohort`), :func:`load_cohort` opens it as a
:class:`Cohort`; :mod:`medcam_lab.data.loading` serves batches from it.

Files (the names below are the only place they are spelled):

- ``pairs.parquet`` (:data:`PAIRS_FILE`): one row per image: ids, split, window, ``n_bins``, image path, cache
  row, 14 labels. Written last and atomically: a directory holds a finished cohort exactly when it has this
  file (a prepare that failed leaves none; one that replaces a cohort removes it first).
- ``labels_raw.parquet``: the study's raw CheXpert values (1/0/−1/NaN) of every pair, for other policies.
- ``ehr_values.npy``: (N, T_max, F) float32 discretized EHR (not normalized), zero past ``n_bins``; F = 76
  (``medfuse``) or 60 (``clean``).
- ``ehr_columns.json``: the F feature names; ``normalizer.json``: mean/std per feature (continuous columns are
  standardized at load time).
- ``images_uint8.npy``: (N, S, S) uint8 image cache, row i ↔ pairs row i (:mod:`medcam_lab.data.image_cache`).
- ``report.json`` / ``report.md``: counts after every filter, drops by reason, versions.
- ``config.json`` / ``run_info.json``: the resolved :class:`~medcam_lab.config.PrepareConfig` (its ``timestep``
  and ``compat`` are the cohort's: :attr:`Cohort.timestep`, :attr:`Cohort.mode`), git revision, package versions
  (:mod:`medcam_lab.runinfo`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medcam_lab.atomic import atomic_write
from medcam_lab.config import LABELS_CHEXPERT14
from medcam_lab.data.image_cache import open_image_cache
from medcam_lab.ehr import EHRMode, Normalizer
from medcam_lab.runinfo import write_json_atomic

PAIRS_FILE = "pairs.parquet"
RAW_LABELS_FILE = "labels_raw.parquet"
EHR_VALUES_FILE = "ehr_values.npy"
EHR_COLUMNS_FILE = "ehr_columns.json"
NORMALIZER_FILE = "normalizer.json"
REPORT_FILE = "report.json"
REPORT_MARKDOWN_FILE = "report.md"
CONFIG_FILE = "config.json"
#: The files :func:`load_cohort` needs besides the image cache.
REQUIRED_FILES = (PAIRS_FILE, EHR_VALUES_FILE, EHR_COLUMNS_FILE, NORMALIZER_FILE)
#: Columns of ``pairs.parquet`` before the labels, in order.
PAIR_COLUMNS = (
    "subject_id", "hadm_id", "stay_id", "study_id", "dicom_id", "ViewPosition", "study_datetime", "intime",
    "outtime", "window_start", "window_hours", "n_bins", "image_path", "cache_index", "split",
)


def is_cohort(cohort: str | Path) -> bool:
    """Whether ``cohort`` holds a finished cohort (its ``pairs.parquet``, written last)."""
    return (Path(cohort) / PAIRS_FILE).is_file()


def start_cohort(cohort: str | Path) -> bool:
    """Create the directory; a finished cohort there stops being one until :func:`finish_cohort` (its
    ``pairs.parquet`` is removed first). Returns whether a cohort was replaced."""
    cohort = Path(cohort)
    cohort.mkdir(parents=True, exist_ok=True)
    replaced = is_cohort(cohort)
    (cohort / PAIRS_FILE).unlink(missing_ok=True)
    return replaced


def write_padded_episodes(path: Path, values: list[np.ndarray], n_features: int) -> None:
    """Write variable-length episodes as one (N, T_max, F) float32 ``.npy``, zero past each episode's end.

    Written through a memory map, row by row: no second copy of the episodes in memory.
    """
    t_max = max((len(v) for v in values), default=0)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(values), t_max, n_features))
    for i, v in enumerate(values):
        out[i, : len(v)] = v
    out.flush()
    del out


def write_cohort_ehr(cohort: str | Path, normalizer: Normalizer, values: list[np.ndarray],
                     columns: list[str]) -> None:
    """The EHR files: ``normalizer.json``, ``ehr_values.npy`` (episodes of ``values``, padded) and
    ``ehr_columns.json``."""
    cohort = Path(cohort)
    normalizer.save(cohort / NORMALIZER_FILE)
    write_padded_episodes(cohort / EHR_VALUES_FILE, values, len(columns))
    write_json_atomic(cohort / EHR_COLUMNS_FILE, columns)


def finish_cohort(cohort: str | Path, pairs: pd.DataFrame, raw_labels: pd.DataFrame, report: dict,
                  report_markdown: str) -> None:
    """The raw labels and the report, then ``pairs.parquet`` last and atomically (:data:`PAIR_COLUMNS`
    and the 14 labels): from then on the directory opens as a cohort."""
    cohort = Path(cohort)
    raw_labels.assign(dicom_id=pairs["dicom_id"].to_numpy()).to_parquet(cohort / RAW_LABELS_FILE, index=False)
    write_json_atomic(cohort / REPORT_FILE, report)
    (cohort / REPORT_MARKDOWN_FILE).write_text(report_markdown)
    with atomic_write(cohort / PAIRS_FILE) as tmp:
        pairs[[*PAIR_COLUMNS, *LABELS_CHEXPERT14]].to_parquet(tmp, index=False)


def read_ehr_columns(cohort: str | Path) -> list[str]:
    """The feature names of a cohort's EHR (``ehr_columns.json``)."""
    path = Path(cohort) / EHR_COLUMNS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: is {cohort} a cohort written by `medcam-lab prepare`?")
    return json.loads(path.read_text())


@dataclass
class Cohort:
    """A prepared cohort: pairs table, EHR arrays and the image cache (memory-mapped), and how it was made.

    Attributes:
        path: the cohort directory.
        pairs: ``pairs.parquet``, one row per item.
        ehr: (N, T_max, F) float32, normalized, zero past ``lengths``.
        lengths: (N,) int64 observed bins per item.
        ehr_columns: the F feature names.
        images: (N, S, S) uint8 memmap.
        raw_ehr: (N, T_max, F) float32 memmap of the discretized EHR before normalization (the values in
            their units, for tables and plots).
        prepare_config: the :class:`~medcam_lab.config.PrepareConfig` that wrote it, as a dict (``{}`` for a
            directory without ``config.json``).
        pathologies: the label columns of ``pairs``.
    """

    path: Path
    pairs: pd.DataFrame
    ehr: np.ndarray
    lengths: np.ndarray
    ehr_columns: list[str]
    images: np.ndarray
    raw_ehr: np.ndarray | None = None
    prepare_config: dict[str, Any] = field(default_factory=dict)
    pathologies: tuple[str, ...] = LABELS_CHEXPERT14

    @property
    def labels(self) -> np.ndarray:
        """The labels of ``pairs`` as (N, L) float32 (1/0, NaN = unknown), in the order of ``pathologies``."""
        return self.pairs[list(self.pathologies)].to_numpy(dtype=np.float32)

    @property
    def timestep(self) -> float:
        """Hours per EHR bin (``PrepareConfig.timestep``; 2 h where the cohort does not say)."""
        return float(self.prepare_config.get("timestep", 2.0))

    @property
    def mode(self) -> EHRMode | None:
        """The EHR mode the cohort was prepared in (``PrepareConfig.compat``; ``None`` where it does not say)."""
        compat = self.prepare_config.get("compat")
        return EHRMode.of(compat) if compat else None

    @property
    def units(self) -> dict[str, str]:
        """Units of the discretized values: a mode that converts units by item id (``clean``: switch
        ``units_by_itemid``) gives every continuous variable one unit (:data:`medcam_lab.ehr.ranges.VALID_RANGES`);
        in ``medfuse`` mode the values stay as charted (mixed units), so no unit is claimed (``{}``)."""
        from medcam_lab.ehr.ranges import VALID_RANGES

        if self.mode is None or not self.mode.switches.units_by_itemid:
            return {}
        return {name: r.unit for name, r in VALID_RANGES.items() if r.unit}

    def split_indices(self, split: str) -> np.ndarray:
        """Row indices of the items of ``split`` (``train``, ``val`` or ``test``).

        Raises:
            ValueError: if the split has no item.
        """
        idx = np.flatnonzero(self.pairs["split"].to_numpy() == split)
        if len(idx) == 0:
            raise ValueError(f"split {split!r} is empty in cohort {self.path}")
        return idx


def load_cohort(cohort: str | Path) -> Cohort:
    """Open a cohort directory; continuous EHR columns are standardized with the saved normalizer."""
    cohort = Path(cohort)
    for name in REQUIRED_FILES:
        if not (cohort / name).exists():
            raise FileNotFoundError(f"{cohort / name} missing: is {cohort} a cohort written by `medcam-lab prepare` "
                                    "(a prepare that did not finish writes no pairs.parquet)?")
    pairs = pd.read_parquet(cohort / PAIRS_FILE)
    raw = np.load(cohort / EHR_VALUES_FILE, mmap_mode="r")
    columns = read_ehr_columns(cohort)
    normalizer = Normalizer.load(cohort / NORMALIZER_FILE)
    lengths = pairs["n_bins"].to_numpy(dtype=np.int64)
    n, t_max, n_features = raw.shape
    normalized = normalizer.transform(np.array(raw).reshape(-1, n_features)).reshape(n, t_max, n_features)
    normalized[np.arange(t_max)[None, :] >= lengths[:, None]] = 0.0  # padding stays exactly zero
    images = open_image_cache(cohort)
    if not (len(pairs) == len(raw) == len(images)):
        raise ValueError(
            f"cohort {cohort} is inconsistent: {len(pairs)} pairs, {len(raw)} EHR rows, {len(images)} images"
        )
    config_path = cohort / CONFIG_FILE
    prepare_config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    return Cohort(cohort, pairs, normalized.astype(np.float32), lengths, columns, images, raw, prepare_config)
