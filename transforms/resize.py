"""Resizing: target geometry (pure arithmetic) and Lanczos-3 resampling (transforms.resample)."""

from __future__ import annotations

import numpy as np

from transforms.gravity import cut
from transforms.resample import resample

FITS = ("contain", "cover", "fill")


def target_size(width: int, height: int, w: int | None, h: int | None, fit: str) -> tuple[int, int]:
    """The size to resample to (before any cover crop). One of w, h may be None: keep the aspect ratio."""
    if fit not in FITS:
        raise ValueError(f"resize: fit must be one of {', '.join(FITS)}")
    if not w and not h:
        raise ValueError("resize: give w, h or both")
    if not w or not h:
        scale = (w / width) if w else (h / height)  # type: ignore[operator]
        return max(1, round(width * scale)), max(1, round(height * scale))
    if fit == "fill":
        return w, h
    scale = (min if fit == "contain" else max)(w / width, h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(pixels: np.ndarray, w: int | None = None, h: int | None = None, fit: str = "contain",
           g: str = "center", fx: float | None = None, fy: float | None = None) -> np.ndarray:
    """fit=cover crops to exactly w x h where the gravity g or the focal point (fx, fy) says."""
    height, width = pixels.shape[:2]
    size = target_size(width, height, w, h, fit)
    out = resample(pixels, size)
    if fit == "cover" and w and h:
        out = cut(out, w, h, g, fx, fy)
    return out


def thumbnail(pixels: np.ndarray, size: int) -> np.ndarray:
    """Fit within size x size, never enlarging."""
    height, width = pixels.shape[:2]
    if width <= size and height <= size:
        return pixels
    return resize(pixels, size, size, "contain")
