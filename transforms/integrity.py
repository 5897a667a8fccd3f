"""Is every pixel the header promises really in the file? Checked once, when an upload is accepted.

Pillow fills what is missing instead of failing: a PNG whose compressed stream ends cleanly after
half the rows decodes with the rest blank, and libjpeg only warns ("premature end of data") when a
JPEG's scans stop short of the height its frame header claims. Such files are refused (400) rather
than stored as a picture that is half grey.
"""

from __future__ import annotations

import struct
import zlib

import simplejpeg

from transforms.errors import CorruptImage

_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples a pixel
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_INFLATE_STEP = 1 << 20


def _png_raw_size(width: int, height: int, bit_depth: int, colour_type: int, interlaced: bool) -> int:
    """Bytes the filtered scanlines take: a filter byte plus the packed samples, per row (and per pass)."""
    bits = bit_depth * _PNG_CHANNELS.get(colour_type, 4)
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        cols, rows = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if cols > 0 and rows > 0:
            total += rows * (1 + (cols * bits + 7) // 8)
    return total


def check_png(data: bytes) -> None:
    """The IDAT stream inflates to every row the header declares (counted, never held)."""
    width, height, bit_depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    expected = _png_raw_size(width, height, bit_depth, colour_type, interlace == 1)
    inflate = zlib.decompressobj()
    produced, at = 0, 8
    while at + 8 <= len(data) and produced <= expected:
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"IDAT":
            pending = data[at + 8:at + 8 + length]
            while pending and produced <= expected:
                produced += len(inflate.decompress(pending, _INFLATE_STEP))
                pending = inflate.unconsumed_tail
        elif kind == b"IEND":
            break
        at += 12 + length
    if produced < expected:
        raise CorruptImage(f"the PNG's data ends after {produced} of the {expected} bytes its "
                           f"{width}x{height} header promises")


def check_jpeg(data: bytes, cmyk: bool) -> None:
    """libjpeg-turbo (simplejpeg) finds data for every row (a 1/8-scale decode: all the entropy-coded
    data is read, little is reconstructed). It stops at the first warning: warnings other than an
    early end (extraneous bytes before a marker, common in cameras' files) are accepted, as Pillow
    accepts them, so an early end after one of them goes unseen."""
    try:
        simplejpeg.decode_jpeg(data, colorspace="CMYK" if cmyk else "GRAY", min_factor=8, strict=True)
    except ValueError as exc:
        if "premature end" in str(exc).lower():
            raise CorruptImage(f"the JPEG's data ends before its last row: {exc}") from None
