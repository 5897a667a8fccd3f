"""Output options: progressive JPEG, metadata (strip) and max_bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.images import encoded, photo
from tests.test_api import upload
from transforms import EncodeOptions, Limits, parse, run
from transforms.pipeline import PipelineError

ORIENTATION, COPYRIGHT = 0x0112, 0x8298


def with_exif(pixels: np.ndarray, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[COPYRIGHT] = "(c) prog-image tests"
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, exif=exif.tobytes(), quality=90)
    return out.getvalue()


def rendered(data: bytes, ops: str = "", fmt: str | None = None, **output: str) -> bytes:
    return run(data, parse(ops, fmt, **output), limits=Limits(), options=EncodeOptions()).data


def test_progressive_jpeg():
    data = encoded(photo(320, 240, seed=5), "JPEG")
    out = Image.open(io.BytesIO(rendered(data, "mirror", progressive="1")))
    assert out.info.get("progressive") == 1 and out.size == (320, 240)
    assert not Image.open(io.BytesIO(rendered(data, "mirror"))).info.get("progressive")


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
def test_metadata_is_stripped_unless_asked_to_keep_it(fmt):
    data = with_exif(photo(64, 48, seed=6))
    stripped = Image.open(io.BytesIO(rendered(data, "grayscale", fmt)))
    assert stripped.size == (48, 64) and not stripped.getexif()  # rotated upright, nothing kept
    kept = Image.open(io.BytesIO(rendered(data, "grayscale", fmt, strip="0")))
    exif = kept.getexif()
    assert kept.size == (48, 64) and exif[COPYRIGHT] == "(c) prog-image tests"
    assert exif.get(ORIENTATION, 1) == 1  # the pixels are upright already: not rotated twice by a viewer


def test_max_bytes_finds_a_quality_that_fits_in_a_few_encodes():
    data = encoded(photo(640, 480, seed=7), "PNG")
    full = rendered(data, "", "jpeg")
    budget = len(full) // 3
    fitted = rendered(data, "", "jpeg", max_bytes=str(budget))
    assert len(fitted) <= budget < len(full)
    assert Image.open(io.BytesIO(fitted)).size == (640, 480)
    # and no lower quality than needed: the next quality up would not fit (within the search's steps)
    assert len(fitted) > budget * 0.7
    assert rendered(data, "", "jpeg", max_bytes=str(len(full) + 1)) == full  # fits already: untouched
    tiny = rendered(data, "", "webp", max_bytes="100")  # nothing fits: the smallest it tried
    assert len(tiny) < len(rendered(data, "", "webp")) / 4


def test_options_are_part_of_the_key_and_checked():
    assert parse("mirror", "jpeg", progressive="1", strip="0", max_bytes="5000").canonical() == \
        "ops=mirror&format=jpeg&progressive=1&strip=0&max_bytes=5000"
    assert parse("mirror", strip="1", progressive="0").canonical() == parse("mirror").canonical()
    for bad in ({"progressive": "yes"}, {"strip": "2"}, {"max_bytes": "10"}, {"max_bytes": "-5"}):
        with pytest.raises(PipelineError):
            parse("mirror", **bad)


@pytest.mark.usefixtures("service")
def test_output_options_over_http(client):
    image_id = upload(client, with_exif(photo(400, 300, seed=8)))["image_id"]
    response = client.get(f"/{image_id}/process", params={"ops": "resize:w=200", "progressive": "1", "strip": "0",
                                                           "max_bytes": "6000"})
    assert response.status_code == 200, response.text
    out = Image.open(io.BytesIO(response.content))
    assert out.info.get("progressive") == 1 and out.getexif()[COPYRIGHT] == "(c) prog-image tests"
    assert len(response.content) <= 6000 and out.size == (200, 267)  # upright (EXIF 6), then 200 wide
