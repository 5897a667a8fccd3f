"""Exact geometric operations: rotate by quarter turns, vertical flip, crop. Views, no resampling."""

from __future__ import annotations

import numpy as np

from transforms.gravity import cut


def rotate(pixels: np.ndarray, degrees: int) -> np.ndarray:
    """Clockwise by 90, 180 or 270 degrees."""
    if degrees % 90:
        raise ValueError("rotate: degrees must be 90, 180 or 270")
    return np.rot90(pixels, k=-(degrees // 90) % 4)


def flip(pixels: np.ndarray) -> np.ndarray:
    """Top-bottom flip."""
    return pixels[::-1]


def crop(pixels: np.ndarray, x: int | None = None, y: int | None = None, w: int = 0, h: int = 0,
         g: str = "center", fx: float | None = None, fy: float | None = None) -> np.ndarray:
    """The w x h rectangle whose top-left corner is (x, y), which must lie inside the image; without x
    and y, placed by the gravity g or the focal point (fx, fy) (see transforms.gravity)."""
    if x is None or y is None:
        return cut(pixels, w, h, g, fx, fy)
    height, width = pixels.shape[:2]
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"crop: rectangle {w}x{h} at ({x}, {y}) is not inside the {width}x{height} image")
    return pixels[y:y + h, x:x + w]
