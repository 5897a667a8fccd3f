"""Encode normalised pixels (see transforms.decode) into an output format.

Outputs carry no EXIF, GPS or ICC: orientation is applied and colour is already sRGB.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, fields, replace

import numpy as np
from PIL import Image

from transforms import jpeg
from transforms.alpha import expand_gray, flatten_on_white
from transforms.metadata import with_exif
from transforms.mirror import mirror
from transforms.png_fast import encode_png

PNG_COMPRESSIONS = ("fast", "small")
_EXIF_PREFIX = b"Exif\x00\x00"
ENCODABLE = frozenset(("JPEG", "PNG", "WEBP", "AVIF", "GIF"))
ANIMATED = frozenset(("GIF", "WEBP", "PNG"))  # outputs that keep an animation (PNG as APNG)
# Formats an image may keep; AVIF is written on request only (slow to encode).
WRITABLE = frozenset(("JPEG", "PNG", "WEBP"))


# How each option is spelled in a variant's key.
_KEY_NAMES = {"jpeg_quality": "jpeg_quality", "png_compression": "compression", "webp_quality": "webp_quality",
              "jpeg_lossless": "jpeg_lossless"}


@dataclass(frozen=True)
class EncodeOptions:
    """Codec settings, chosen by the service configuration."""

    jpeg_quality: int = 85
    png_compression: str = "fast"  # "fast": transforms.png_fast; "small": Pillow, zlib level 9
    webp_quality: int = 80
    # Which JPEG originals are answered from their own coefficients (transforms.jpeg_exact.POLICIES).
    jpeg_lossless: str = "auto"

    def spelling(self, skip: tuple[str, ...] = ()) -> str:
        """The options that differ from these defaults, in one fixed order ("" when none): part of a
        variant's key, so that bytes made under other settings are never served as these."""
        return _spelling(self, skip)


@functools.cache  # a key is spelled on every request, from a handful of option sets
def _spelling(options: EncodeOptions, skip: tuple[str, ...]) -> str:
    default = EncodeOptions()
    return "&".join(f"{_KEY_NAMES[f.name]}={int(v) if isinstance(v, bool) else v}" for f in fields(options)
                    if f.name not in skip and (v := getattr(options, f.name)) != getattr(default, f.name))


def to_image(pixels: np.ndarray) -> Image.Image:
    """(H, W) -> L, (H, W, 2) -> LA, (H, W, 3) -> RGB, (H, W, 4) -> RGBA."""
    return Image.fromarray(np.ascontiguousarray(pixels))


@dataclass(frozen=True)
class OutputOptions:
    """What a request asks of its output beyond the format and quality."""

    progressive: bool = False  # JPEG: progressive scans (see transforms.jpeg)
    exif: bytes | None = None  # keep this EXIF (strip=0; see transforms.metadata)
    max_bytes: int | None = None  # lossy formats: the highest quality whose output fits, if any does
    mirror: bool = False  # flip left-right first: a baseline RGB JPEG does it as it encodes (jpeg.compress_mirrored)


LOSSY = frozenset(("JPEG", "WEBP", "AVIF"))
_MAX_BYTES_TRIES = 6


def encode_output(pixels: np.ndarray, fmt: str, options: EncodeOptions, output: OutputOptions) -> bytes:
    """encode() with the request's output options. max_bytes: a binary search over quality, at most
    _MAX_BYTES_TRIES encodes; when even the lowest tried is too large, that smallest one is returned."""
    if output.mirror and not (fmt == "JPEG" and not output.progressive and pixels.ndim == 3 and pixels.shape[2] == 3):
        pixels, output = mirror(pixels), replace(output, mirror=False)  # once, not per quality tried

    def once(quality: int | None) -> bytes:
        chosen = options if quality is None else replace(options, jpeg_quality=quality, webp_quality=quality)
        data = _encode(pixels, fmt, chosen, output)
        return with_exif(data, fmt, output.exif) if output.exif else data

    best = once(None)
    if output.max_bytes is None or fmt not in LOSSY or len(best) <= output.max_bytes:
        return best
    low, high = 1, (options.jpeg_quality if fmt == "JPEG" else options.webp_quality) - 1
    for _ in range(_MAX_BYTES_TRIES - 1):
        if low > high:
            break
        middle = (low + high) // 2
        candidate = once(middle)
        if len(candidate) <= output.max_bytes:
            best, low = candidate, middle + 1
        else:
            best = candidate if len(best) > output.max_bytes and len(candidate) < len(best) else best
            high = middle - 1
    return best


def _encode(pixels: np.ndarray, fmt: str, options: EncodeOptions, output: OutputOptions) -> bytes:
    if output.mirror:
        return jpeg.compress_mirrored(pixels, options.jpeg_quality)
    if fmt == "JPEG" and output.progressive:
        return jpeg.compress(flatten_on_white(pixels), options.jpeg_quality, progressive=True)
    if output.exif and fmt in ("WEBP", "AVIF"):
        out = io.BytesIO()
        quality = options.webp_quality
        to_image(pixels).save(out, fmt, quality=quality, exif=_EXIF_PREFIX + output.exif,
                              **({"speed": 8} if fmt == "AVIF" else {}))
        return out.getvalue()
    return encode(pixels, fmt, options)


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
    elif fmt == "GIF":
        _rgb(pixels).save(out, "GIF")
    else:
        to_image(pixels).save(out, "AVIF", quality=options.webp_quality, speed=8)
    return out.getvalue()


class AnimationWriter:
    """Frames of one size, each with its duration (ms), added one at a time and written as an animated
    GIF, WebP or PNG. A frame is kept only as the encoder will take it (a GIF's as a 1-byte palette
    image), so the arrays it came from are freed as the animation goes. loop: repeats (0 forever);
    None plays once, as a GIF without a loop extension does."""

    def __init__(self, fmt: str, options: EncodeOptions, loop: int | None) -> None:
        if fmt not in ANIMATED:
            raise ValueError(f"cannot write an animated {fmt}")
        self.fmt, self.options, self.loop = fmt, options, loop
        self.images: list[Image.Image] = []
        self.durations: list[int] = []

    def add(self, pixels: np.ndarray, duration: int) -> None:
        image = _rgb(pixels)
        self.images.append(_palette(image) if self.fmt == "GIF" else image)
        self.durations.append(duration)

    def finish(self) -> bytes:
        params: dict[str, object] = {"save_all": True, "append_images": self.images[1:], "duration": self.durations}
        if self.loop is not None:
            params["loop"] = self.loop
        if self.fmt == "GIF":
            params["disposal"] = 2  # every frame is a whole canvas: clear before drawing it, or alpha shows the last
        elif self.fmt == "WEBP":
            params["quality"] = self.options.webp_quality
        out = io.BytesIO()
        self.images[0].save(out, self.fmt, **params)
        return out.getvalue()


def _palette(image: Image.Image) -> Image.Image:
    """256 adaptive colours, a transparent one kept as the GIF's transparency (as Pillow's GIF writer does)."""
    indexed = image.convert("P", palette=Image.Palette.ADAPTIVE)
    if indexed.palette is not None and indexed.palette.mode == "RGBA":
        transparent = next((index for rgba, index in indexed.palette.colors.items() if rgba[3] == 0), None)
        if transparent is not None:
            indexed.info["transparency"] = transparent
    return indexed


def _rgb(pixels: np.ndarray) -> Image.Image:
    """RGB or RGBA, what every animated format takes."""
    return to_image(expand_gray(pixels))
