"""HEIC/HEIF and AVIF inputs: real files from the real encoders (libheif in pillow-heif, libavif in
Pillow), through the same header checks as every other format. JPEG XL is refused (see decode.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.test_api import error_code, upload
from transforms import CorruptImage, EncodeOptions, ImageError, ImageTooLarge, Limits, parse, probe, run

FORMATS = ["HEIF", "AVIF"]


def picture(alpha: bool = False) -> np.ndarray:
    """Left half red, right half blue; with alpha, the bottom rows transparent."""
    pixels = np.zeros((40, 60, 4 if alpha else 3), np.uint8)
    pixels[:, :30, 0] = 255
    pixels[:, 30:, 2] = 255
    if alpha:
        pixels[..., 3] = 255
        pixels[30:, :, 3] = 0
    return pixels


def saved(pixels: np.ndarray, fmt: str, orientation: int = 1) -> bytes:
    out = io.BytesIO()
    extra = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    Image.fromarray(pixels).save(out, fmt, quality=95, **extra)
    return out.getvalue()


def pixels_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_read_and_served_as_jpeg(fmt):
    data = saved(picture(), fmt)
    assert probe(data, Limits()).format == fmt
    out = run(data, parse("mirror"), limits=Limits(), options=EncodeOptions())
    assert out.format == "JPEG"
    got = pixels_of(out.data).astype(int)
    assert np.abs(got[20, 5] - (0, 0, 255)).max() < 40 and np.abs(got[20, 55] - (255, 0, 0)).max() < 40


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_orientation_is_applied_once(fmt):
    data = saved(picture(), fmt, orientation=6)  # stored sideways: shown turned 90 degrees clockwise
    info = probe(data, Limits())
    assert (info.width, info.height) == (40, 60)
    got = pixels_of(run(data, parse(""), limits=Limits(), options=EncodeOptions()).data).astype(int)
    assert got.shape[:2] == (60, 40)
    assert np.abs(got[5, 20] - (255, 0, 0)).max() < 40 and np.abs(got[55, 20] - (0, 0, 255)).max() < 40


@pytest.mark.parametrize("fmt", FORMATS)
def test_alpha_keeps_its_transparency_as_png(fmt):
    out = run(saved(picture(alpha=True), fmt), parse("grayscale"), limits=Limits(), options=EncodeOptions())
    got = pixels_of(out.data)
    assert out.format == "PNG" and got.shape[2] == 2 and got[35, 10, 1] == 0 and got[5, 10, 1] == 255


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_files_are_corrupt_not_crashes(fmt):
    data = saved(picture(), fmt)
    for cut in (len(data) // 2, len(data) - 10):
        with pytest.raises(ImageError) as raised:
            run(data[:cut], parse("mirror"), limits=Limits(), options=EncodeOptions())
        assert isinstance(raised.value, CorruptImage | ImageError)


def test_jpeg_xl_is_refused_before_decoding():
    from transforms import UnsupportedFormat

    jxl = bytes.fromhex("ff0afa1f0700") + bytes(64)  # a JPEG XL codestream signature
    with pytest.raises(UnsupportedFormat):
        probe(jxl, Limits())


@pytest.mark.parametrize("fmt", FORMATS)
def test_pixel_limit_checked_from_the_header(fmt):
    with pytest.raises(ImageTooLarge):
        probe(saved(picture(), fmt), Limits(max_pixels=1000))


@pytest.mark.usefixtures("service")
@pytest.mark.parametrize(("fmt", "media_type"), [("HEIF", "image/heic"), ("AVIF", "image/avif")])
def test_uploaded_over_http(client, fmt, media_type):
    record = upload(client, saved(picture(), fmt), "phone-photo")
    assert (record["format"], record["width"], record["height"]) == (fmt, 60, 40)
    assert client.get(f"/{record['image_id']}").json()["content_type"] == media_type
    gray = client.get(f"/{record['image_id']}/grayscale")
    assert gray.headers["content-type"] == "image/jpeg" and pixels_of(gray.content).shape == (40, 60)
    broken = client.post("/upload_file", files={"image": ("x", saved(picture(), fmt)[:200])})
    assert broken.status_code in (400, 415) and error_code(broken) in ("corrupt_image", "unsupported_format")
