"""Lossless JPEG mirror in the DCT domain (libjpeg-turbo's tjTransform), when the geometry allows.

Flipping the coefficient blocks instead of decoding, flipping and re-encoding is faster and loses
nothing: the output is the original's own compressed data, mirrored. It needs a width that is a
multiple of the MCU (TJXOPT_PERFECT refuses otherwise) and libturbojpeg on the machine; when
either is missing, mirror_jpeg returns None and the caller decodes, flips and encodes instead.
"""

from __future__ import annotations

import ctypes

from transforms import turbojpeg

_TJXOP_HFLIP = 1
_TJXOPT_PERFECT = 1  # fail rather than trim or leave partial blocks unflipped
_TJXOPT_COPYNONE = 64  # drop EXIF, ICC and comments: outputs carry no metadata


def available() -> bool:
    return turbojpeg.library() is not None


def mirror_jpeg(data: bytes) -> bytes | None:
    """The JPEG mirrored left-right without re-encoding, or None when that isn't possible here."""
    lib = turbojpeg.library()
    if lib is None:
        return None
    out = ctypes.POINTER(ctypes.c_ubyte)()
    size = ctypes.c_ulong(0)
    transform = turbojpeg.Transform(op=_TJXOP_HFLIP, options=_TJXOPT_PERFECT | _TJXOPT_COPYNONE)
    status = lib.tjTransform(turbojpeg.handle(lib, "Transform"), data, len(data), 1, ctypes.byref(out),
                             ctypes.byref(size), ctypes.byref(transform), 0)
    return turbojpeg.take(lib, status, out, size)  # None: not MCU-aligned, or refused; decode instead
