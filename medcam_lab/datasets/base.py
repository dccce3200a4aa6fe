"""The dataset contract shared by every chest X-ray dataset here (modelled on torchxrayvision).

- ``pathologies``: the label names, in column order.
- ``labels``: ``(N, L)`` float32 array, 1 / 0 / NaN (NaN = unknown, masked in the loss and the metrics).
- ``csv``: a DataFrame row-aligned with the items (image id, patient id where the dataset has one, split,
  view, path on disk, ...).
- ``dataset[i]``: a dict ``{"image": (H, W) uint8 tensor, "labels": (L,) float32 tensor, "index": i}``
  (``transform``, if given, is applied to the image tensor): the keys of every sample of the package, the
  prepared caches' :class:`~medcam_lab.data.cohort.ImageLabelDataset` included.
- ``relabel(pathologies)``: reorder the label columns to another list, adding all-NaN columns for names the
  dataset does not have (so several datasets can share one head).
- ``skipped``: ``{reason: [ids]}`` of items dropped at construction (missing files, unreadable images);
  nothing is dropped silently.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from medcam_lab.datasets.grayscale import to_gray

__all__ = ["XRayDataset", "read_split_ids", "check_columns", "read_gray_image"]


def read_split_ids(name: str) -> list[str]:
    """Ids of one shipped split list (``medcam_lab/datasets/splits/<name>.txt.gz``, see its README)."""
    ref = resources.files("medcam_lab.datasets") / "splits" / f"{name}.txt.gz"
    if not ref.is_file():
        raise FileNotFoundError(f"no shipped split list {name!r} ({ref})")
    with gzip.open(ref.open("rb"), "rt") as handle:
        return [line.strip() for line in handle if line.strip()]


def read_split_lists(directory: str | Path) -> dict[str, str]:
    """{image id: split} from a folder of one's own split lists: ``train.txt``, ``val.txt``, ``test.txt``
    (plain or ``.gz``; one id per line; blank lines and ``#`` comments ignored).

    Raises:
        FileNotFoundError: a list is missing (naming it).
        ValueError: an id listed in two splits, or twice in one.
    """
    directory = Path(directory)
    out: dict[str, str] = {}
    for split in ("train", "val", "test"):
        candidates = [directory / f"{split}{ext}" for ext in (".txt", ".txt.gz")]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise FileNotFoundError(f"split list {directory / (split + '.txt')} missing (train.txt, val.txt and "
                                    "test.txt are all needed)")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as handle:
            for line in handle:
                image_id = line.split("#", 1)[0].strip()
                if not image_id:
                    continue
                if image_id in out:
                    raise ValueError(f"{path}: {image_id} is listed in {out[image_id]} already")
                out[image_id] = split
    return out


def check_columns(frame: pd.DataFrame, required: Sequence[str], path: str | Path, what: str) -> None:
    """Raise a ValueError naming the file and the missing columns if ``frame`` lacks any of ``required``."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a {what} table; missing column(s) {missing}; found {list(frame.columns)[:20]}")


def read_gray_image(path: str | Path) -> np.ndarray:
    """An 8-bit grayscale image (H, W) uint8 from PNG/JPG, by the rule of :mod:`medcam_lab.datasets.grayscale`
    (colour: PIL's luma; 16-bit: scaled by the image maximum)."""
    with Image.open(path) as img:
        return np.array(to_gray(img), dtype=np.uint8)


class XRayDataset(torch.utils.data.Dataset):
    """Images on disk + a label table, on the contract described in the module docstring.

    Args:
        table: label table indexed by image id, one column per pathology (1/0/NaN) plus metadata columns.
        pathologies: which columns are labels.
        paths: full image path per row of ``table`` (same order).
        transform: optional callable applied to the (H, W) uint8 image tensor.
        check_files: drop rows whose file is missing (counted under ``skipped["missing file"]``).
        reader: image reader (path → (H, W) uint8 array).

    Shape:
        - ``labels``: (N, L) float32; ``dataset[i]["image"]``: (H, W) uint8 unless ``transform`` changes it;
          ``dataset[i]["labels"]``: (L,) float32.
    """

    def __init__(self, table: pd.DataFrame, pathologies: Sequence[str], paths: Sequence[str | Path],
                 transform: Callable | None = None, check_files: bool = True,
                 reader: Callable[[Path], np.ndarray] = read_gray_image) -> None:
        if len(paths) != len(table):
            raise ValueError(f"{len(paths)} paths for {len(table)} label rows")
        csv = table.copy()
        csv["path"] = [str(p) for p in paths]
        self.skipped: dict[str, list[str]] = {}
        if check_files:
            exists = np.array([Path(p).is_file() for p in csv["path"]], dtype=bool)
            if (~exists).any():
                self.skipped["missing file"] = [str(i) for i in csv.index[~exists]]
            csv = csv.loc[exists]
        self.pathologies = list(pathologies)
        self.labels = csv[self.pathologies].to_numpy(dtype=np.float32)
        self.csv = csv.reset_index().rename(columns={"index": "image_id"}) if csv.index.name is None \
            else csv.reset_index()
        self.transform = transform
        self.reader = reader

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int) -> dict:
        img = torch.from_numpy(self.reader(Path(self.csv["path"].iat[idx])))
        if self.transform is not None:
            img = self.transform(img)
        return {"image": img, "labels": torch.tensor(self.labels[idx]), "index": idx}

    def relabel(self, pathologies: Sequence[str]) -> XRayDataset:
        """Reorder the label columns to ``pathologies``; names this dataset lacks become all-NaN columns.

        Returns ``self`` (modified in place).
        """
        index = {name: j for j, name in enumerate(self.pathologies)}
        new = np.full((len(self.labels), len(pathologies)), np.nan, dtype=np.float32)
        for j, name in enumerate(pathologies):
            if name in index:
                new[:, j] = self.labels[:, index[name]]
        self.labels, self.pathologies = new, list(pathologies)
        return self

    def counts(self) -> dict[str, dict[str, int]]:
        """Per label: number of positives, negatives and unknowns."""
        return {
            name: {"positive": int((col == 1).sum()), "negative": int((col == 0).sum()),
                   "unknown": int(np.isnan(col).sum())}
            for name, col in zip(self.pathologies, self.labels.T)
        }
