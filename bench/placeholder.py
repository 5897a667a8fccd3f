"""What a placeholder (BlurHash + dominant colour) adds to an upload, by image size.

    .venv/bin/python bench/placeholder.py

The upload already decodes the whole image to validate it; the placeholder is computed from those
pixels, so its cost is this function alone. Median of 50 calls after 3 warm-ups.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from transforms.placeholder import placeholder


def main() -> None:
    rng = np.random.default_rng(1)
    for label, (height, width) in (("1 MP", (864, 1152)), ("12 MP", (3000, 4000)), ("49 MP", (6000, 8000))):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        for _ in range(3):
            placeholder(pixels)
        times = []
        for _ in range(50):
            started = time.perf_counter()
            placeholder(pixels)
            times.append(time.perf_counter() - started)
        print(f"{label:>6}: {statistics.median(times) * 1000:.2f} ms median, {max(times) * 1000:.2f} ms max")


if __name__ == "__main__":
    main()
