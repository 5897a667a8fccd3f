"""Trim, pad, background, sharpen and watermark: pixels checked, in-process and over HTTP."""

from __future__ import annotations

import numpy as np
import pytest

from tests.images import encoded, photo, pixels_of
from tests.test_api import error_code, upload
from transforms import EncodeOptions, Limits, parse, run
from transforms.pipeline import PipelineError

OPTIONS = EncodeOptions()


def render(pixels: np.ndarray, ops: str, assets: dict[str, bytes] | None = None) -> np.ndarray:
    return pixels_of(run(encoded(pixels, "PNG"), parse(ops, "png"), limits=Limits(), options=OPTIONS,
                         assets=assets).data)


def test_trim_removes_borders_of_one_colour_within_the_threshold():
    inner = photo(50, 40, seed=3)
    framed = np.full((70, 90, 3), 250, np.uint8)
    framed[15:55, 25:75] = inner
    framed[0, 0] = 255  # the corner a little off the border's colour: within the threshold
    assert np.array_equal(render(framed, "trim"), inner)
    assert render(framed, "trim:threshold=0").shape[:2] == (70, 90)  # the corner is then the only "border"
    assert render(np.full((20, 20, 3), 9, np.uint8), "trim").shape[:2] == (20, 20)  # all border: unchanged


def test_pad_with_a_colour_and_with_transparency():
    inner = photo(30, 20, seed=4)
    padded = render(inner, "pad:t=5:l=3:r=2:b=1:color=ff0000")
    assert padded.shape == (26, 35, 3) and np.array_equal(padded[5:25, 3:33], inner)
    assert (padded[:5] == (255, 0, 0)).all() and (padded[:, :3] == (255, 0, 0)).all()
    clear = render(inner, "pad:t=4:color=00000000")
    assert clear.shape == (24, 30, 4) and (clear[:4, :, 3] == 0).all() and (clear[4:, :, 3] == 255).all()
    gray = render(inner[..., 0], "pad:b=2:color=808080")
    assert gray.shape == (22, 30) and (gray[-2:] == 128).all()


def test_background_flattens_alpha_onto_a_colour():
    pixels = np.zeros((10, 10, 4), np.uint8)
    pixels[..., 0] = 255
    pixels[:, 5:, 3] = 255  # right half opaque red, left half transparent
    flat = render(pixels, "background:color=0000ff")
    assert flat.shape == (10, 10, 3)
    assert (flat[:, :5] == (0, 0, 255)).all() and (flat[:, 5:] == (255, 0, 0)).all()


def test_sharpen_raises_edge_contrast_and_keeps_the_shape():
    smooth = np.repeat(np.linspace(60, 190, 64, dtype=np.uint8)[None, :], 48, axis=0)
    smooth[:, 32:] = 200
    out = render(smooth, "sharpen:r=2:amount=200")
    assert out.shape == smooth.shape
    assert np.abs(np.diff(out.astype(int), axis=1)).max() > np.abs(np.diff(smooth.astype(int), axis=1)).max()


def mark_image() -> np.ndarray:
    """40x20: opaque green on the left half, transparent on the right."""
    mark = np.zeros((20, 40, 4), np.uint8)
    mark[:, :20] = (0, 255, 0, 255)
    return mark


def test_watermark_in_process():
    base = np.full((200, 400, 3), 100, np.uint8)
    mark_id = "a" * 64
    assets = {mark_id: encoded(mark_image(), "PNG")}
    out = render(base, f"watermark:id={mark_id}:pos=nw:scale=0.25", assets)
    inset = round(0.02 * 200)  # 4 px from the corner
    # scaled to a quarter of the width: 100x50; its opaque half green, its transparent half the base
    # (away from the halves' edge, where Lanczos rings by a few levels)
    assert (out[inset + 5:inset + 45, inset + 5:inset + 40] == (0, 255, 0)).all()
    assert (out[inset + 5:inset + 45, inset + 62:inset + 95] == 100).all()
    assert (out[100:, 200:] == 100).all()
    faded = render(base, f"watermark:id={mark_id}:pos=nw:scale=0.25:opacity=0.5", assets)
    assert np.abs(faded[inset + 20, inset + 20].astype(int) - (50, 178, 50)).max() <= 1
    se = render(base, f"watermark:id={mark_id}", assets)  # defaults: bottom right, a quarter of the width
    assert (se[-inset - 30, -inset - 80] == (0, 255, 0)).all()
    with pytest.raises(PipelineError, match="no image"):
        render(base, f"watermark:id={'b' * 64}", assets)


@pytest.mark.parametrize("bad", ["pad:color=red", "watermark:id=xyz", "watermark:pos=se", "trim:threshold=300",
                                 "background:color=ff00"])
def test_bad_parameters(bad):
    with pytest.raises(PipelineError):
        parse(bad)


@pytest.mark.usefixtures("service")
def test_watermark_over_http(client):
    base_id = upload(client, encoded(np.full((300, 400, 3), 60, np.uint8), "PNG"))["image_id"]
    mark_id = upload(client, encoded(mark_image(), "PNG"))["image_id"]
    out = client.get(f"/{base_id}/process", params={"ops": f"watermark:id={mark_id}:pos=center:scale=0.5",
                                                    "format": "png"})
    assert out.status_code == 200, out.text
    pixels = pixels_of(out.content)
    assert (pixels[150, 150] == (0, 255, 0)).all() and (pixels[150, 250] == 60).all()
    missing = client.get(f"/{base_id}/process", params={"ops": f"watermark:id={'c' * 64}"})
    assert missing.status_code == 400 and error_code(missing) == "bad_pipeline"
