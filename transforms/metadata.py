"""Metadata in outputs. The rule: outputs carry none by default (`strip=1`): orientation is applied to
the pixels and colour is converted to sRGB at decode, so nothing in them is needed to show the image
right. `strip=0` keeps the original's EXIF (camera, copyright, GPS...) with Orientation set to 1, in
JPEG, PNG, WebP and AVIF outputs; ICC and XMP are never kept."""

from __future__ import annotations

import contextlib
import io
import struct
import zlib

from PIL import Image

_ORIENTATION = 0x0112
_EXIF_PREFIX = b"Exif\x00\x00"
_MAX_APP1 = 65533 - len(_EXIF_PREFIX)


def exif_of(data: bytes) -> bytes | None:
    """The original's EXIF as TIFF bytes (Orientation reset to 1: the pixels are already upright), or None."""
    with contextlib.suppress(Exception):  # broken EXIF is common: then there is none to keep
        exif = Image.open(io.BytesIO(data)).getexif()
        if len(exif):
            if _ORIENTATION in exif:
                exif[_ORIENTATION] = 1
            return exif.tobytes().removeprefix(_EXIF_PREFIX)
    return None


def with_exif(encoded: bytes, fmt: str, exif: bytes) -> bytes:
    """JPEG: an APP1 segment after SOI; PNG: an eXIf chunk after IHDR. Other formats: as they are (WebP and
    AVIF get EXIF from their encoder, GIF has no place for it)."""
    if fmt == "JPEG" and len(exif) <= _MAX_APP1 and encoded[:2] == b"\xff\xd8":
        segment = b"\xff\xe1" + struct.pack(">H", len(exif) + len(_EXIF_PREFIX) + 2) + _EXIF_PREFIX + exif
        return encoded[:2] + segment + encoded[2:]
    if fmt == "PNG" and encoded[12:16] == b"IHDR":
        chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", zlib.crc32(b"eXIf" + exif))
        return encoded[:33] + chunk + encoded[33:]  # signature (8) + IHDR (25)
    return encoded
