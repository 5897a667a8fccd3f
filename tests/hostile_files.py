"""Hostile files built from their specifications: small on the wire, huge or endless to decode."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.images import encoded, photo


def gif_frame_bomb(frames: int = 1000, side: int = 7000) -> bytes:
    """A ~23 KB GIF: `frames` frames of one pixel each on a side x side canvas (Pillow composites every
    frame onto the whole canvas when it seeks)."""
    out = io.BytesIO()
    out.write(b"GIF89a" + side.to_bytes(2, "little") * 2 + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff")
    out.write(b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00")  # loop forever
    for index in range(frames):
        out.write(b"\x21\xf9\x04\x00\x0a\x00\x00\x00")  # graphic control: 100 ms
        out.write(b"\x2c" + (index % side).to_bytes(2, "little") + b"\x00\x00\x01\x00\x01\x00\x00")
        out.write(b"\x02\x02\x44\x01\x00")  # LZW: one pixel
    out.write(b"\x3b")
    return out.getvalue()


def _segments(data: bytes) -> list[bytes]:
    """A JPEG split into marker segments, each scan with its entropy-coded data."""
    parts, at = [data[:2]], 2
    while at < len(data):
        marker = data[at + 1]
        if marker == 0xD9:
            parts.append(data[at:at + 2])
            break
        length = int.from_bytes(data[at + 2:at + 4], "big")
        end = at + 2 + length
        if marker == 0xDA:  # entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or RSTn
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        parts.append(data[at:end])
        at = end
    return parts


def jpeg_scan_bomb(scans: int = 5000, side: int = 256) -> bytes:
    """A real progressive JPEG whose last refinement scan is repeated: every repeat is decoded in full
    (libjpeg warns about the bogus progression and goes on)."""
    data = encoded(photo(side, side, seed=5), "JPEG", progressive=True, quality=90)
    parts = _segments(data)
    last_scan = max(i for i, part in enumerate(parts) if part[:2] == b"\xff\xda")
    return b"".join(parts[:last_scan + 1] + [parts[last_scan]] * scans + parts[last_scan + 1:])


def tiny_png(side: int = 1) -> bytes:
    return encoded(np.full((side, side, 3), 200, np.uint8), "PNG")


def flat_png(width: int, height: int) -> bytes:
    """A large image that is tiny on the wire (one colour compresses to almost nothing)."""
    return encoded(Image.new("RGB", (width, height), (90, 140, 200)), "PNG", compress_level=9)
