"""Left-right mirror."""

from __future__ import annotations

import numpy as np


def mirror(pixels: np.ndarray) -> np.ndarray:
    """Exact left-right flip. A view: the encoder materialises it once."""
    return pixels[:, ::-1]
