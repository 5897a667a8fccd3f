"""Alpha compositing."""

from __future__ import annotations

import numpy as np


def has_alpha(pixels: np.ndarray) -> bool:
    return pixels.ndim == 3 and pixels.shape[2] in (2, 4)


def flatten_on_white(pixels: np.ndarray) -> np.ndarray:
    """Composite LA/RGBA onto white: c' = (c*a + 255*(255-a) + 127) // 255. Opaque inputs pass through."""
    if not has_alpha(pixels):
        return pixels
    colour = pixels[..., :-1].astype(np.uint16)
    alpha = pixels[..., -1:].astype(np.uint16)
    out = (colour * alpha + 255 * (255 - alpha) + 127) // 255
    out = out.astype(np.uint8)
    return out[..., 0] if out.shape[2] == 1 else out
