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


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth structure at several scales, gradients and sensor-like noise: compresses like a photo."""
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width, 3), np.float32)
    for cells, weight in ((6, 0.45), (40, 0.25), (200, 0.15)):
        small = rng.integers(0, 256, (max(2, height * cells // width), cells, 3), dtype=np.uint8)
        out += weight * np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC), np.float32)
    y, x = np.mgrid[0:height, 0:width]
    out[..., 0] += 0.15 * 255 * x / width
    out[..., 2] += 0.15 * 255 * y / height
    out += rng.normal(0, 3, out.shape).astype(np.float32)
    return out.clip(0, 255).astype(np.uint8)


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


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    """A PNG assembled by hand: for 16-bit RGB (which Pillow can't write) and for hostile headers."""
    import struct

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def png16_rgb(values: np.ndarray) -> bytes:
    """values: (H, W, 3) uint16 -> a 16-bit RGB PNG."""
    import zlib

    rows = [b"\x00" + row.astype(">u2").tobytes() for row in values]
    return raw_png(values.shape[1], values.shape[0], 16, 2, zlib.compress(b"".join(rows)))


def zlib_of_zeros(total: int, level: int = 9) -> bytes:
    """A zlib stream that inflates to `total` zero bytes, built without holding them."""
    import zlib

    comp = zlib.compressobj(level)
    block = bytes(1 << 20)
    parts = []
    for _ in range(total // len(block)):
        parts.append(comp.compress(block))
    parts.append(comp.compress(bytes(total % len(block))))
    parts.append(comp.flush())
    return b"".join(parts)


# Where EXIF orientation n stores a picture P: exif_transpose must undo exactly this.
ORIENTATION_STORED = {
    1: lambda p: p,
    2: lambda p: p[:, ::-1],
    3: lambda p: p[::-1, ::-1],
    4: lambda p: p[::-1],
    5: lambda p: p.swapaxes(0, 1),
    6: lambda p: np.rot90(p, 1),
    7: lambda p: p.swapaxes(0, 1)[::-1, ::-1],
    8: lambda p: np.rot90(p, -1),
}


def with_orientation(picture: np.ndarray, orientation: int, fmt: str, **params: Any) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = np.ascontiguousarray(ORIENTATION_STORED[orientation](picture))
    return encoded(stored, fmt, exif=exif.tobytes(), **params)


def jpeg_reference(pixels: np.ndarray | Image.Image, quality: int = 85) -> np.ndarray:
    """The pixels of a JPEG encode of `pixels` by the project's encoder (libjpeg-turbo from imagecodecs:
    tests/test_jpeg.py holds it to Pillow's quality), decoded: what a pipeline ending in a JPEG encode
    must return for those pixels."""
    from transforms import EncodeOptions, encode

    return pixels_of(encode(np.asarray(pixels), "JPEG", EncodeOptions(jpeg_quality=quality))).astype(int)
