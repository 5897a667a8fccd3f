"""Encode normalised pixels (see transforms.decode) into an output format.

Outputs carry no EXIF, GPS or ICC: orientation is applied and colour is already sRGB.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from transforms.alpha import flatten_on_white

MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
WRITABLE = frozenset(MEDIA_TYPES)


@dataclass(frozen=True)
class EncodeOptions:
    """Codec settings, chosen by the service configuration."""

    jpeg_quality: int = 85
    png_compress_level: int = 6
    webp_quality: int = 80


def to_image(pixels: np.ndarray) -> Image.Image:
    """(H, W) -> L, (H, W, 2) -> LA, (H, W, 3) -> RGB, (H, W, 4) -> RGBA."""
    return Image.fromarray(np.ascontiguousarray(pixels))


def encode(pixels: np.ndarray, fmt: str, options: EncodeOptions) -> bytes:
    if fmt not in WRITABLE:
        raise ValueError(f"cannot write {fmt}")
    if fmt == "JPEG":
        pixels = flatten_on_white(pixels)  # JPEG has no alpha: white, not black, behind it
    img = to_image(pixels)
    out = io.BytesIO()
    if fmt == "JPEG":
        img.save(out, "JPEG", quality=options.jpeg_quality)
    elif fmt == "PNG":
        img.save(out, "PNG", compress_level=options.png_compress_level)
    else:
        img.save(out, "WEBP", quality=options.webp_quality)
    return out.getvalue()
