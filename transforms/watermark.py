"""Watermark: another image placed over this one, with its alpha, scaled and faded."""

from __future__ import annotations

import numpy as np

from transforms.alpha import composite, expand_gray
from transforms.gravity import place
from transforms.resample import resample

MARGIN = 0.02  # of the image's shorter side, between a corner or edge and the mark


def mark_size(width: int, height: int, mark_width: int, mark_height: int, scale: float) -> tuple[int, int]:
    """The mark scaled to scale x the image's width (aspect kept), shrunk further to fit inside it."""
    factor = min(scale * width / mark_width, width / mark_width, height / mark_height)
    return max(1, round(mark_width * factor)), max(1, round(mark_height * factor))


def watermark(pixels: np.ndarray, mark: np.ndarray, pos: str = "se", opacity: float = 1.0,
              scale: float = 0.25) -> np.ndarray:
    """pixels with mark composited at pos (a compass gravity, set in by MARGIN): its alpha times opacity."""
    out = np.array(expand_gray(pixels))  # a copy, drawn on; a coloured mark stays coloured on gray
    height, width = out.shape[:2]
    size = mark_size(width, height, mark.shape[1], mark.shape[0], scale)
    overlay = resample(_rgba(mark), size)
    inset = round(MARGIN * min(width, height)) if pos != "center" else 0
    if min(height, width) <= 2 * inset + max(size):
        inset = 0
    room = out[inset:height - inset, inset:width - inset]
    x, y = place(room, size[0], size[1], pos)
    region = room[y:y + size[1], x:x + size[0], :3]
    alpha = (overlay[..., 3:].astype(np.float32) * opacity + 0.5).astype(np.uint8)
    composite(overlay[..., :3], alpha, region, region)
    return out


def _rgba(pixels: np.ndarray) -> np.ndarray:
    rgb = expand_gray(pixels)
    if rgb.shape[2] == 4:
        return rgb
    return np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
