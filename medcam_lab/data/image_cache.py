"""A one-time cache of pre-resized 8-bit images in one memory-mappable ``.npy`` array.

Decoding a full-size chest X-ray JPEG costs ~0.1 s per core, far too slow to feed training. ``prepare``
decodes every image once (resize the shorter side to ``size``, center-crop ``size × size``, grayscale
uint8) into ``images_uint8.npy`` of shape (N, size, size); a training batch then costs a fancy-index copy
and a crop. Unreadable or missing files are reported (path and reason) and left out, never silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from medcam_lab.data.grayscale import to_gray

CACHE_FILE = "images_uint8.npy"


def load_and_resize(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """Decode one image as grayscale, resize its shorter side to ``size`` and center-crop a square.

    Shape:
        returns (size, size) uint8.
    """
    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("L", (size, size))  # let libjpeg decode at a reduced scale (much faster on big files)
        img = to_gray(img)  # one rule for colour and 16-bit files (medcam_lab.data.grayscale)
        w, h = img.size
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        img = img.crop((left, top, left + size, top + size))
        return np.asarray(img, dtype=np.uint8)


def resize_array(image: np.ndarray, size: int) -> np.ndarray:
    """The resize + center-crop of :func:`load_and_resize` on an image already decoded to (H, W) uint8.

    Shape:
        image: (H, W) uint8; returns (size, size) uint8.
    """
    with Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)) as img:
        w, h = img.size
        scale = size / min(w, h)
        new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _try_load(path: Path, size: int, decode: Callable[[Path], np.ndarray] | None = None
              ) -> tuple[np.ndarray | None, str | None]:
    if not path.exists():
        return None, "file missing"
    try:
        if decode is not None:
            return resize_array(decode(path), size), None
        return load_and_resize(path, size), None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        return None, f"unreadable image: {type(exc).__name__}: {exc}"


def build_image_cache(
    paths: list[Path], out_dir: str | os.PathLike[str], size: int, num_threads: int = 2, desc: str = "image cache",
    decode: Callable[[Path], np.ndarray] | None = None,
) -> tuple[np.ndarray, list[dict[str, str]]]:
    """Decode ``paths`` into ``out_dir/images_uint8.npy``.

    ``decode`` (optional): a reader path → (H, W) uint8 used instead of PIL (e.g. the DICOM recipe of
    :mod:`medcam_lab.datasets.dicom`); a ``ValueError``/``OSError`` it raises is a reported failure.

    Returns:
        ok: boolean mask over ``paths`` (True = cached); row i of the cache is the i-th True entry.
        failures: one dict per skipped file with ``path`` and ``reason``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images: list[np.ndarray | None] = [None] * len(paths)
    failures: list[dict[str, str]] = []
    with ThreadPoolExecutor(max_workers=max(1, num_threads)) as pool:
        results = pool.map(lambda p: _try_load(p, size, decode), paths)
        for i, (img, reason) in enumerate(tqdm(results, total=len(paths), desc=desc, mininterval=1.0)):
            if reason is not None:
                failures.append({"path": str(paths[i]), "reason": reason})
            images[i] = img
    ok = np.array([img is not None for img in images], dtype=bool)
    tmp = out_dir / (CACHE_FILE + ".tmp.npy")
    cache = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(int(ok.sum()), size, size))
    row = 0
    for img in images:
        if img is not None:
            cache[row] = img
            row += 1
    cache.flush()
    del cache
    os.replace(tmp, out_dir / CACHE_FILE)
    return ok, failures


def open_image_cache(directory: str | os.PathLike[str]) -> np.ndarray:
    """Memory-map the cache read-only. Shape: (N, size, size) uint8."""
    path = Path(directory) / CACHE_FILE
    if not path.exists():
        raise FileNotFoundError(f"no image cache at {path}; run `medcam-lab prepare` first")
    return np.load(path, mmap_mode="r")
