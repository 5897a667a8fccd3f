"""A fast, lossless PNG writer: numpy row filters + run-length deflate.

Pillow's PNG encoder deflates at level 6 (about 140 ms for a 1 MP photo here). This writer
computes all five PNG filters with numpy, keeps per row the one with the smallest sum of
absolute residuals (libpng's heuristic), and deflates photos with zlib's Z_RLE strategy at
level 1: good filtering leaves residuals that run-length matching compresses almost as well as a
full search. Graphics, where almost all residuals are zero, get the full search at level 6, which is
fast on them. bench/ measures it against Pillow's default: several times faster, within a few per cent
of the size. Pixels are identical: PNG filters are lossless by construction.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (L, LA, RGB, RGBA)
_BAND_ROWS = 32  # rows filtered at a time: the int16 temporaries stay in cache
_DEFLATE_SLICE = 4 << 20  # filtered bytes handed to zlib at a time (the output is the same for any split)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _filter_band(rows: np.ndarray, above: np.ndarray, bpp: int) -> np.ndarray:
    """Filter a band of raw scanlines (int16), given the scanline above it; rows prefixed by filter type."""
    left = np.zeros_like(rows)
    left[:, bpp:] = rows[:, :-bpp]
    up = np.empty_like(rows)
    up[0] = above
    up[1:] = rows[:-1]
    up_left = np.zeros_like(rows)
    up_left[:, bpp:] = up[:, :-bpp]
    # Paeth predictor, with pa = |b - c|, pb = |a - c|, pc = |a + b - 2c| (the same distances as the spec's).
    pa = np.abs(up - up_left)
    pb = np.abs(left - up_left)
    pc = np.abs(left + up - 2 * up_left)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    candidates = np.stack((rows, rows - left, rows - up, rows - ((left + up) >> 1), rows - paeth))
    residuals = candidates.astype(np.uint8)  # modulo 256, as PNG defines the filtered bytes
    cost = np.abs(residuals.view(np.int8)).sum(axis=2, dtype=np.int64)
    choice = cost.argmin(axis=0)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = choice
    out[:, 1:] = residuals[choice, np.arange(rows.shape[0])]
    return out


def filter_image(pixels: np.ndarray) -> np.ndarray:
    """All scanlines filtered, each prefixed by its filter type byte."""
    height = pixels.shape[0]
    bpp = 1 if pixels.ndim == 2 else pixels.shape[2]
    raw = np.ascontiguousarray(pixels).reshape(height, -1)
    out = np.empty((height, raw.shape[1] + 1), np.uint8)
    above = np.zeros(raw.shape[1], np.int16)
    for top in range(0, height, _BAND_ROWS):
        band = raw[top:top + _BAND_ROWS].astype(np.int16)
        out[top:top + _BAND_ROWS] = _filter_band(band, above, bpp)
        above = band[-1]
    return out


def encode_png(pixels: np.ndarray) -> bytes:
    """uint8 (H, W), (H, W, 2), (H, W, 3) or (H, W, 4) -> PNG bytes."""
    height, width = pixels.shape[:2]
    bpp = 1 if pixels.ndim == 2 else pixels.shape[2]
    filtered = filter_image(pixels)
    # Graphics (mostly exact repeats) need real match search, and it is cheap on them; photos
    # (few zero residuals) gain little from it and cost 5x more, so they get run-length matching.
    if np.count_nonzero(filtered) < filtered.size // 8:
        deflate = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY)
    else:
        deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[bpp], 0, 0, 0)
    # The compressed stream goes straight into the file as it comes: no second and third copy of it
    # from concatenating chunks (at 24 MP each copy is tens of MB of a replica's peak memory).
    head = _SIGNATURE + _chunk(b"IHDR", header)
    out = io.BytesIO()
    out.write(head + b"\0\0\0\0IDAT")  # IDAT's length is written once it is known
    crc = zlib.crc32(b"IDAT")
    flat = filtered.reshape(-1)
    for start in range(0, flat.size, _DEFLATE_SLICE):
        piece = deflate.compress(flat[start:start + _DEFLATE_SLICE])
        crc = zlib.crc32(piece, crc)
        out.write(piece)
    piece = deflate.flush()
    out.write(piece)
    size = out.tell() - len(head) - 8
    out.write(struct.pack(">I", zlib.crc32(piece, crc)) + _chunk(b"IEND", b""))
    out.seek(len(head))
    out.write(struct.pack(">I", size))
    return out.getvalue()
