"""PNG rendering of a cached image with an attribution map on top (no plotting library needed)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["overlay_png", "heat_overlay"]


def heat_overlay(image: np.ndarray, heat: np.ndarray | None, alpha: float = 0.5) -> np.ndarray:
    """Grayscale image → RGB with ``|heat|`` (scaled to its maximum) blended in red.

    Shape:
        - image: (H, W) uint8.
        - heat: (h, w), resized to (H, W) (bilinear) when it differs; ``None`` = the plain image.
        - output: (H, W, 3) uint8.
    """
    gray = np.repeat(np.asarray(image, dtype=np.float32)[..., None], 3, axis=2)
    if heat is None:
        return gray.astype(np.uint8)
    h = np.abs(np.asarray(heat, dtype=np.float32))
    if h.shape != image.shape:
        h = np.asarray(Image.fromarray(h).resize(image.shape[::-1], Image.Resampling.BILINEAR))
    peak = float(h.max())
    h = h / peak if peak > 0 else h
    red = np.array([255.0, 0.0, 0.0], dtype=np.float32)
    out = (1 - alpha * h[..., None]) * gray + alpha * h[..., None] * red
    return np.clip(out, 0, 255).astype(np.uint8)


def overlay_png(image: np.ndarray, heat: np.ndarray | None = None, alpha: float = 0.5, scale: int = 4) -> bytes:
    """PNG bytes of :func:`heat_overlay`, enlarged ``scale`` times for display.

    Shape:
        - image: (H, W) uint8.
        - heat: (h, w) or ``None``.
    """
    rgb = Image.fromarray(heat_overlay(image, heat, alpha))
    if scale != 1:
        rgb = rgb.resize((rgb.width * scale, rgb.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG")
    return buffer.getvalue()
