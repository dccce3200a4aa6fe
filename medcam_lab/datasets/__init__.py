"""Chest X-ray datasets on one contract (``pathologies``, ``labels`` with NaN = unknown, a metadata frame
``csv`` row-aligned with the items, dict samples, ``relabel``) and their labels without images.

- :func:`load_labels` ``(name, table_path, **policy)`` → DataFrame indexed by image id (one column per
  label, 1/0/NaN, plus ``patient_id`` where the dataset has one and ``split``).
- :class:`NIHDataset`, :class:`CheXpertDataset`, :class:`VinDrDataset`, :class:`MIMICCXRDataset`.
- :func:`read_dicom_uint8` / :func:`convert_dicoms`: DICOM → 8-bit with VOI LUT and MONOCHROME1 inversion.

See ``data_cards/{nih,chexpert,vindr,mimic_cxr}.md`` for access, files, labels, splits and caveats.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from medcam_lab.datasets.base import XRayDataset, read_split_ids
from medcam_lab.datasets.chexpert import CHEXPERT_PATHOLOGIES, CheXpertDataset, chexpert_labels
from medcam_lab.datasets.dicom import DicomReadError, convert_dicoms, read_dicom_uint8
from medcam_lab.datasets.mimic_cxr import MIMIC_PATHOLOGIES, MIMICCXRDataset, mimic_cxr_labels
from medcam_lab.datasets.nih import NIH_PATHOLOGIES, NIHDataset, nih_labels
from medcam_lab.datasets.vindr import VINDR_PATHOLOGIES, VinDrDataset, vindr_labels

__all__ = [
    "load_labels", "PATHOLOGIES", "XRayDataset", "read_split_ids",
    "NIHDataset", "CheXpertDataset", "VinDrDataset", "MIMICCXRDataset",
    "nih_labels", "chexpert_labels", "vindr_labels", "mimic_cxr_labels",
    "DicomReadError", "read_dicom_uint8", "convert_dicoms",
]

_LOADERS: dict[str, Callable[..., pd.DataFrame]] = {
    "nih": nih_labels, "chexpert": chexpert_labels, "vindr": vindr_labels, "mimic_cxr": mimic_cxr_labels,
}
PATHOLOGIES: dict[str, tuple[str, ...]] = {
    "nih": NIH_PATHOLOGIES, "chexpert": CHEXPERT_PATHOLOGIES, "vindr": VINDR_PATHOLOGIES,
    "mimic_cxr": MIMIC_PATHOLOGIES,
}


def load_labels(name: str, table_path: str | Path, **policy: Any) -> pd.DataFrame:
    """Labels of dataset ``name`` from its own label file, without images.

    Args:
        name: ``"nih"``, ``"chexpert"``, ``"vindr"`` or ``"mimic_cxr"``.
        table_path: ``Data_Entry_2017*.csv[.gz]``; CheXpert ``train.csv`` / ``valid.csv``; VinDr box
            annotations or Kaggle ``train.csv``; ``mimic-cxr-2.0.0-chexpert.csv.gz``.
        **policy: the loader's options: NIH ``split``; CheXpert ``uncertain`` (``zeros``/``ones``/``ignore``
            or ``{label: policy}``), ``blank``, ``frontal_only``, ``views``; VinDr ``merge``
            (``union``/``majority``/``all``), ``extra_tables``; MIMIC ``uncertain``, ``blank``,
            ``metadata_path``, ``views``, ``split_path``.

    Returns:
        DataFrame indexed by image id (study id for MIMIC without ``metadata_path``), one float column per
        label (1/0/NaN) in :data:`PATHOLOGIES` ``[name]`` order, plus metadata columns.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(_LOADERS)}")
    if not Path(table_path).is_file():
        raise FileNotFoundError(f"{name} label table not found: {table_path}")
    return _LOADERS[name](table_path, **policy)
