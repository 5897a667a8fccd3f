"""Pipeline steps against independent computations, and the URL grammar."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image, ImageFilter

from tests.images import encoded, photo, pixels_of
from transforms import EncodeOptions, Limits, PipelineError, parse, run
from transforms.blur import blur
from transforms.geometry import crop, flip, rotate
from transforms.resize import resize, target_size, thumbnail

PICTURE = photo(60, 40, seed=21)  # asymmetric: every wrong transform shows
LIMIT = Limits(10**8)


def test_rotate_flip_crop_are_exact():
    clockwise = np.asarray(Image.fromarray(PICTURE).transpose(Image.Transpose.ROTATE_270))
    assert np.array_equal(rotate(PICTURE, 90), clockwise)
    assert np.array_equal(rotate(PICTURE, 180), PICTURE[::-1, ::-1])
    assert np.array_equal(rotate(PICTURE, 270)[0, 0], PICTURE[0, -1])  # counter-clockwise quarter: top-right first
    assert rotate(PICTURE, 90).shape == (60, 40, 3)
    assert np.array_equal(flip(PICTURE)[0], PICTURE[-1])
    assert np.array_equal(crop(PICTURE, 5, 7, 20, 10), PICTURE[7:17, 5:25])
    with pytest.raises(ValueError):
        crop(PICTURE, 50, 0, 20, 10)


@pytest.mark.parametrize(("w", "h", "fit", "size"), [
    (30, None, "contain", (30, 20)), (None, 10, "contain", (15, 10)), (30, 30, "contain", (30, 20)),
    (30, 30, "cover", (30, 30)), (30, 30, "fill", (30, 30)), (120, 80, "contain", (120, 80)),
])
def test_resize_geometry(w, h, fit, size):
    out = resize(PICTURE, w, h, fit)
    assert (out.shape[1], out.shape[0]) == size


def test_resize_pixels_match_pillow_lanczos():
    big = photo(800, 600, seed=22)
    ours = resize(big, 200, 150).astype(int)
    reference = np.asarray(Image.fromarray(big).resize((200, 150), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(ours - reference).mean() < 1.5  # Pillow's reducing_gap trades <1.5 levels for speed
    assert target_size(800, 600, 200, 200, "cover") == (267, 200)


def test_thumbnail_never_enlarges():
    assert thumbnail(PICTURE, 100) is PICTURE
    assert thumbnail(PICTURE, 30).shape == (20, 30, 3)


def test_blur_close_to_pillow_gaussian():
    ours = blur(PICTURE, 2.0).astype(int)
    reference = np.asarray(Image.fromarray(PICTURE).filter(ImageFilter.GaussianBlur(2))).astype(int)
    assert np.abs(ours - reference).mean() < 1.5  # both are three box blurs; the box sizes round differently
    flat = np.full((10, 10, 3), 77, np.uint8)
    assert np.array_equal(blur(flat, 3), flat)


def test_pipeline_chain_and_format():
    data = encoded(PICTURE, "PNG")
    out = run(data, parse("grayscale,mirror,crop:x=0:y=0:w=30:h=20"), limits=LIMIT, options=EncodeOptions())
    gray = np.asarray(Image.fromarray(PICTURE).convert("L"))
    assert out.format == "PNG" and np.array_equal(pixels_of(out.data), gray[:, ::-1][:20, :30])
    for fmt, media in (("webp", "image/webp"), ("avif", "image/avif"), ("jpeg", "image/jpeg")):
        rendered = run(data, parse("rotate:deg=90", fmt, "70"), limits=LIMIT, options=EncodeOptions())
        assert rendered.media_type == media
        assert Image.open(io.BytesIO(rendered.data)).size == (40, 60)


def test_stage_timings_name_every_stage_in_order():
    started = time.perf_counter()
    out = run(encoded(PICTURE, "PNG"), parse("mirror,grayscale"), limits=LIMIT, options=EncodeOptions())
    elapsed = time.perf_counter() - started
    assert [stage for stage, _ in out.timings] == ["decode", "mirror", "grayscale", "encode"]
    assert all(seconds >= 0 for _, seconds in out.timings) and sum(s for _, s in out.timings) <= elapsed
    data = encoded(photo(64, 32, seed=3), "JPEG", quality=90)  # above the output's quality: re-encoded
    default = run(data, parse("mirror"), limits=LIMIT, options=EncodeOptions())
    assert [stage for stage, _ in default.timings] == ["decode", "encode"]  # a last mirror is left to the encoder
    exact = run(data, parse("mirror"), limits=LIMIT, options=EncodeOptions(jpeg_lossless="always"))
    assert [stage for stage, _ in exact.timings] == ["exact"]


def test_encode_options_spelling_names_only_what_differs_from_the_defaults():
    assert EncodeOptions().spelling() == ""
    assert EncodeOptions(jpeg_quality=90, jpeg_lossless="never").spelling() == "jpeg_quality=90&jpeg_lossless=never"
    assert EncodeOptions(90, "small", 70).spelling(skip=("jpeg_quality", "webp_quality")) == "compression=small"


def test_jpeg_shrink_on_load_keeps_quality():
    smooth = Image.fromarray(photo(40, 30, seed=23)).resize((1600, 1200), Image.Resampling.BICUBIC)
    data = encoded(smooth, "JPEG", quality=95)
    shrunk = pixels_of(run(data, parse("resize:w=200:h=150"), limits=LIMIT, options=EncodeOptions()).data)
    full = np.asarray(Image.open(io.BytesIO(data)).resize((200, 150), Image.Resampling.LANCZOS))
    assert shrunk.shape == (150, 200, 3) and np.abs(shrunk.astype(int) - full).mean() < 3  # decoded at 1/8 scale


def test_canonical_spelling_names_the_variant():
    assert parse("resize:h=600:w=800").canonical() == parse("resize:w=800:h=600:fit=contain").canonical()
    assert parse("blur:r=2", "WEBP", "80").canonical() == "ops=blur:r=2&format=webp&quality=80"


@pytest.mark.parametrize(("ops", "fmt", "quality", "message"), [
    ("sepia", None, None, "unknown operation"),
    ("resize", None, None, "give w, h or both"),
    ("resize:w=0", None, None, "between"),
    ("resize:w=abc", None, None, "not a valid whole number"),
    ("resize:w=\u0663\u0662", None, None, "ASCII digits"),  # Arabic-Indic 32: int() would take it
    ("resize:w=1_0", None, None, "ASCII digits"),
    ("resize:w=" + "9" * 5000, None, None, "not a valid whole number"),
    ("blur:r=nan", None, None, "not a valid decimal"),
    ("blur:r=inf", None, None, "not a valid decimal"),
    ("blur:r=1e1", None, None, "not a valid decimal"),
    ("resize:w=10:w=20", None, None, "twice"),
    ("resize:depth=3", None, None, "unknown parameter"),
    ("rotate:deg=45", None, None, "must be one of"),
    ("crop:x=1:y=1", None, None, "missing w, h"),
    ("blur:r=500", None, None, "between"),
    (",".join(["mirror"] * 11), None, None, "at most 10"),
    ("mirror", "tiff", None, "format"),
    ("mirror", None, "0", "between"),
    ("mirror", None, "\u0668\u0660", "ASCII digits"),
])
def test_invalid_pipelines(ops, fmt, quality, message):
    with pytest.raises(PipelineError, match=message):
        parse(ops, fmt, quality)
