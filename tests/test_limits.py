"""The render plan: hostile requests refused from the header, before any pixel work, and the plan's
memory estimate an upper bound of what a render really uses."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.hostile_files import flat_png, gif_frame_bomb, jpeg_scan_bomb, tiny_png
from tests.images import encoded, photo
from transforms import (
    EncodeOptions,
    Limits,
    OutputTooLarge,
    OverBudget,
    PipelineError,
    RenderTimeout,
    TooComplex,
    decode,
    parse,
    plan,
    run,
)


def test_the_pipeline_memory_bomb_is_refused_from_the_header():
    """A 1x1 PNG blown up to 16384x16384 and blurred (it took a replica to 19 GB)."""
    started = time.perf_counter()
    with pytest.raises(OutputTooLarge, match="16384x16384"):
        run(tiny_png(), parse("resize:w=16384:h=16384:fit=fill,blur:r=1"), limits=Limits(), options=EncodeOptions())
    assert time.perf_counter() - started < 0.1


def test_upscaling_is_allowed_up_to_the_output_limit():
    data = tiny_png(2)
    assert plan(data, parse("resize:w=1000:h=1000:fit=fill"), Limits(max_output_pixels=1_000_000)).output[:2] == \
        (1000, 1000)
    with pytest.raises(OutputTooLarge):
        plan(data, parse("resize:w=1001:h=1000:fit=fill"), Limits(max_output_pixels=1_000_000))


def test_a_cover_resize_counts_the_image_it_resamples_before_cropping():
    data = encoded(photo(1000, 10), "PNG")  # cover 100x100 resamples to 10000x100 first
    with pytest.raises(OutputTooLarge, match="10000x100"):
        plan(data, parse("resize:w=100:h=100:fit=cover"), Limits(max_output_pixels=999_999))


def test_over_budget_names_the_need_and_the_budget():
    with pytest.raises(OverBudget, match=r"needs about \d+ MB .* may use 64 MB"):
        plan(flat_png(4000, 3000), parse("blur:r=100"), Limits(memory_bytes=64 << 20))


def test_a_crop_outside_the_image_is_refused_before_decoding():
    with pytest.raises(PipelineError, match="not inside the 40x30 image"):
        plan(encoded(photo(40, 30), "PNG"), parse("crop:x=30:y=0:w=20:h=10"), Limits())


def test_the_frame_bomb_is_refused_without_decoding_a_frame():
    data = gif_frame_bomb(1000, 7000)
    started = time.perf_counter()
    with pytest.raises(TooComplex, match="frames"):
        decode(data, Limits())
    with pytest.raises(TooComplex, match="all frames together"):  # few frames, but frames x canvas too large
        decode(gif_frame_bomb(20, 7000), Limits(max_animation_pixels=500_000_000))
    assert time.perf_counter() - started < 0.5
    assert decode(gif_frame_bomb(20, 300), Limits()).pixels.shape[:2] == (300, 300)


def test_the_progressive_scan_bomb_is_refused_before_decoding():
    data = jpeg_scan_bomb(500)
    started = time.perf_counter()
    with pytest.raises(TooComplex, match="scans"):
        decode(data, Limits())
    assert time.perf_counter() - started < 0.5
    ordinary = encoded(photo(64, 64), "JPEG", progressive=True)
    assert decode(ordinary, Limits()).pixels.shape == (64, 64, 3)


def test_a_render_past_its_deadline_stops_between_stages():
    data = encoded(photo(200, 100), "PNG")
    with pytest.raises(RenderTimeout, match="after decode"):
        run(data, parse("grayscale,mirror"), limits=Limits(), options=EncodeOptions(), deadline=time.time() - 1)


_MEASURE = """
import gc, json, sys, numpy as np
from tests.images import encoded, photo
from transforms import EncodeOptions, Limits, parse, plan, run
ops, fmt, w, h, channels = json.loads(sys.argv[1])
picture = photo(w, h, seed=1)
if channels == 4:
    picture = np.dstack([picture, np.full((h, w), 128, np.uint8)])
data = encoded(picture, "PNG", compress_level=1)
del picture
gc.collect()
pipeline = parse(ops, fmt)
estimate = plan(data, pipeline, Limits()).peak_bytes - len(data)  # the source is already in memory

def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field))

with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak (VmHWM) starts again from here
before = status("VmRSS")
run(data, pipeline, limits=Limits(), options=EncodeOptions())
print(json.dumps({"estimate": estimate, "used": status("VmHWM") - before}))
"""


@pytest.mark.parametrize("case", [
    ("", "png", 3000, 2000, 3), ("", "jpeg", 3000, 2000, 4), ("blur:r=50", "jpeg", 3000, 2000, 3),
    ("resize:w=6000:h=4000", "webp", 3000, 2000, 3), ("grayscale,mirror,rotate:deg=90", "png", 3000, 2000, 4),
    ("thumbnail:size=300", "png", 3000, 2000, 4), ("crop:x=0:y=0:w=100:h=100", "jpeg", 3000, 2000, 3),
])
@pytest.mark.system  # a real process per case, measured: seconds each, not the quick lane
def test_the_plan_is_an_upper_bound_of_the_real_peak(case):
    """Peak RSS growth of a real render (a fresh process each) never exceeds the plan's estimate."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, json.dumps(case)], capture_output=True, text=True,
                         check=True, timeout=120)
    figures = json.loads(out.stdout)
    assert figures["used"] <= figures["estimate"], figures
