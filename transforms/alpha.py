"""Alpha compositing."""

from __future__ import annotations

import numpy as np

_ROWS_PER_CHUNK = 256


def has_alpha(pixels: np.ndarray) -> bool:
    return pixels.ndim == 3 and pixels.shape[2] in (2, 4)


def flatten_on_white(pixels: np.ndarray) -> np.ndarray:
    """Composite LA/RGBA onto white: c' = (c*a + 255*(255-a) + 127) // 255. Opaque inputs pass through."""
    if not has_alpha(pixels):
        return pixels
    height = pixels.shape[0]
    out = np.empty((*pixels.shape[:2], pixels.shape[2] - 1), np.uint8)
    for top in range(0, height, _ROWS_PER_CHUNK):  # the uint16 temporaries stay small (and in cache)
        rows = pixels[top:top + _ROWS_PER_CHUNK]
        colour = rows[..., :-1].astype(np.uint16)
        alpha = rows[..., -1:].astype(np.uint16)
        out[top:top + _ROWS_PER_CHUNK] = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    return out[..., 0] if out.shape[2] == 1 else out
