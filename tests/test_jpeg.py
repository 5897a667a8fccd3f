"""JPEG through libjpeg-turbo from wheels (transforms.jpeg): the same pixels as Pillow,
Pillow's quality and layout, and Pillow as the decoder of everything that is not a plain clean JPEG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.images import encoded, photo, pixels_of
from transforms import EncodeOptions, Limits, decode, encode, jpeg, parse, run
from transforms.errors import CorruptImage


@pytest.mark.parametrize("gray", [False, True])
def test_decode_equals_pillow_exactly(gray):
    pixels = photo(333, 217, seed=21)
    data = encoded(pixels[..., 1] if gray else pixels, "JPEG", quality=90)
    assert jpeg.decompress(data, 333, 333, 217, gray) is not None  # the fast path is the one tested
    got = decode(data, Limits(10**8)).pixels
    assert got.shape == ((217, 333) if gray else (217, 333, 3))
    assert np.array_equal(got, pixels_of(data))


def test_scaled_decode_equals_pillows_draft():
    data = encoded(photo(1000, 600, seed=22), "JPEG", quality=90)
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (250, 150))  # 1/4 in the DCT
    got = decode(data, Limits(10**8), shrink_to=(250, 150)).pixels
    assert got.shape == (150, 250, 3)
    assert np.array_equal(got, np.asarray(img))


def test_unclean_jpegs_fall_back_to_pillow():
    data = encoded(photo(320, 240, seed=23), "JPEG")
    truncated = data[: len(data) // 2]
    assert jpeg.decompress(truncated, 320, 320, 240, False) is None
    with pytest.raises(CorruptImage):  # Pillow's verdict, as before
        decode(truncated, Limits(10**8))
    cmyk = encoded(Image.fromarray(photo(64, 48, seed=24)).convert("CMYK"), "JPEG")
    assert decode(cmyk, Limits(10**8)).pixels.shape == (48, 64, 3)  # not plain: Pillow converts it


@pytest.mark.parametrize("gray", [False, True])
def test_encode_matches_pillows_quality_and_layout(gray):
    pixels = photo(400, 300, seed=25)
    if gray:
        pixels = np.ascontiguousarray(pixels[..., 0])
    ours = encode(pixels, "JPEG", EncodeOptions(jpeg_quality=85))
    assert ours == jpeg.compress(pixels, 85)
    pillow = encoded(pixels, "JPEG", quality=85)
    img = Image.open(io.BytesIO(ours))
    assert img.mode == ("L" if gray else "RGB") and img.size == (400, 300)
    if not gray:
        from PIL import JpegImagePlugin
        assert JpegImagePlugin.get_sampling(img) == 2  # 4:2:0, as Pillow's default
    error = np.abs(pixels_of(ours).astype(int) - pixels).mean()
    assert error <= 1.05 * np.abs(pixels_of(pillow).astype(int) - pixels).mean()
    assert 0.8 < len(ours) / len(pillow) < 1.2


def test_scaled_decode_of_odd_sizes_matches_pillows_draft_at_every_scale():
    data = encoded(photo(1001, 601, seed=27), "JPEG", quality=90)
    for target in ((1001, 601), (500, 300), (250, 150), (125, 75), (300, 200)):
        img = Image.open(io.BytesIO(data))
        img.draft("RGB", target)
        assert np.array_equal(decode(data, Limits(10**8), shrink_to=target).pixels, np.asarray(img)), target


@pytest.mark.parametrize("quality", [75, 90])
def test_a_jpegs_luma_is_its_y_plane_within_rounding_of_pillows(quality):
    data = encoded(photo(640, 480, seed=28), "JPEG", quality=quality)
    luma = decode(data, Limits(10**8), luma=True).pixels
    assert luma.shape == (480, 640)  # the Y plane: one channel, no RGB decoded
    rgb = Image.open(io.BytesIO(data)).convert("RGB")
    signed = luma.astype(int) - np.asarray(rgb.convert("L")).astype(int)
    clipped = (np.asarray(rgb) == 0).any(axis=2) | (np.asarray(rgb) == 255).any(axis=2)
    assert abs(signed.mean()) < 0.01 and np.abs(signed).mean() < 0.05, signed.mean()
    assert np.abs(signed[~clipped]).max() <= 1  # rounding alone, wherever the decoded RGB does not clip
    assert np.abs(signed).max() <= 12
    out = run(data, parse("grayscale,mirror"), limits=Limits(10**8), options=EncodeOptions())
    assert [stage for stage, _ in out.timings] == ["decode", "encode"]  # no colour work; the encoder mirrors
    assert np.array_equal(pixels_of(out.data), pixels_of(jpeg.compress(luma[:, ::-1], 85)))


@pytest.mark.parametrize("size", [(333, 217), (1, 7), (64, 1), (8, 3), (1152, 20)])  # byte by byte; by words
def test_mirroring_while_encoding_gives_the_bytes_of_mirror_then_encode(size):
    pixels = photo(*size, seed=29)
    assert jpeg.compress_mirrored(pixels, 85) == jpeg.compress(pixels[:, ::-1], 85)


@pytest.mark.parametrize("ops, fmt", [("mirror", "jpeg"), ("mirror", "png"), ("mirror", "webp"),
                                      ("blur:r=2,mirror", "jpeg"), ("mirror,grayscale", "jpeg")])
def test_a_last_mirror_left_to_the_encoder_gives_the_same_image(ops, fmt):
    """The pipeline leaves a last mirror to the encoder (free for a baseline JPEG, a flip first otherwise),
    with progressive output and a size budget too: the pixels are those of flipping first."""
    data = encoded(photo(200, 120, seed=30), "PNG")
    for query in ({}, {"progressive": "1"}, {"max_bytes": "4000"}):
        pipeline = parse(ops, fmt, **query)
        out = run(data, pipeline, limits=Limits(10**8), options=EncodeOptions())
        flipped = run(encoded(pixels_of(data)[:, ::-1], "PNG"), parse(ops.replace("mirror", "").strip(",") or "",
                                                                     fmt, **query),
                      limits=Limits(10**8), options=EncodeOptions())
        assert np.array_equal(pixels_of(out.data), pixels_of(flipped.data)), (ops, fmt, query)


def test_no_system_library_is_needed():
    """Every codec comes from a wheel: any libjpeg-turbo loaded lies in site-packages, none in the system."""
    import subprocess
    import sys

    code = ("import transforms.jpeg as j, transforms.jpeg_exact as e, numpy as np; "
            "data = j.compress(np.zeros((16, 16, 3), np.uint8), 85); assert e.transform(data, e.HFLIP); "
            "print(sorted({line.split()[-1] for line in open('/proc/self/maps') if 'jpeg' in line}))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = __import__("ast").literal_eval(run.stdout)
    assert any("turbojpeg" in path for path in loaded)  # the exact transforms' library is loaded...
    assert all("site-packages" in path for path in loaded), loaded  # ...and it, like every other, is a wheel's


@pytest.mark.parametrize("gray", [False, True])
def test_progressive_output_has_pillows_pixels_and_layout(gray):
    """Progressive goes through libvips (Pillow's encoder holds the GIL): Pillow's pixels exactly, 4:2:0."""
    pixels = photo(333, 217, seed=23)
    pixels = pixels[..., 0] if gray else pixels
    ours = jpeg.compress(pixels, 80, progressive=True)
    theirs = encoded(np.ascontiguousarray(pixels), "JPEG", quality=80, progressive=True, subsampling=2)
    img = Image.open(io.BytesIO(ours))
    assert img.info.get("progressive") and img.mode == ("L" if gray else "RGB")
    assert img.quantization == Image.open(io.BytesIO(theirs)).quantization
    if not gray:
        assert img.layer[0][1:3] == (2, 2)  # luma sampled 2x2 against chroma: 4:2:0
    assert np.array_equal(pixels_of(ours), pixels_of(theirs))
    assert abs(len(ours) - len(theirs)) < 0.01 * len(theirs)
    assert not img.getexif()  # no metadata


@pytest.mark.parametrize("gray", [False, True])
def test_baseline_output_has_optimised_huffman_tables_the_same_pixels_in_fewer_bytes(gray):
    """As thumbor and imgproxy write: the pixels of Pillow's encode, in fewer bytes than its default (the
    tables change only the entropy coding), and its optimize=True output byte for byte."""
    pixels = photo(480, 320, seed=31)
    pixels = np.ascontiguousarray(pixels[..., 0]) if gray else pixels
    ours = jpeg.compress(pixels, 85)
    unoptimised = encoded(pixels, "JPEG", quality=85)
    assert np.array_equal(pixels_of(ours), pixels_of(unoptimised))
    assert len(ours) < 0.96 * len(unoptimised)
    assert ours == encoded(pixels, "JPEG", quality=85, optimize=True)
