"""Alpha compositing."""

from __future__ import annotations

import numpy as np

_ROWS_PER_CHUNK = 256


def has_alpha(pixels: np.ndarray) -> bool:
    return pixels.ndim == 3 and pixels.shape[2] in (2, 4)


def flatten_on_white(pixels: np.ndarray) -> np.ndarray:
    """Composite LA/RGBA onto white. Opaque inputs pass through."""
    return flatten(pixels, (255, 255, 255))


def flatten(pixels: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Composite LA/RGBA onto an opaque colour: c' = (c*a + b*(255-a) + 127) // 255. Opaque inputs pass
    through; gray with alpha on a colour that is not gray becomes RGB."""
    if not has_alpha(pixels):
        return pixels
    if pixels.shape[2] == 2 and len(set(background)) > 1:
        pixels = np.dstack([pixels[..., :1]] * 3 + [pixels[..., 1:]])
    behind = np.asarray(background[:pixels.shape[2] - 1], np.uint16)
    height = pixels.shape[0]
    out = np.empty((*pixels.shape[:2], pixels.shape[2] - 1), np.uint8)
    for top in range(0, height, _ROWS_PER_CHUNK):  # the uint16 temporaries stay small (and in cache)
        rows = pixels[top:top + _ROWS_PER_CHUNK]
        colour = rows[..., :-1].astype(np.uint16)
        alpha = rows[..., -1:].astype(np.uint16)
        out[top:top + _ROWS_PER_CHUNK] = (colour * alpha + behind * (255 - alpha) + 127) // 255
    return out[..., 0] if out.shape[2] == 1 else out
