"""Peak memory and time of rendering a long animation: a 300-frame 800x600 GIF, mirrored.

    .venv/bin/python bench/animation.py

Each render runs in a fresh subprocess; its peak RSS (ru_maxrss) minus the RSS before the render is
what the render cost, printed beside the plan's estimate (what the memory gate reserves).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
from PIL import Image

FRAMES, WIDTH, HEIGHT = 300, 800, 600

CHILD = """
import json, resource, sys, time
from transforms import EncodeOptions, Limits, parse, plan, run
data = open(sys.argv[1], "rb").read()
pipeline = parse(sys.argv[2], sys.argv[3] or None)
limits = Limits(memory_bytes=8 << 30)
estimate = plan(data, pipeline, limits).peak_bytes
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096
before = rss()
started = time.perf_counter()
out = run(data, pipeline, limits=limits, options=EncodeOptions())
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "grew": peak - before, "estimate": estimate, "bytes": len(out.data)}))
"""


def animation() -> bytes:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames = [Image.fromarray(np.roll(base, 8 * i, axis=1)).quantize(64) for i in range(FRAMES)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    return out.getvalue()


def main() -> None:
    path = "/tmp/prog-image-bench-animation.gif"
    with open(path, "wb") as f:
        f.write(animation())
    print(f"{FRAMES} frames of {WIDTH}x{HEIGHT} GIF; render in a fresh process each")
    for ops, fmt in (("mirror", ""), ("resize:w=400", ""), ("mirror", "webp")):
        result = json.loads(subprocess.run([sys.executable, "-c", CHILD, path, ops, fmt], check=True,
                                           capture_output=True, text=True).stdout)
        print(f"{ops:>13} -> {fmt or 'gif':<5} {result['seconds']:6.2f} s  peak RSS +{result['grew'] / 2**20:5.0f} MB"
              f"  plan {result['estimate'] / 2**20:5.0f} MB  output {result['bytes'] / 2**20:5.1f} MB")


if __name__ == "__main__":
    main()
