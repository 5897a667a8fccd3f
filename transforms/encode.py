"""Encode normalised pixels (see transforms.decode) into an output format.

Outputs carry no EXIF, GPS or ICC: orientation is applied and colour is already sRGB.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image

from transforms import jpeg
from transforms.alpha import flatten_on_white
from transforms.png_fast import encode_png

PNG_COMPRESSIONS = ("fast", "small")
ENCODABLE = frozenset(("JPEG", "PNG", "WEBP", "AVIF"))
# Formats an image may keep; AVIF is written on request only (slow to encode).
WRITABLE = frozenset(("JPEG", "PNG", "WEBP"))


# How each option is spelled in a variant's key.
_KEY_NAMES = {"jpeg_quality": "jpeg_quality", "png_compression": "compression", "webp_quality": "webp_quality",
              "lossless_mirror": "lossless_mirror"}


@dataclass(frozen=True)
class EncodeOptions:
    """Codec settings, chosen by the service configuration."""

    jpeg_quality: int = 85
    png_compression: str = "fast"  # "fast": transforms.png_fast; "small": Pillow, zlib level 9
    webp_quality: int = 80
    # A plain JPEG mirrored in the DCT domain (transforms.jpeg_lossless): needs a system library, and
    # gives other bytes than decode-flip-encode, so it is opt-in.
    lossless_mirror: bool = False

    def spelling(self, skip: tuple[str, ...] = ()) -> str:
        """The options that differ from these defaults, in one fixed order ("" when none): part of a
        variant's key, so that bytes made under other settings are never served as these."""
        default = EncodeOptions()
        return "&".join(f"{_KEY_NAMES[f.name]}={int(v) if isinstance(v, bool) else v}" for f in fields(self)
                        if f.name not in skip and (v := getattr(self, f.name)) != getattr(default, f.name))


def to_image(pixels: np.ndarray) -> Image.Image:
    """(H, W) -> L, (H, W, 2) -> LA, (H, W, 3) -> RGB, (H, W, 4) -> RGBA."""
    return Image.fromarray(np.ascontiguousarray(pixels))


def encode(pixels: np.ndarray, fmt: str, options: EncodeOptions) -> bytes:
    if fmt not in ENCODABLE:
        raise ValueError(f"cannot write {fmt}")
    if fmt == "PNG" and options.png_compression == "fast":
        return encode_png(pixels)
    out = io.BytesIO()
    if fmt == "JPEG":  # JPEG has no alpha: white, not black, behind it
        return jpeg.compress(flatten_on_white(pixels), options.jpeg_quality)
    if fmt == "PNG":
        to_image(pixels).save(out, "PNG", compress_level=9)
    elif fmt == "WEBP":
        to_image(pixels).save(out, "WEBP", quality=options.webp_quality)
    else:
        to_image(pixels).save(out, "AVIF", quality=options.webp_quality, speed=8)
    return out.getvalue()
