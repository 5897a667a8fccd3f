"""Exact geometric operations: rotate by quarter turns, vertical flip, crop. Views, no resampling."""

from __future__ import annotations

import numpy as np


def rotate(pixels: np.ndarray, degrees: int) -> np.ndarray:
    """Clockwise by 90, 180 or 270 degrees."""
    if degrees % 90:
        raise ValueError("rotate: degrees must be 90, 180 or 270")
    return np.rot90(pixels, k=-(degrees // 90) % 4)


def flip(pixels: np.ndarray) -> np.ndarray:
    """Top-bottom flip."""
    return pixels[::-1]


def crop(pixels: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    """The w x h rectangle whose top-left corner is (x, y); it must lie inside the image."""
    height, width = pixels.shape[:2]
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise ValueError(f"crop: rectangle {w}x{h} at ({x}, {y}) is not inside the {width}x{height} image")
    return pixels[y:y + h, x:x + w]
