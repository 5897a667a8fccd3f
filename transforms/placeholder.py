"""What a client shows before an image arrives: its BlurHash and its dominant colour.

Both come from a ~32 px sample of the decoded pixels (every n-th row and column: a blur of a few
components and a colour histogram need no more), so they cost about a millisecond whatever the
image's size. BlurHash is encoded by `blurhash-python` (the reference algorithm, in C).
"""

from __future__ import annotations

from dataclasses import dataclass

import blurhash
import numpy as np
from PIL import Image

from transforms.alpha import expand_gray, flatten_on_white

SAMPLE_SIDE = 32
COMPONENTS = (4, 3)  # BlurHash x and y components: the usual choice for landscape and portrait alike


@dataclass(frozen=True)
class Placeholder:
    blurhash: str
    dominant_color: str  # "#rrggbb"


def sample(pixels: np.ndarray, side: int = SAMPLE_SIDE) -> np.ndarray:
    """At most side x side RGB pixels spread evenly over the image (alpha flattened onto white)."""
    step = max(1, -(-max(pixels.shape[:2]) // side))
    small = np.ascontiguousarray(pixels[::step, ::step])
    return expand_gray(flatten_on_white(small))


def dominant_color(rgb: np.ndarray) -> str:
    """The mean of the most common colour cell (4 bits per channel): the colour most of the image is."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    cells = (flat[:, 0] >> 4) << 8 | (flat[:, 1] >> 4) << 4 | flat[:, 2] >> 4
    mean = flat[cells == np.bincount(cells).argmax()].mean(axis=0).round().astype(int)
    return "#{:02x}{:02x}{:02x}".format(*mean)


def placeholder(pixels: np.ndarray) -> Placeholder:
    rgb = sample(pixels)
    return Placeholder(blurhash.encode(Image.fromarray(rgb), *COMPONENTS), dominant_color(rgb))
