"""Gaussian blur: Pillow's (three extended box blurs in C, on 8-bit data, without the GIL).

Working memory is Pillow's copy of the image and its output, whatever the radius (the numpy version
this replaces held float64 prefix sums: about 40 bytes a channel-pixel, 9 GB for a 49 MP blur).
"""

from __future__ import annotations

import numpy as np
from PIL import ImageFilter

from transforms.encode import to_image


def blur(pixels: np.ndarray, radius: float) -> np.ndarray:
    """Blur with standard deviation radius; LA is blurred as L plus its alpha (Pillow has no LA filter)."""
    if radius <= 0:
        return pixels
    if pixels.ndim == 3 and pixels.shape[2] == 2:
        return np.dstack([blur(np.ascontiguousarray(pixels[..., band]), radius) for band in range(2)])
    return np.asarray(to_image(pixels).filter(ImageFilter.GaussianBlur(radius)))
