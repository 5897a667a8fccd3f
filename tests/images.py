"""Generated test pictures: photo-like, asymmetric, in any mode and format."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image


def photo(width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: compresses like a photo, and no two corners look alike."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.dstack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x * 3 + y * 7) % 256])
    noise = np.random.default_rng(seed).integers(-10, 10, base.shape)
    return (base + noise).clip(0, 255).astype(np.uint8)


def encoded(pixels: np.ndarray | Image.Image, fmt: str, **params: Any) -> bytes:
    img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


def pixels_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def opened(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img
