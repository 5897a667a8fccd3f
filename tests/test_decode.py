"""Decoding what users actually send: orientation, colour, depth, alpha, and hostile files."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.images import encoded, jpeg_reference, opened, photo, png16_rgb, raw_png, with_orientation, zlib_of_zeros
from transforms import (
    CorruptImage,
    EmptyImage,
    EncodeOptions,
    ImageTooLarge,
    Limits,
    UnsupportedFormat,
    decode,
    probe,
    render,
)

LIMIT = Limits(50_000_000)
PICTURE = photo(48, 32, seed=7)  # not square, no symmetry: every wrong orientation shows


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_decodes_to_the_same_pixels(orientation):
    data = with_orientation(PICTURE, orientation, "PNG")
    assert np.array_equal(decode(data, LIMIT).pixels, PICTURE)
    info = probe(data, LIMIT)
    assert (info.width, info.height) == (48, 32)  # reported after orientation


UNDO_ORIENTATION = {  # numpy's own inverse of each EXIF orientation, independent of Pillow
    1: lambda s: s, 2: lambda s: s[:, ::-1], 3: lambda s: s[::-1, ::-1], 4: lambda s: s[::-1],
    5: lambda s: s.swapaxes(0, 1), 6: lambda s: np.rot90(s, -1),
    7: lambda s: s.swapaxes(0, 1)[::-1, ::-1], 8: lambda s: np.rot90(s, 1),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_orientation_is_exact_on_the_decoded_pixels(orientation):
    data = with_orientation(PICTURE, orientation, "JPEG", quality=95)
    stored = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # as stored, orientation ignored
    assert np.array_equal(decode(data, LIMIT).pixels, UNDO_ORIENTATION[orientation](stored))


def test_outputs_carry_no_exif_gps_or_icc():
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS IFD
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encoded(PICTURE, "JPEG", exif=exif.tobytes(), icc_profile=icc)
    for op in ("jpeg", "png", "grayscale", "mirror"):
        out = opened(render(data, op, limits=LIMIT, options=EncodeOptions()).data)
        assert "exif" not in out.info, op
        # An exact JPEG (tests/test_jpeg_exact.py) keeps the profile its pixels are still in; a decode converts.
        assert out.info.get("icc_profile") == (icc if op in ("jpeg", "mirror") else None), op
        assert out.size == (32, 48)  # orientation 6 applied: portrait
        assert not out.getexif()


def test_cmyk_jpeg_becomes_rgb():
    rgb = Image.fromarray(PICTURE)
    data = encoded(rgb.convert("CMYK"), "JPEG", quality=95)
    assert opened(data).mode == "CMYK"
    pixels = decode(data, LIMIT).pixels
    assert pixels.shape == (32, 48, 3)
    assert np.abs(pixels.astype(int) - PICTURE).mean() < 6


def test_srgb_tagged_image_keeps_its_colours():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pixels = decode(encoded(PICTURE, "PNG", icc_profile=icc), LIMIT).pixels
    assert np.abs(pixels.astype(int) - PICTURE).max() <= 2


def test_16bit_gray_scales_instead_of_clipping():
    values = np.linspace(0, 65535, 64 * 16).astype(np.uint16).reshape(16, 64)
    data = encoded(Image.fromarray(values), "PNG")
    assert opened(data).mode.startswith("I")
    pixels = decode(data, LIMIT).pixels
    expected = np.round(values.astype(float) * 255 / 65535).astype(np.uint8)
    assert pixels.dtype == np.uint8 and np.array_equal(pixels, expected)
    assert abs(pixels.mean() - 127.5) < 1  # Pillow's convert('L') would give ~255


def test_16bit_rgb_scales_to_8bit():
    values = (np.random.default_rng(1).integers(0, 65536, (16, 24, 3))).astype(np.uint16)
    pixels = decode(png16_rgb(values), LIMIT).pixels
    expected = np.round(values.astype(float) * 255 / 65535)
    assert pixels.shape == (16, 24, 3) and np.abs(pixels - expected).max() <= 1


def test_palette_with_trns_keeps_alpha_in_png_and_whitens_in_jpeg():
    palette_img = Image.fromarray(PICTURE).quantize(16)
    indices = np.asarray(palette_img).copy()
    indices[:, :10] = 0
    palette_img = Image.fromarray(indices, "P")
    palette_img.putpalette(Image.fromarray(PICTURE).quantize(16).getpalette())
    data = encoded(palette_img, "PNG", transparency=0)
    pixels = decode(data, LIMIT).pixels
    assert pixels.shape == (32, 48, 4)
    assert (pixels[:, :10, 3] == 0).all() and (pixels[indices != 0][:, 3] == 255).all()
    png = opened(render(data, "png", limits=LIMIT, options=EncodeOptions()).data)
    assert png.mode == "RGBA" and np.array_equal(np.asarray(png), pixels)
    jpeg = np.asarray(opened(render(data, "jpeg", limits=LIMIT, options=EncodeOptions()).data))
    assert jpeg[:, :6].min() > 235  # white (black would be ~0), allowing JPEG ringing near the edge


def test_rgba_to_jpeg_is_white_behind_transparency_and_gray_keeps_alpha():
    rgba = np.dstack([PICTURE, np.zeros((32, 48), np.uint8)])
    rgba[:, 24:, 3] = 255
    data = encoded(rgba, "PNG")
    jpeg = np.asarray(opened(render(data, "jpeg", limits=LIMIT, options=EncodeOptions()).data))
    flattened = PICTURE.copy()
    flattened[:, :24] = 255  # transparent: white, not black
    reference = jpeg_reference(flattened)
    assert np.abs(jpeg.astype(int) - reference).max() <= 1
    gray = opened(render(data, "grayscale", limits=LIMIT, options=EncodeOptions()).data)
    assert gray.mode == "LA" and np.array_equal(np.asarray(gray)[..., 1], rgba[..., 3])


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF"])
def test_other_accepted_formats(fmt):
    params = {"lossless": True} if fmt == "WEBP" else {}
    decoded = decode(encoded(PICTURE, fmt, **params), LIMIT)
    assert decoded.info.format == fmt and decoded.pixels.shape[:2] == (32, 48)


def test_apng_first_frame():
    frames = [Image.fromarray(PICTURE), Image.fromarray(255 - PICTURE)]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:])
    assert np.array_equal(decode(out.getvalue(), LIMIT).pixels, PICTURE)


# --- refused inputs ---------------------------------------------------------------------------

def _truncated(fmt: str) -> bytes:
    data = encoded(photo(200, 150), fmt)
    return data[: len(data) * 2 // 3]


def _corrupt_png_stream() -> bytes:
    good = bytearray(encoded(photo(64, 64), "PNG", compress_level=0))
    idat = good.index(b"IDAT")
    good[idat + 6: idat + 40] = b"\xff" * 34  # garbage inside the zlib stream
    return bytes(good)


BAD_INPUTS = {
    "zero bytes": (b"", EmptyImage),
    "text": (b"just some words\n" * 10, UnsupportedFormat),
    "html": (b"<!DOCTYPE html><html><head></head><body>no</body></html>", UnsupportedFormat),
    "pdf": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", UnsupportedFormat),
    "ico": (encoded(Image.fromarray(PICTURE), "ICO"), UnsupportedFormat),
    "truncated jpeg": (_truncated("JPEG"), CorruptImage),
    "truncated png": (_truncated("PNG"), CorruptImage),
    "corrupt png stream": (_corrupt_png_stream(), CorruptImage),
    "100000x100000 header": (raw_png(100_000, 100_000, 8, 2, zlib_of_zeros(1000)), ImageTooLarge),
    "idat inflating to gigabytes": (raw_png(60_000, 60_000, 8, 0, zlib_of_zeros(1 << 30)), ImageTooLarge),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_inputs_are_refused_precisely(name):
    data, error = BAD_INPUTS[name]
    with pytest.raises(error) as caught:
        decode(data, LIMIT)
    assert caught.value.message
    if error is UnsupportedFormat and name in ("text", "html", "pdf"):
        assert {"text": "text/plain", "html": "text/html", "pdf": "application/pdf"}[name] in caught.value.message


def test_bomb_refused_from_header_before_decoding():
    data = BAD_INPUTS["idat inflating to gigabytes"][0]
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match=r"60000x60000|3600000000 pixels"):
        probe(data, LIMIT)
    assert time.perf_counter() - started < 1  # nothing was inflated


def test_pixel_limit_is_configurable_and_inclusive():
    data = encoded(photo(100, 50), "PNG")
    assert decode(data, Limits(5000)).info.width == 100
    with pytest.raises(ImageTooLarge):
        decode(data, Limits(4999))


def test_bomb_warning_is_an_error():
    # In a fresh interpreter (pytest resets warning filters per test): importing transforms turns
    # Pillow's DecompressionBombWarning into an exception, as in a Serve replica.
    import subprocess
    import sys

    code = ("import transforms, PIL.Image as I; I.MAX_IMAGE_PIXELS = 100\n"
            "try:\n    I._decompression_bomb_check((11, 10))\nexcept I.DecompressionBombWarning:\n"
            "    print('raised')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "raised"
