"""Exact JPEG outputs: the original's own DCT coefficients, moved or cut to the luma, never quantised again.

A mirror, a grayscale, an EXIF rotation or the JPEG itself can be answered without decoding a pixel:
libjpeg-turbo's tjTransform moves the coefficient blocks (and drops the chroma for grayscale), and a
JPEG asked for as JPEG only loses its metadata segments. That is 3-4x less CPU than decode + encode and
adds no generation of loss; it costs no more bytes than a re-encode as long as the original's quality is
at most the output's (estimate_quality). The policy (which requests take this path) is the pipeline's.

tjTransform comes from the `jpegtran-cffi-wheels` wheel (libjpeg-turbo bundled), called through its
cffi module directly: zero-copy input, one handle per thread, and the options the wrapper can't ask for
(COPYNONE). Its calls release the GIL. bench/jpeg_exact_candidates.py measured it against `turbojpeg`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from _jpegtran import ffi, lib
from PIL import Image, ImageCms

# tjTransform's ops (TJXOP_*), by what they do to an array of pixels: the lossless moves.
NONE, HFLIP, VFLIP = lib.TJXOP_NONE, lib.TJXOP_HFLIP, lib.TJXOP_VFLIP
TRANSPOSE, TRANSVERSE = lib.TJXOP_TRANSPOSE, lib.TJXOP_TRANSVERSE
ROT90, ROT180, ROT270 = lib.TJXOP_ROT90, lib.TJXOP_ROT180, lib.TJXOP_ROT270
_MOVES = {
    NONE: lambda a: a, HFLIP: lambda a: a[:, ::-1], VFLIP: lambda a: a[::-1],
    TRANSPOSE: lambda a: a.swapaxes(0, 1), TRANSVERSE: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    ROT90: lambda a: np.rot90(a, -1), ROT180: lambda a: a[::-1, ::-1], ROT270: lambda a: np.rot90(a, 1),
}
# What displaying an EXIF orientation does to the stored pixels (as Pillow's exif_transpose does).
_ORIENTATIONS = {1: None, 2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                 4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}

_PERFECT = lib.TJXOPT_PERFECT  # refuse, rather than leave edge blocks unmoved, when the size isn't whole MCUs
_GRAY = lib.TJXOPT_GRAY
_PROGRESSIVE = 32  # TJXOPT_PROGRESSIVE and TJXOPT_COPYNONE: not in the wheel's cdef, stable since TurboJPEG 1.2
_COPYNONE = 64  # no marker of the source is copied: no EXIF, XMP or comment leaves (ICC is put back, below)
_STOP_ON_WARNING = 8192  # TJFLAG_STOPONWARNING: a damaged stream is refused, not patched
_LIMIT_SCANS = 32768  # TJFLAG_LIMITSCANS: at most 500 progressive scans (ours are checked before, too)

# libjpeg's base tables (ITU T.81 Annex K), natural order, which IJG-based encoders scale by quality.
_BASE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
     14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
     49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99],
    [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
     47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32,
])


def _scaled_tables() -> np.ndarray:
    """(100, 2, 64): the tables jpeg_set_quality(q, force_baseline=TRUE) writes for q = 1..100."""
    quality = np.arange(1, 101)[:, None, None]
    scale = np.where(quality < 50, 5000 // quality, 200 - 2 * quality)
    return np.clip((_BASE[None] * scale + 50) // 100, 1, 255)


_TABLES = _scaled_tables()


def estimate_quality(quantization: Mapping[int, Sequence[int]]) -> int:
    """The IJG quality (1-100) whose tables are nearest the JPEG's (Pillow's `quantization`, natural order):
    exact for files libjpeg and its kin wrote, the nearest match for other encoders' tables."""
    tables = [np.asarray(quantization[k], dtype=np.int64) for k in sorted(quantization)[:2]]
    error = sum(np.abs(_TABLES[:, i] - table).sum(axis=1) for i, table in enumerate(tables))
    return int(np.argmin(error)) + 1  # ties go to the lower quality: the one more likely to re-encode


def _op_table() -> dict[tuple[int, bool], int]:
    """(EXIF orientation, mirror after it) -> the one tjTransform op that moves the stored blocks so."""
    probe = np.arange(6, dtype=np.uint8).reshape(2, 3)  # no symmetry: each of the 8 moves gives another array
    table = {}
    for orientation, method in _ORIENTATIONS.items():
        image = Image.fromarray(probe)
        shown = np.asarray(image.transpose(method) if method is not None else image)
        for mirror in (False, True):
            wanted = shown[:, ::-1] if mirror else shown
            table[orientation, mirror] = next(op for op, move in _MOVES.items()
                                              if np.array_equal(move(probe), wanted))
    return table


OPS = _op_table()

POLICIES = ("auto", "always", "never")


@dataclass(frozen=True)
class Exact:
    """How one JPEG becomes an exact answer."""

    op: int  # the tjTransform move (OPS)
    gray: bool  # keep the luma alone
    progressive: bool  # written in progressive scans
    as_is: bool  # the coefficients as they are, scans included: strip() alone


