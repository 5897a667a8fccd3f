"""Watermark: another image placed over this one, with its alpha, scaled and faded."""

from __future__ import annotations

import numpy as np
from PIL import Image

from transforms.encode import to_image
from transforms.gravity import place

MARGIN = 0.02  # of the image's shorter side, between a corner or edge and the mark


def mark_size(width: int, height: int, mark_width: int, mark_height: int, scale: float) -> tuple[int, int]:
    """The mark scaled to scale x the image's width (aspect kept), shrunk further to fit inside it."""
    factor = min(scale * width / mark_width, width / mark_width, height / mark_height)
    return max(1, round(mark_width * factor)), max(1, round(mark_height * factor))


def watermark(pixels: np.ndarray, mark: np.ndarray, pos: str = "se", opacity: float = 1.0,
              scale: float = 0.25) -> np.ndarray:
    """pixels with mark composited at pos (a compass gravity, set in by MARGIN): its alpha times opacity."""
    base = pixels if pixels.ndim == 3 and pixels.shape[2] >= 3 else _as_rgb(pixels)
    height, width = base.shape[:2]
    size = mark_size(width, height, mark.shape[1], mark.shape[0], scale)
    overlay = np.asarray(to_image(_as_rgba(mark)).resize(size, Image.Resampling.LANCZOS))
    inset = round(MARGIN * min(width, height)) if pos != "center" else 0
    room = base[inset:height - inset, inset:width - inset] if min(height, width) > 2 * inset + max(size) else base
    x, y = place(room, size[0], size[1], pos)
    region = room[y:y + size[1], x:x + size[0]]
    alpha = overlay[..., 3:].astype(np.float32) * (opacity / 255)
    colour = overlay[..., :3].astype(np.float32)
    out = base.copy()
    target = out[inset:height - inset, inset:width - inset] if room is not base else out
    target[y:y + size[1], x:x + size[0], :3] = (colour * alpha + region[..., :3] * (1 - alpha) + 0.5).astype(np.uint8)
    return out


def _as_rgb(pixels: np.ndarray) -> np.ndarray:
    """Gray (with alpha) as RGB(A), so a coloured mark stays coloured."""
    gray = pixels.reshape(*pixels.shape[:2], -1)
    return np.concatenate([np.repeat(gray[..., :1], 3, axis=2), gray[..., 1:]], axis=2)


def _as_rgba(pixels: np.ndarray) -> np.ndarray:
    rgb = pixels if pixels.ndim == 3 and pixels.shape[2] >= 3 else _as_rgb(pixels)
    if rgb.shape[2] == 4:
        return rgb
    return np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
