"""Counting frames and progressive scans from the bytes, before anything is decoded.

Pillow's GIF seek composites every frame onto the canvas (a 23 KB GIF of 1,000 tiny frames on a
7000x7000 canvas costs 100 ms a frame), and its n_frames walks the whole file however many frames
there are. These counters stop at the limit: their cost is bounded by the limit, not by the file.
"""

from __future__ import annotations

from PIL import Image

_GIF_TRAILER, _GIF_EXTENSION, _GIF_IMAGE = 0x3B, 0x21, 0x2C
_SOS = b"\xff\xda"  # start of scan; never inside entropy-coded data (0xFF there is followed by 0x00)


def _skip_sub_blocks(data: bytes, at: int) -> int:
    """The offset after a chain of GIF data sub-blocks (length byte, bytes; ended by a zero length)."""
    while at < len(data) and data[at]:
        at += data[at] + 1
    return at + 1


def gif_frames(data: bytes, cap: int) -> tuple[int, int, int]:
    """(frames, width, height): image descriptors in a GIF, counting at most cap + 1 of them, and the
    largest extent any of them claims (offset plus size). Truncated files count what is there."""
    if len(data) < 13:
        return 0, 0, 0
    at = 13
    if data[10] & 0x80:  # global colour table
        at += 3 << ((data[10] & 7) + 1)
    frames = width = height = 0
    while at < len(data) and frames <= cap:
        block = data[at]
        if block == _GIF_IMAGE:
            frames += 1
            if at + 10 > len(data):
                break
            left, top, w, h = (int.from_bytes(data[at + i:at + i + 2], "little") for i in (1, 3, 5, 7))
            width, height = max(width, left + w), max(height, top + h)
            packed = data[at + 9]
            at += 10 + ((3 << ((packed & 7) + 1)) if packed & 0x80 else 0) + 1  # descriptor, local table, LZW size
            at = _skip_sub_blocks(data, at)
        elif block == _GIF_EXTENSION:
            at = _skip_sub_blocks(data, at + 2)
        else:  # trailer, or garbage after the last frame: Pillow stops there too
            break
    return frames, width, height


def count_frames(img: Image.Image, data: bytes, cap: int) -> int:
    """Frames (or pages) of an opened image, counting at most cap + 1, without decoding any."""
    if img.format == "GIF":
        return max(1, gif_frames(data, cap)[0])
    if img.format == "TIFF":  # a TIFF seek reads one directory, no pixels; the chain can be long
        count = 1
        try:
            while count <= cap:
                img.seek(count)
                count += 1
        except EOFError:
            pass
        img.seek(0)
        return count
    return int(getattr(img, "n_frames", 1))  # WebP, APNG, MPO: the count is in a header


def jpeg_scans(data: bytes) -> int:
    """Scans in a JPEG (an upper bound: an embedded thumbnail's scan counts too)."""
    return data.count(_SOS)
