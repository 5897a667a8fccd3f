"""libvips (the pyvips-binary wheel: nothing to apt-get), set up once, and numpy arrays in and out of it.

Its operations release the GIL, so a replica's renders and its event loop run beside them.
"""

from __future__ import annotations

import numpy as np
import pyvips

# One thread per operation: a replica's parallelism is its requests, each on its own core; libvips's own
# thread pool would only add hand-offs (the same CPU, no shorter wall time under load).
pyvips.concurrency_set(1)
pyvips.cache_set_max(0)  # every array is new: an operation cache would only hold memory


def from_array(pixels: np.ndarray) -> pyvips.Image:
    """(H, W) or (H, W, bands) uint8 pixels as a libvips image over the same memory (keep pixels alive)."""
    height, width = pixels.shape[:2]
    return pyvips.Image.new_from_memory(pixels.data, width, height, 1 if pixels.ndim == 2 else pixels.shape[2],
                                        "uchar")


def to_array(image: pyvips.Image) -> np.ndarray:
    out = np.frombuffer(image.write_to_memory(), dtype=np.uint8)
    return out.reshape((image.height, image.width) if image.bands == 1 else (image.height, image.width, image.bands))
