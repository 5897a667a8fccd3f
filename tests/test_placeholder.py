"""Placeholders: BlurHash and dominant colour, from a small sample of the decoded pixels."""

from __future__ import annotations

import blurhash
import numpy as np
import pytest
from PIL import Image

from transforms.placeholder import dominant_color, placeholder, sample


def test_dominant_colour_is_the_colour_most_of_the_image_is():
    pixels = np.zeros((300, 400, 3), np.uint8)
    pixels[:] = (200, 30, 40)
    pixels[:100, :100] = (10, 200, 10)  # a green corner: a twelfth of the image
    pixels[250:, :] = (250, 250, 250)  # a white band: a sixth
    assert dominant_color(sample(pixels)) == "#c81e28"


@pytest.mark.parametrize("channels", [None, 2, 3, 4])
def test_every_layout_gives_a_valid_blurhash(channels):
    rng = np.random.default_rng(5)
    shape = (480, 640) if channels is None else (480, 640, channels)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    hint = placeholder(pixels)
    assert blurhash.is_valid_blurhash(hint.blurhash) and len(hint.blurhash) == 4 + 2 * 4 * 3
    assert hint.dominant_color.startswith("#") and len(hint.dominant_color) == 7


def test_blurhash_decodes_to_the_images_layout():
    """Left half dark, right half light: the decoded placeholder keeps that."""
    pixels = np.zeros((600, 800, 3), np.uint8)
    pixels[:, 400:] = 230
    decoded = np.asarray(Image.fromarray(np.asarray(blurhash.decode(placeholder(pixels).blurhash, 32, 24),
                                                    np.uint8)))
    assert decoded[:, :10].mean() < 60 and decoded[:, -10:].mean() > 170


def test_transparent_pixels_count_as_white():
    pixels = np.zeros((100, 100, 4), np.uint8)  # fully transparent black
    assert placeholder(pixels).dominant_color == "#ffffff"


def test_the_sample_is_small_whatever_the_size():
    assert max(sample(np.zeros((4000, 3000, 3), np.uint8)).shape[:2]) <= 32
    assert sample(np.zeros((10, 7), np.uint8)).shape == (10, 7, 3)
