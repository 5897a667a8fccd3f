"""Lossless JPEG mirror in the DCT domain (libjpeg-turbo's tjTransform), when the geometry allows.

Flipping the coefficient blocks instead of decoding, flipping and re-encoding is faster and loses
nothing: the output is the original's own compressed data, mirrored. It needs a width that is a
multiple of the MCU (TJXOPT_PERFECT refuses otherwise) and the TurboJPEG library: no wheel offers
tjTransform, so this is the one use of an optional system package (`libturbojpeg0`). When either is
missing, mirror_jpeg returns None and the caller decodes, flips and encodes instead (the same
picture; different bytes). The TurboJPEG 2 API is used: what Debian 12 and Ubuntu 22.04/24.04
ship, and TurboJPEG 3 keeps it. A ctypes call releases the GIL while it runs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading

_TJXOP_HFLIP = 1
_TJXOPT_PERFECT = 1  # fail rather than trim or leave partial blocks unflipped
_TJXOPT_COPYNONE = 64  # drop EXIF, ICC and comments: outputs carry no metadata

_Buffer = ctypes.POINTER(ctypes.c_ubyte)


class _Region(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int)]


class _Transform(ctypes.Structure):
    _fields_ = [("r", _Region), ("op", ctypes.c_int), ("options", ctypes.c_int),
                ("data", ctypes.c_void_p), ("customFilter", ctypes.c_void_p)]


@functools.cache
def library() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.tjInitTransform.restype = ctypes.c_void_p
    lib.tjTransform.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_int,
                                ctypes.POINTER(_Buffer), ctypes.POINTER(ctypes.c_ulong),
                                ctypes.POINTER(_Transform), ctypes.c_int]
    lib.tjFree.argtypes = [_Buffer]
    return lib


_handles = threading.local()  # a TurboJPEG handle is not thread-safe: one per thread


def available() -> bool:
    return library() is not None


def mirror_jpeg(data: bytes) -> bytes | None:
    """The JPEG mirrored left-right without re-encoding, or None when that isn't possible here."""
    lib = library()
    if lib is None:
        return None
    handle = getattr(_handles, "transform", None)
    if handle is None:
        handle = _handles.transform = lib.tjInitTransform()
    out = _Buffer()
    size = ctypes.c_ulong(0)
    transform = _Transform(op=_TJXOP_HFLIP, options=_TJXOPT_PERFECT | _TJXOPT_COPYNONE)
    status = lib.tjTransform(handle, data, len(data), 1, ctypes.byref(out), ctypes.byref(size),
                             ctypes.byref(transform), 0)
    try:  # None: not MCU-aligned, or refused; the caller decodes instead
        return ctypes.string_at(out, size.value) if status == 0 else None
    finally:
        if out:
            lib.tjFree(out)
