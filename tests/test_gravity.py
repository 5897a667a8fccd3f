"""Cropping that knows where to look: compass gravities, focal points and smart, on images whose
interesting region is known."""

from __future__ import annotations

import numpy as np
import pytest

from tests.images import photo
from transforms import EncodeOptions, Limits, parse, run
from transforms.gravity import place, smart
from transforms.pipeline import PipelineError

OPTIONS = EncodeOptions(png_compression="fast")


def scene(width: int = 600, height: int = 400, subject: tuple[int, int] = (420, 250), side: int = 100) -> np.ndarray:
    """A plain, slightly graded backdrop with one busy, colourful subject whose top-left is `subject`."""
    backdrop = np.linspace(90, 110, width, dtype=np.float32)[None, :, None]
    pixels = np.broadcast_to(backdrop, (height, width, 3)).astype(np.uint8).copy()
    x, y = subject
    pixels[y:y + side, x:x + side] = photo(side, side, seed=7)
    return pixels


def png_pixels(pixels: np.ndarray) -> bytes:
    from tests.images import encoded

    return encoded(pixels, "PNG")


def rendered(pixels: np.ndarray, ops: str) -> np.ndarray:
    from tests.images import pixels_of

    return pixels_of(run(png_pixels(pixels), parse(ops, "png"), limits=Limits(), options=OPTIONS).data)


@pytest.mark.parametrize(("subject", "crop"), [((420, 250), (150, 150)), ((30, 20), (200, 120)),
                                                ((250, 150), (120, 300))])
def test_smart_finds_the_subject(subject, crop):
    pixels = scene(subject=subject)
    x, y = smart(pixels, *crop)
    sx, sy = subject
    # The window holds the whole subject (or as much of it as fits).
    assert x <= sx and sx + min(100, crop[0]) <= x + crop[0], (x, y)
    assert y <= sy and sy + min(100, crop[1]) <= y + crop[1], (x, y)


def test_smart_crop_and_cover_over_the_pipeline():
    pixels = scene(subject=(470, 280))
    cropped = rendered(pixels, "crop:w=140:h=140:g=smart")
    assert cropped.shape[:2] == (140, 140)
    # The subject's own pixels are in the crop.
    assert (cropped.std(axis=2) > 20).mean() > 0.3
    covered = rendered(scene(subject=(20, 150)), "resize:w=100:h=100:fit=cover:g=smart")
    centred = rendered(scene(subject=(20, 150)), "resize:w=100:h=100:fit=cover")
    assert covered.shape[:2] == centred.shape[:2] == (100, 100)
    assert (covered.std(axis=2) > 20).mean() > 3 * max(0.01, (centred.std(axis=2) > 20).mean())


@pytest.mark.parametrize(("gravity", "corner"), [("nw", (0, 0)), ("ne", (500, 0)), ("sw", (0, 300)),
                                                 ("se", (500, 300)), ("n", (250, 0)), ("s", (250, 300)),
                                                 ("w", (0, 150)), ("e", (500, 150)), ("center", (250, 150))])
def test_compass(gravity, corner):
    assert place(np.zeros((400, 600, 3), np.uint8), 100, 100, gravity) == corner


def test_focal_point():
    pixels = np.zeros((400, 600, 3), np.uint8)
    assert place(pixels, 100, 100, fx=0.5, fy=0.5) == (250, 150)
    assert place(pixels, 100, 100, fx=0.0, fy=1.0) == (0, 300)  # clamped inside
    assert place(pixels, 100, 100, fx=0.25, fy=0.25) == (100, 50)
    out = rendered(scene(subject=(0, 0)), "crop:w=100:h=100:fx=0.0833:fy=0.125")
    assert (out.std(axis=2) > 20).mean() > 0.5  # centred on (50, 50): the subject


def test_one_spelling_and_clear_mistakes():
    assert parse("crop:w=10:h=10:g=center").canonical() == parse("crop:h=10:w=10").canonical() == "ops=crop:h=10:w=10"
    assert parse("resize:w=10:h=10:fit=cover:g=smart").canonical() == "ops=resize:fit=cover:g=smart:h=10:w=10"
    assert parse("resize:w=10").canonical() == "ops=resize:fit=contain:w=10"  # unchanged by the new parameters
    for bad in ("crop:w=10:h=10:x=3", "crop:w=10:h=10:g=up", "crop:w=10:h=10:fx=2", "crop:x=1:y=1"):
        with pytest.raises(PipelineError):
            parse(bad)
    with pytest.raises(PipelineError, match="not inside"):
        run(png_pixels(scene()), parse("crop:w=700:h=10:g=smart"), limits=Limits(), options=OPTIONS)
