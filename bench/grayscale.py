"""Grayscale of a JPEG in-process: RGB decode + luma (the old path) against the file's own Y plane.

    .venv/bin/python bench/grayscale.py

Prints ms per render (decode, grayscale, JPEG encode) at 1 MP and 12 MP, medians of interleaved runs.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.images import encoded, photo
from transforms import EncodeOptions, Limits, decode, encode, parse, run
from transforms.grayscale import grayscale

LIMITS, OPTIONS = Limits(10**8), EncodeOptions()


def main() -> None:
    for width, height, rounds in ((1152, 864, 60), (4000, 3000, 8)):
        data = encoded(photo(width, height, seed=3), "JPEG", quality=85)
        paths = {"rgb decode + luma": lambda data=data: encode(grayscale(decode(data, LIMITS).pixels), "JPEG", OPTIONS),
                 "y plane": lambda data=data: run(data, parse("grayscale"), limits=LIMITS, options=OPTIONS)}
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):
            for name, render in paths.items():
                started = time.perf_counter()
                render()
                times[name].append((time.perf_counter() - started) * 1000)
        row = ", ".join(f"{name} {statistics.median(ms):.1f} ms" for name, ms in times.items())
        print(f"{width}x{height} JPEG -> grayscale JPEG: {row}")


if __name__ == "__main__":
    main()
