"""DICOM → 8-bit grayscale, the BenchX recipe (spec/cxr.md Part A §2).

Steps: ``pixel_array`` → VOI LUT (``apply_voi_lut``, i.e. the file's LUT or window centre/width) →
MONOCHROME1 inversion as ``max − x`` → clip at 0 → scale by the image maximum to [0, 255] uint8.
A file without pixel data, without a transfer syntax, or that pydicom cannot decode raises
:class:`DicomReadError` naming the file; :func:`convert_dicoms` collects those as counted skips.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["DicomReadError", "dicom_to_uint8", "read_dicom_uint8", "convert_dicoms"]


class DicomReadError(ValueError):
    """A DICOM file that cannot be turned into an image (the message names the file and the reason)."""


def dicom_to_uint8(pixels: np.ndarray, photometric: str, voi: np.ndarray | None = None) -> np.ndarray:
    """The numeric part of the recipe on an array already read (``voi`` = the VOI-LUT output, if any).

    Shape:
        - pixels: (H, W) any numeric dtype; returns (H, W) uint8.
    """
    x = np.asarray(voi if voi is not None else pixels, dtype=np.float64)
    if photometric.strip().upper() == "MONOCHROME1":
        x = x.max() - x
    x = np.clip(x - 0.0, 0.0, None)
    top = x.max()
    if top <= 0:
        return np.zeros(x.shape, dtype=np.uint8)
    return np.round(x / top * 255.0).astype(np.uint8)


def read_dicom_uint8(path: str | Path, voi_lut: bool = True) -> np.ndarray:
    """Read one DICOM file as an (H, W) uint8 image; raises :class:`DicomReadError` if it cannot."""
    try:
        import pydicom
        from pydicom.pixels import apply_voi_lut
    except ImportError as err:  # pragma: no cover - pydicom is a declared dependency
        raise ImportError("reading DICOM needs pydicom (`pip install pydicom`)") from err
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as err:  # noqa: BLE001 - any parse failure is a per-file skip
        raise DicomReadError(f"{path}: not a readable DICOM file ({type(err).__name__}: {err})") from err
    if "PixelData" not in ds:
        raise DicomReadError(f"{path}: DICOM has no pixel data")
    try:
        pixels = ds.pixel_array
    except Exception as err:  # noqa: BLE001 - e.g. missing Transfer Syntax UID, unsupported compression
        raise DicomReadError(f"{path}: pixel data cannot be decoded ({type(err).__name__}: {err})") from err
    if pixels.ndim != 2:
        raise DicomReadError(f"{path}: expected one 2-D frame, got pixel array of shape {pixels.shape}")
    voi = apply_voi_lut(pixels, ds) if voi_lut else None
    return dicom_to_uint8(pixels, str(ds.get("PhotometricInterpretation", "MONOCHROME2")), voi)


def convert_dicoms(paths: Iterable[str | Path], out_dir: str | Path, voi_lut: bool = True) -> dict:
    """Convert DICOMs to 8-bit PNGs named ``<stem>.png`` under ``out_dir``.

    Returns:
        ``{"converted": [png paths], "skipped": {path: reason}}``; nothing fails silently.
    """
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    converted, skipped = [], {}
    for path in paths:
        try:
            img = read_dicom_uint8(path, voi_lut)
        except DicomReadError as err:
            skipped[str(path)] = str(err)
            continue
        dest = out_dir / f"{Path(path).stem}.png"
        Image.fromarray(img).save(dest)
        converted.append(str(dest))
    return {"converted": converted, "skipped": skipped}
