"""Borders: trim those of one colour, pad with a margin, flatten alpha onto a background."""

from __future__ import annotations

import numpy as np

from transforms.alpha import flatten, has_alpha
from transforms.colour import fill_like, rgba

_ROWS_PER_CHUNK = 256


def trim(pixels: np.ndarray, threshold: int = 10) -> np.ndarray:
    """Remove the borders whose every pixel is within threshold (per channel) of the top-left pixel.
    An image that is all border is left as it is. Compared in row chunks: the working memory stays small."""
    corner = pixels[0, 0].astype(np.int16)
    low = np.clip(corner - threshold, 0, 255).astype(np.uint8)
    high = np.clip(corner + threshold, 0, 255).astype(np.uint8)
    rows_differ = np.zeros(pixels.shape[0], bool)
    cols_differ = np.zeros(pixels.shape[1], bool)
    for top in range(0, pixels.shape[0], _ROWS_PER_CHUNK):
        chunk = pixels[top:top + _ROWS_PER_CHUNK]
        differs = (chunk < low) | (chunk > high)
        if differs.ndim == 3:
            differs = differs.any(axis=2)
        rows_differ[top:top + _ROWS_PER_CHUNK] = differs.any(axis=1)
        cols_differ |= differs.any(axis=0)
    rows, cols = np.flatnonzero(rows_differ), np.flatnonzero(cols_differ)
    if not rows.size:
        return pixels
    return pixels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def pad(pixels: np.ndarray, t: int = 0, r: int = 0, b: int = 0, l: int = 0,  # noqa: E741
        color: str = "ffffff") -> np.ndarray:
    """A margin of t, r, b, l pixels in color (rrggbb, or rrggbbaa: a transparent margin adds alpha)."""
    colour = rgba(color)
    if colour[3] < 255 and not has_alpha(pixels):  # the margin needs an alpha channel to be transparent
        opaque = np.full((*pixels.shape[:2], 1), 255, np.uint8)
        pixels = np.concatenate([pixels.reshape(*pixels.shape[:2], -1), opaque], axis=2)
    height, width = pixels.shape[:2]
    out = fill_like(pixels, (height + t + b, width + l + r), colour)
    out[t:t + height, l:l + width] = pixels
    return out


def background(pixels: np.ndarray, color: str = "ffffff") -> np.ndarray:
    """Alpha flattened onto color (its own alpha is ignored): what JPEG output does onto white."""
    return flatten(pixels, rgba(color)[:3])
