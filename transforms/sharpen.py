"""Sharpen: an unsharp mask (Pillow's, in C): amount % of the difference from a Gaussian blur of radius r,
where that difference exceeds threshold levels."""

from __future__ import annotations

import numpy as np
from PIL import ImageFilter

from transforms.encode import to_image


def sharpen(pixels: np.ndarray, r: float = 1.0, amount: int = 100, threshold: int = 2) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] == 2:  # Pillow has no LA filter: the gray band, alpha kept
        return np.dstack([sharpen(np.ascontiguousarray(pixels[..., 0]), r, amount, threshold), pixels[..., 1]])
    return np.asarray(to_image(pixels).filter(ImageFilter.UnsharpMask(r, amount, threshold)))
