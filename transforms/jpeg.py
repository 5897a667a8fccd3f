"""JPEG through libjpeg-turbo 3 from wheels, without the GIL: decoded by simplejpeg, written by imagecodecs
(progressive: by libvips).

Pillow holds the GIL while it encodes, and its decoder packs RGBX into numpy under the GIL, so two
renders in one process (the ingress renders small originals beside its event loop) took turns. These
wheels release it and ship libjpeg-turbo statically: every node, container and fresh machine gets the
same speed and the same bytes, with nothing to apt-get. simplejpeg decodes straight into the numpy
array (1 MP: 3.2 ms), with DCT scaling.

Baseline output has optimised Huffman tables, as thumbor's and imgproxy's have: the same pixels in
8 % fewer bytes (1 MP photo, q85), for 3 ms more CPU per 1 MP (5.2 ms against simplejpeg's 2.0, which
cannot optimise). A variant is encoded once and served many times: the bytes are what lasts.
imagecodecs' output is Pillow's with optimize=True, byte for byte. Progressive output goes through
libvips (its own libjpeg-turbo, also from a wheel): Pillow's pixels exactly.
"""

from __future__ import annotations

import imagecodecs
import numpy as np
import simplejpeg

from transforms.vips import from_array


def decompress(data: bytes, full_width: int, width: int, height: int, gray: bool) -> np.ndarray | None:
    """A plain JPEG (YCbCr or gray) as an (H, W, 3) RGB or (H, W) gray array, at width x height: the full
    size or the 1/2, 1/4 or 1/8 DCT-scaled size that Pillow's draft chose. None when the stream is not
    perfectly clean (any libjpeg warning) or the scale differs: the caller lets Pillow decode it, and say
    what is wrong."""
    try:
        pixels = simplejpeg.decode_jpeg(data, "GRAY" if gray else "RGB", min_width=width, min_height=height,
                                        min_factor=round(full_width / width), strict=True)
    except ValueError:
        return None
    if pixels.shape[:2] != (height, width):
        return None
    return pixels[..., 0] if gray else pixels


def compress_mirrored(pixels: np.ndarray, quality: int) -> bytes:
    """compress(mirror(pixels), quality) for RGB pixels, the flip done as they are handed over: a row's
    bytes reversed (one vectorised copy) are the mirrored row in BGR order, which libjpeg-turbo reads as
    such. The same bytes; the flip of 1 MP takes 0.9 ms instead of 2.1 for copying whole pixels, and 0.43
    when a row is whole 8-byte words (a width divisible by 8): the words reversed, then each one's bytes."""
    height, width, _ = pixels.shape
    rows = np.ascontiguousarray(pixels).reshape(height, width * 3)
    if width % 8 == 0:
        rows = np.ascontiguousarray(rows.view(np.uint64)[:, ::-1]).byteswap(inplace=True).view(np.uint8)
    else:
        rows = np.ascontiguousarray(rows[:, ::-1])
    return _baseline(rows.reshape(height, width, 3), quality, colorspace=imagecodecs.JPEG8.CS.EXT_BGR,
                     outcolorspace=imagecodecs.JPEG8.CS.YCbCr)


def compress(pixels: np.ndarray, quality: int, progressive: bool = False) -> bytes:
    """RGB (H, W, 3) or grayscale (H, W) uint8 pixels as a baseline (or progressive) JPEG with 4:2:0 chroma
    (grayscale: one channel) and optimised Huffman tables, as Pillow writes it with optimize=True."""
    pixels = np.ascontiguousarray(pixels)
    if min(pixels.strides) < 0:  # numpy calls a length-1 axis contiguous whatever its stride; imagecodecs does not
        pixels = pixels.copy()
    if progressive:
        return from_array(pixels).jpegsave_buffer(Q=quality, interlace=True, subsample_mode="on", keep="none")
    return _baseline(pixels, quality)


def _baseline(pixels: np.ndarray, quality: int, **colour: object) -> bytes:
    """The one baseline encoder setting (4:2:0 unless gray, optimised Huffman tables), for both callers."""
    return imagecodecs.jpeg8_encode(pixels, level=quality, subsampling=None if pixels.ndim == 2 else (2, 2),
                                    optimize=True, **colour)
