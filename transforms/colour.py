"""Colours as the URL grammar spells them: 6 or 8 hex digits, rrggbb or rrggbbaa."""

from __future__ import annotations

import numpy as np

PATTERN = r"[0-9a-f]{6}([0-9a-f]{2})?"


def rgba(hex_colour: str) -> tuple[int, int, int, int]:
    value = bytes.fromhex(hex_colour)
    return (*value[:3], value[3] if len(value) == 4 else 255)  # type: ignore[return-value]


def fill_like(pixels: np.ndarray, shape: tuple[int, int], colour: tuple[int, int, int, int]) -> np.ndarray:
    """A height x width block of colour with pixels' channels (gray from the colour's luma when L/LA)."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    luma = round(0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2])
    value = {1: (luma,), 2: (luma, colour[3]), 3: colour[:3], 4: colour}[channels]
    block = np.empty((*shape, channels), np.uint8)
    block[...] = value
    return block[..., 0] if pixels.ndim == 2 else block
