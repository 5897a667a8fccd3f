"""Grayscale, bit-identical to Pillow's convert('L') (ITU-R 601-2 luma, 16-bit fixed point).

A plain JPEG source skips this: its Y plane is already this luma (JFIF's Y uses the same weights),
decoded without chroma upsampling or colour conversion (transforms.decode, luma=True). It differs
from convert('L') of the decoded RGB by rounding: under 0.01 levels on average (0.01-0.02 in absolute
value), at most 1 level wherever the decoded RGB does not clip, and up to about 10 where it does
(a colour outside the RGB cube; tests/test_jpeg.py).
"""

from __future__ import annotations

import numpy as np

_ROWS_PER_CHUNK = 256  # keeps the uint32 temporaries in cache


def grayscale(pixels: np.ndarray) -> np.ndarray:
    """RGB -> L and RGBA -> LA via (19595*R + 38470*G + 7471*B + 0x8000) >> 16; L and LA pass through."""
    if pixels.ndim == 2 or pixels.shape[2] == 2:
        return pixels
    height, width = pixels.shape[:2]
    luma = np.empty((height, width), np.uint8)
    for top in range(0, height, _ROWS_PER_CHUNK):
        rows = pixels[top:top + _ROWS_PER_CHUNK]
        acc = rows[..., 0].astype(np.uint32)
        acc *= 19595
        acc += rows[..., 1].astype(np.uint32) * np.uint32(38470)
        acc += rows[..., 2].astype(np.uint32) * np.uint32(7471)
        acc += 0x8000
        acc >>= 16
        luma[top:top + _ROWS_PER_CHUNK] = acc
    if pixels.shape[2] == 4:
        return np.dstack((luma, pixels[..., 3]))
    return luma
