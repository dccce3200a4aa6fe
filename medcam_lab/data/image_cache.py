"""The image cache of a prepared directory: ``images_uint8.npy``, (N, S, S) uint8, row i = item i.

Built once by :func:`medcam_lab.prepare.image_cache.build_image_cache` (every image decoded, shorter side resized
to S and centre-cropped); opened here, memory-mapped, by every reader of a cohort or a prepared image set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["CACHE_FILE", "open_image_cache"]

CACHE_FILE = "images_uint8.npy"


def open_image_cache(directory: str | os.PathLike[str]) -> np.ndarray:
    """Memory-map the cache of ``directory`` read-only.

    Raises:
        FileNotFoundError: no ``images_uint8.npy`` in ``directory``.

    Shape:
        - output: (N, S, S) uint8.
    """
    path = Path(directory) / CACHE_FILE
    if not path.exists():
        raise FileNotFoundError(f"no image cache at {path}; run `medcam-lab prepare` first")
    return np.load(path, mmap_mode="r")
