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
    """Composite LA/RGBA onto an opaque colour. Opaque inputs pass through; gray with alpha on a colour
    that is not gray becomes RGB."""
    if not has_alpha(pixels):
        return pixels
    if pixels.shape[2] == 2 and len(set(background)) > 1:
        pixels = expand_gray(pixels)
    behind = np.asarray(background[:pixels.shape[2] - 1], np.uint8)
    out = np.empty((*pixels.shape[:2], pixels.shape[2] - 1), np.uint8)
    composite(pixels[..., :-1], pixels[..., -1:], np.broadcast_to(behind, out.shape), out)
    return out[..., 0] if out.shape[2] == 1 else out


def composite(colour: np.ndarray, alpha: np.ndarray, behind: np.ndarray, out: np.ndarray) -> None:
    """out = (colour*alpha + behind*(255-alpha) + 127) // 255, all uint8, in row chunks so that the uint16
    temporaries stay small (and in cache). out may be behind itself."""
    for top in range(0, out.shape[0], _ROWS_PER_CHUNK):
        rows = slice(top, top + _ROWS_PER_CHUNK)
        a = alpha[rows].astype(np.uint16)
        out[rows] = (colour[rows].astype(np.uint16) * a + behind[rows].astype(np.uint16) * (255 - a) + 127) // 255


def expand_gray(pixels: np.ndarray) -> np.ndarray:
    """L -> RGB and LA -> RGBA (the gray repeated into the colour channels); colour passes through."""
    if pixels.ndim == 3 and pixels.shape[2] >= 3:
        return pixels
    gray = pixels.reshape(*pixels.shape[:2], -1)
    return np.concatenate([np.repeat(gray[..., :1], 3, axis=2), gray[..., 1:]], axis=2)
