"""libturbojpeg through ctypes: JPEG compression, decompression and lossless transforms, without the GIL.

Pillow holds the GIL while it encodes (its decoders release it, its encoders don't), so two
renders in one process (the ingress renders small originals beside its event loop) take turns.
A ctypes call releases the GIL for as long as the C call runs. The TurboJPEG 2 API is used: it is
what Debian 12 and Ubuntu 22.04/24.04 ship, and TurboJPEG 3 keeps it. Every function returns None
when the library is not on the machine; callers then fall back to Pillow.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading

import numpy as np

_TJPF_RGB = 0
_TJPF_GRAY = 6
_TJSAMP_420 = 2
_TJSAMP_GRAY = 3
# A warning (truncated data, a corrupt segment) fails the decode instead of showing grey; a
# progressive file with an absurd number of scans (a CPU bomb) is refused.
_TJFLAG_STOPONWARNING = 8192
_TJFLAG_LIMITSCANS = 32768

_Buffer = ctypes.POINTER(ctypes.c_ubyte)


class Region(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_int), ("w", ctypes.c_int), ("h", ctypes.c_int)]


class Transform(ctypes.Structure):
    _fields_ = [("r", Region), ("op", ctypes.c_int), ("options", ctypes.c_int),
                ("data", ctypes.c_void_p), ("customFilter", ctypes.c_void_p)]


@functools.cache
def library() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("turbojpeg") or "libturbojpeg.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.tjInitCompress.restype = ctypes.c_void_p
    lib.tjInitTransform.restype = ctypes.c_void_p
    lib.tjInitDecompress.restype = ctypes.c_void_p
    lib.tjDecompress2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.tjCompress2.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                ctypes.c_int, ctypes.POINTER(_Buffer), ctypes.POINTER(ctypes.c_ulong),
                                ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.tjTransform.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_int,
                                ctypes.POINTER(_Buffer), ctypes.POINTER(ctypes.c_ulong),
                                ctypes.POINTER(Transform), ctypes.c_int]
    lib.tjFree.argtypes = [_Buffer]
    return lib


_handles = threading.local()  # a TurboJPEG handle is not thread-safe: one per thread and kind


def handle(lib: ctypes.CDLL, kind: str) -> int:
    """This thread's compressor ("Compress"), decompressor ("Decompress") or transformer ("Transform")."""
    found = getattr(_handles, kind, None)
    if found is None:
        found = getattr(lib, f"tjInit{kind}")()
        setattr(_handles, kind, found)
    return found


def take(lib: ctypes.CDLL, status: int, out: ctypes._Pointer, size: ctypes.c_ulong) -> bytes | None:
    """The buffer a call allocated, as bytes (None when the call failed), freed either way."""
    try:
        return ctypes.string_at(out, size.value) if status == 0 else None
    finally:
        if out:
            lib.tjFree(out)


def compress(pixels: np.ndarray, quality: int) -> bytes | None:
    """RGB (H, W, 3) or grayscale (H, W) uint8 pixels as a baseline JPEG with 4:2:0 chroma (grayscale:
    one channel), as Pillow writes it by default; None without libturbojpeg or when it fails (the caller
    then tries Pillow, which says why)."""
    lib = library()
    if lib is None:
        return None
    pixels = np.ascontiguousarray(pixels)
    gray = pixels.ndim == 2
    height, width = pixels.shape[:2]
    out = _Buffer()
    size = ctypes.c_ulong(0)
    status = lib.tjCompress2(handle(lib, "Compress"), pixels.ctypes.data, width, 0, height,
                             _TJPF_GRAY if gray else _TJPF_RGB, ctypes.byref(out), ctypes.byref(size),
                             _TJSAMP_GRAY if gray else _TJSAMP_420, quality, 0)
    return take(lib, status, out, size)


def decompress(data: bytes, width: int, height: int, gray: bool) -> np.ndarray | None:
    """Decode straight into an (H, W, 3) RGB or (H, W) gray array: no intermediate image and no copy
    (Pillow decodes to 4 bytes a pixel and packs them into numpy under the GIL). width and height: the
    full size, or the size of a 1/2, 1/4 or 1/8 DCT-scaled decode. None without libturbojpeg, or when
    the stream is not perfectly clean (the caller lets Pillow decode it, and say what is wrong)."""
    lib = library()
    if lib is None:
        return None
    pixels = np.empty((height, width) if gray else (height, width, 3), np.uint8)
    status = lib.tjDecompress2(handle(lib, "Decompress"), data, len(data), pixels.ctypes.data, width, 0, height,
                               _TJPF_GRAY if gray else _TJPF_RGB, _TJFLAG_STOPONWARNING | _TJFLAG_LIMITSCANS)
    return pixels if status == 0 else None
