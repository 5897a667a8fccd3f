"""Lanczos-3 resampling: libvips's reduce for downscales matches Pillow's LANCZOS, with alpha premultiplied."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.images import photo, photo_like
from transforms.resample import resample


def pillow(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """What the resize step did before libvips: Pillow's LANCZOS, box-reduced first beyond a factor 3."""
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


@pytest.mark.parametrize(("size", "within"), [((512, 340), 0.5), ((700, 200), 0.5), ((100, 66), 1.0),
                                              ((37, 600), 1.5), ((333, 1), 1.5), ((1, 1), 1.5)])
def test_downscale_is_the_asked_size_and_matches_pillow(size: tuple[int, int], within: float) -> None:
    """Within a fraction of a level of Pillow on a photo; a little more at extreme factors, where the
    box shrink's edges differ (libvips drops a last partial box, Pillow averages it)."""
    pixels = photo_like(1020, 678, seed=3)
    out = resample(pixels, size)
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    assert difference(out, pillow(pixels, size)).mean() < within


def test_gray_and_a_strided_view() -> None:
    pixels = photo(600, 400, seed=4)
    gray = pixels[..., 1]  # a strided view, not contiguous
    out = resample(gray, (150, 100))
    assert out.shape == (100, 150)
    assert difference(out, pillow(np.ascontiguousarray(gray), (150, 100))).mean() < 1.0


def test_alpha_is_premultiplied_so_hidden_colours_do_not_bleed() -> None:
    # Opaque blue on the left, fully transparent red on the right: the red must not show at the seam.
    rgba = np.zeros((64, 128, 4), np.uint8)
    rgba[:, :64] = (0, 0, 255, 255)
    rgba[:, 64:] = (255, 0, 0, 0)
    out = resample(rgba, (32, 16))
    visible = out[..., 3] > 0
    assert out[visible][:, 0].max() <= 2  # no red in any pixel that shows
    reference = pillow(rgba, (32, 16))
    assert (difference(out, reference)[..., 3] <= 2).all()
    assert (difference(out, reference)[visible] <= 2).all()  # a hidden pixel's colour is anyone's


def test_gray_alpha_keeps_its_two_bands() -> None:
    la = np.dstack([photo(200, 100)[..., 0], np.full((100, 200), 255, np.uint8)])
    out = resample(la, (50, 25))
    assert out.shape == (25, 50, 2) and (out[..., 1] == 255).all()


def test_enlargement_and_same_size() -> None:
    pixels = photo(40, 30, seed=5)
    assert (resample(pixels, (80, 60)) == pillow(pixels, (80, 60))).all()
    assert resample(pixels, (40, 30)) is pixels
