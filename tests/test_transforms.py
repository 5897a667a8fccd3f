"""Unit tests for transforms/: no Ray, no database, milliseconds each."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.images import encoded, photo, pixels_of
from transforms import OPERATIONS, EncodeOptions, Limits, decode, encode, grayscale, mirror, render
from transforms.alpha import flatten_on_white

RNG = np.random.default_rng(42)
OPTIONS = EncodeOptions()


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (300, 257, 3), (513, 3, 3)])
def test_grayscale_is_bit_identical_to_pillow(shape):
    rgb = RNG.integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(grayscale(rgb), np.asarray(Image.fromarray(rgb).convert("L")))


def test_grayscale_extremes_and_formula():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3]]], np.uint8)
    expected = [(19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16 for r, g, b in rgb[0].astype(int)]
    assert grayscale(rgb)[0].tolist() == expected == [255, 0, 76, 150, 29, 2]


def test_grayscale_keeps_alpha_and_passes_gray_through():
    rgba = RNG.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    la = grayscale(rgba)
    assert la.shape == (20, 30, 2)
    assert np.array_equal(la[..., 0], np.asarray(Image.fromarray(rgba[..., :3]).convert("L")))
    assert np.array_equal(la[..., 1], rgba[..., 3])
    gray = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    assert grayscale(gray) is gray


def test_mirror_is_exact_left_right_flip():
    pixels = photo(31, 17)
    out = mirror(pixels)
    assert np.array_equal(out[:, 0], pixels[:, -1])
    assert np.array_equal(out, np.asarray(Image.fromarray(pixels).transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    assert np.array_equal(mirror(out), pixels)


@pytest.mark.parametrize("channels", [None, 2, 3, 4])
def test_png_encode_is_lossless(channels):
    shape = (23, 41) if channels is None else (23, 41, channels)
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    assert np.array_equal(pixels_of(encode(pixels, "PNG", OPTIONS)), pixels)


def test_jpeg_flattens_alpha_onto_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200  # red-ish, fully transparent: must come out white, not black
    out = pixels_of(encode(rgba, "JPEG", OPTIONS))
    assert out.shape == (8, 8, 3) and out.min() >= 250
    half = np.array([[[0, 0, 0, 128]]], np.uint8)
    assert flatten_on_white(half).tolist() == [[[127, 127, 127]]]


def test_operation_output_formats():
    assert OPERATIONS["jpeg"].output_format("PNG") == "JPEG"
    assert OPERATIONS["png"].output_format("JPEG") == "PNG"
    assert OPERATIONS["grayscale"].output_format("JPEG") == "JPEG"
    assert OPERATIONS["mirror"].output_format("PNG") == "PNG"
    assert OPERATIONS["mirror"].output_format("WEBP") == "WEBP"
    assert OPERATIONS["grayscale"].output_format("BMP") == "PNG"  # a format we don't write falls back to PNG


def test_render_pipeline_from_bytes():
    pixels = photo(64, 48)
    out = render(encoded(pixels, "BMP"), "mirror", limits=Limits(10**6), options=OPTIONS)
    assert out.format == "PNG" and out.media_type == "image/png"
    assert np.array_equal(pixels_of(out.data), pixels[:, ::-1])


def test_decode_reports_format_and_size():
    decoded = decode(encoded(photo(40, 30), "PNG"), limits=Limits(10**6))
    assert (decoded.info.format, decoded.info.width, decoded.info.height) == ("PNG", 40, 30)
    assert decoded.pixels.shape == (30, 40, 3) and decoded.pixels.dtype == np.uint8


@pytest.mark.parametrize("shape", [(1, 1), (1, 9, 3), (9, 1, 4), (33, 70, 2), (65, 31, 3), (40, 40, 4)])
def test_fast_png_is_lossless_for_every_layout(shape):
    from transforms.png_fast import encode_png

    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    smooth = np.cumsum(np.ones(shape, np.uint8), axis=1, dtype=np.uint8)  # mostly-zero residuals: full search
    for image in (pixels, smooth, photo(*shape[1::-1])[..., : shape[2]] if len(shape) == 3 else pixels):
        data = encode_png(image)
        Image.open(__import__("io").BytesIO(data)).verify()  # CRCs and structure
        assert np.array_equal(pixels_of(data), image)


def test_fast_png_is_close_to_pillow_in_size():
    import io

    from transforms.png_fast import encode_png

    pixels = photo(400, 300)
    reference = io.BytesIO()
    Image.fromarray(pixels).save(reference, "PNG")
    assert len(encode_png(pixels)) <= 1.15 * len(reference.getvalue())


def test_fast_png_chunks_are_well_formed_when_streamed_in_slices():
    import struct
    import zlib

    from transforms.png_fast import _DEFLATE_SLICE, encode_png

    pixels = photo(1500, 1000, seed=7)  # 4.5 MB filtered: more than one slice handed to zlib
    assert pixels.size > _DEFLATE_SLICE
    data, at, kinds = encode_png(pixels), 8, []
    while at < len(data):  # every chunk's length and CRC, as a strict reader checks them
        (length,), kind = struct.unpack(">I", data[at:at + 4]), data[at + 4:at + 8]
        stored_crc = struct.unpack(">I", data[at + 8 + length:at + 12 + length])[0]
        assert stored_crc == zlib.crc32(data[at + 4:at + 8 + length])
        kinds.append(kind)
        at += 12 + length
    assert at == len(data) and kinds == [b"IHDR", b"IDAT", b"IEND"]
    assert np.array_equal(pixels_of(data), pixels)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (5, 7, 2), (5, 7, 3), (5, 7, 4)])
def test_mirror_is_exact_and_contiguous_for_every_layout(shape):
    pixels = np.random.default_rng(9).integers(0, 256, shape, dtype=np.uint8)
    out = mirror(pixels)
    assert np.array_equal(out, pixels[:, ::-1]) and out.flags.c_contiguous
    strided = pixels[:, ::2]  # not contiguous: the plain copy
    assert np.array_equal(mirror(strided), strided[:, ::-1])
