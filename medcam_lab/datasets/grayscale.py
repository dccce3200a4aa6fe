"""The one rule by which every image reader turns a PNG / JPEG into 8-bit grayscale.

* 8-bit grayscale (``L``): as stored.
* Colour (``RGB``, ``RGBA``, palette ``P``, ``LA``, ...): PIL's ITU-R 601-2 luma,
  ``L = R·299/1000 + G·587/1000 + B·114/1000`` (palette entries through their RGB colour; alpha ignored).
  A radiograph saved as colour has R = G = B, so it comes out unchanged.
* 16- or 32-bit integer (``I;16``, ``I;16B``, ``I``): scaled by the image's own maximum,
  ``floor(x / max · 255)`` (an all-zero image stays zero), as the DICOM recipe scales by the maximum.
  PIL's own ``convert("L")`` would clip every value above 255 to white instead.

Used by the image cache (:mod:`medcam_lab.prepare.image_cache`) and the dataset readers
(:func:`medcam_lab.datasets.base.read_gray_image`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

WIDE_INTEGER_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})


def to_gray(img: Image.Image) -> Image.Image:
    """``img`` as an 8-bit grayscale (``L``) PIL image, by the module's rule."""
    if img.mode == "L":
        return img
    if img.mode in WIDE_INTEGER_MODES:
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.max() > 0 else 1.0
        return Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8))
    return img.convert("L")