def choose(img: Image.Image, orientation: int, *, mirror: bool, gray: bool, quality: int, policy: str,
           progressive: bool) -> Exact | None:
    """Whether an opened (not decoded) JPEG may be answered exactly, oriented and then mirrored and/or cut to
    its luma, for an output of this quality. "auto": when its own quality is at most that, the exact answer
    costs no more bytes than a re-encode; "always": whatever its quality; "never". CMYK and YCCK are left to
    the decoder (browsers show them badly), and so is a one-channel output of an original whose profile
    isn't sRGB: a gray JPEG can't carry an RGB profile."""
    op = OPS.get((orientation, mirror))
    if policy == "never" or op is None or img.mode not in ("RGB", "L"):
        return None
    if policy == "auto" and estimate_quality(img.quantization) > quality:
        return None
    icc = img.info.get("icc_profile")
    if gray and img.mode == "RGB" and icc and not _srgb(icc):
        return None
    gray = gray and img.mode == "RGB"
    return Exact(op, gray, progressive, op == NONE and not gray and (not progressive or "progression" in img.info))


def _srgb(icc: bytes) -> bool:
    try:
        return "srgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).lower()
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return False


def render(data: bytes, exact: Exact) -> bytes | None:
    """The exact answer, or None when the library refuses it (the caller decodes instead)."""
    if exact.as_is:
        return strip(data)
    out = transform(data, exact.op, gray=exact.gray, progressive=exact.progressive)
    if out is None or not exact.gray:
        return out and with_icc_of(out, data)
    return out if _components(out) == 1 else None  # an RGB-coded JPEG has no luma to keep: libjpeg keeps all


def _components(data: bytes) -> int:
    frame = next((part for marker, part in _parts(data) or [] if 0xC0 <= marker <= 0xCF
                  and marker not in (0xC4, 0xC8, 0xCC)), b"")
    return frame[9] if len(frame) > 9 else 0


def transform(data: bytes, op: int, *, gray: bool = False, progressive: bool = False) -> bytes | None:
    """tjTransform: the blocks moved by op (and only the luma kept, for gray), perfectly, with no source
    marker copied. None when the library refuses: the size isn't whole MCUs for the move, or the stream is
    damaged (a warning counts). The caller's limits are checked before; this reads no byte past len(data)."""
    # A handle per call: one that has written progressive scans writes later baseline ones differently (it
    # keeps state), and the same request must give the same bytes on every replica. One costs about 1 us.
    handle = lib.tjInitTransform()
    if handle == ffi.NULL:
        return None
    spec = ffi.new("tjtransform *")
    spec.op = op
    spec.options = _PERFECT | _COPYNONE | (_GRAY if gray else 0) | (_PROGRESSIVE if progressive else 0)
    out = ffi.new("unsigned char **")
    size = ffi.new("unsigned long *")
    try:
        status = lib.tjTransform(handle, ffi.from_buffer("unsigned char[]", data), len(data), 1, out, size, spec,
                                 _STOP_ON_WARNING | _LIMIT_SCANS)
        return bytes(ffi.buffer(out[0], size[0])) if status == 0 and out[0] != ffi.NULL else None
    finally:
        if out[0] != ffi.NULL:
            lib.tjFree(out[0])
        lib.tjDestroy(handle)


# A marker (0xFF, then not a stuffed 0x00, a restart marker or a fill byte): where the next segment starts,
# also inside entropy-coded data, which escapes every other 0xFF.
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOS, _EOI, _APP0, _APP2, _APP14 = 0xDA, 0xD9, 0xE0, 0xE2, 0xEE
_ICC = b"ICC_PROFILE\x00"


def _parts(data: bytes) -> list[tuple[int, bytes]] | None:
    """The JPEG as (marker, bytes) in order, up to its EOI (what follows it, such as an MPO's other
    pictures, is left out); entropy-coded data and fill bytes are parts of marker 0. None if malformed."""
    if not data.startswith(b"\xff\xd8"):
        return None
    parts: list[tuple[int, bytes]] = [(0xD8, b"\xff\xd8")]
    pos = 2
    while (found := _MARKER.search(data, pos)) is not None:
        start, marker = found.start(), data[found.start() + 1]
        if start > pos:
            parts.append((0, data[pos:start]))
        if marker == _EOI:
            return [*parts, (_EOI, b"\xff\xd9")]
        end = start + 2 + int.from_bytes(data[start + 2:start + 4], "big")
        if start + 4 > len(data) or end > len(data) or end < start + 4:
            return None
        parts.append((marker, data[start:end]))
        pos = end
    return None  # no EOI


def _wanted(marker: int, part: bytes) -> bool:
    """What decoding needs, and the colour profile: no EXIF, XMP, IPTC, comment, thumbnail or MPF."""
    if 0xE0 <= marker <= 0xEF:
        return (marker == _APP0 and part[4:9] == b"JFIF\x00") or (marker == _APP14 and part[4:9] == b"Adobe") \
            or (marker == _APP2 and part[4:16] == _ICC)
    return marker != 0xFE  # COM


def strip(data: bytes) -> bytes | None:
    """The JPEG as it is, coefficient for coefficient, with only the segments decoding needs and its ICC
    profile. None if its structure is malformed."""
    parts = _parts(data)
    return None if parts is None else b"".join(part for marker, part in parts if _wanted(marker, part))


def with_icc_of(output: bytes, original: bytes) -> bytes:
    """output (from transform(), which copies no marker) with original's ICC profile segments put back,
    after the JFIF header: the moved pixels are still in that colour space."""
    parts = _parts(original) or []
    icc = b"".join(part for marker, part in parts if marker == _APP2 and part[4:16] == _ICC)
    if not icc:
        return output
    at = 2 + (2 + int.from_bytes(output[4:6], "big") if output[2:4] == b"\xff\xe0" else 0)
    return output[:at] + icc + output[at:]

