"""Files whose headers promise more rows than their data holds: refused at upload, not stored half grey."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from tests.images import encoded, photo, png_chunk
from transforms import CorruptImage, Limits, validate

PICTURE = photo(120, 100, seed=31)


def taller_png() -> bytes:
    """A valid PNG whose IHDR then claims twice the height: the zlib stream ends cleanly, rows short."""
    data = encoded(PICTURE, "PNG")
    header = struct.pack(">IIBBBBB", 120, 200, 8, 2, 0, 0, 0)
    return data[:8] + png_chunk(b"IHDR", header) + data[33:]


def taller_jpeg() -> bytes:
    data = bytearray(encoded(PICTURE, "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 7] = struct.pack(">H", 400)
    return bytes(data)


def interlaced_png(drop_bytes: int = 0) -> bytes:
    """A gray Adam7-interlaced PNG built by hand (Pillow writes none), its filtered data cut short by drop_bytes."""
    gray = PICTURE[..., 1]
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b"".join(b"\0" + row.tobytes() for x0, y0, dx, dy in passes for row in gray[y0::dy, x0::dx] if row.size)
    header = struct.pack(">IIBBBBB", 120, 100, 8, 0, 0, 0, 1)
    idat = zlib.compress(raw[:len(raw) - drop_bytes])
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


@pytest.mark.parametrize("make", [taller_png, taller_jpeg], ids=["png", "jpeg"])
def test_data_shorter_than_the_header_is_refused(make):
    with pytest.raises(CorruptImage, match="ends"):
        validate(make(), Limits())


def test_interlaced_png_is_counted_per_pass():
    assert validate(interlaced_png(), Limits()).info.height == 100
    with pytest.raises(CorruptImage, match="12067 of the 12188"):  # the last pass's last row is missing
        validate(interlaced_png(drop_bytes=121), Limits())


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_complete_files_pass(fmt):
    info = validate(encoded(np.dstack([PICTURE, PICTURE[..., :1]]) if fmt == "PNG" else PICTURE, fmt), Limits()).info
    assert (info.width, info.height) == (120, 100)
