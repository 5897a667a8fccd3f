"""Several pipelines of one original at once (a batch item): the same bytes as one at a time, with fewer
decodes and shared steps."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest

import transforms.pipeline as pipeline_module
from tests.images import encoded, photo, pixels_of
from transforms import OPERATIONS, EncodeOptions, ImageError, Limits, parse, run, run_many
from transforms.pipeline import PipelineError, Step

OPTIONS = EncodeOptions()
LIMITS = Limits()


@pytest.fixture
def counted(monkeypatch):
    """How often the original is decoded, and each step applied."""
    calls: dict[str, int] = {}
    decode, apply = pipeline_module.decode, Step.apply

    def counting_decode(data, limits, **kwargs):
        calls["decode"] = calls.get("decode", 0) + 1
        return decode(data, limits, **kwargs)

    def counting_apply(self, pixels, marks=None):
        calls[self.spelling()] = calls.get(self.spelling(), 0) + 1
        return apply(self, pixels, marks)

    monkeypatch.setattr(pipeline_module, "decode", counting_decode)
    monkeypatch.setattr(Step, "apply", counting_apply)
    return calls


def test_the_seed_operations_together_give_the_bytes_of_each_alone(counted):
    data = encoded(photo(640, 480, seed=3), "JPEG", quality=90)
    alone = [run(data, OPERATIONS[op], limits=LIMITS, options=OPTIONS).data for op in OPERATIONS]
    counted.clear()
    together = run_many(data, [(OPERATIONS[op], OPTIONS) for op in OPERATIONS], limits=LIMITS)
    assert [out.data for out in together] == alone
    # One decode for jpeg, png and mirror (RGB), one of the JPEG's Y plane for grayscale.
    assert counted["decode"] == 2


def test_pipelines_that_share_leading_steps_share_their_result(counted):
    data = encoded(photo(400, 300, seed=4), "PNG")
    wanted = ["resize:w=200,grayscale", "resize:w=200,mirror", "resize:w=200,grayscale,blur:r=2", "mirror"]
    pipelines = [parse(ops, "png") for ops in wanted]
    together = run_many(data, [(p, OPTIONS) for p in pipelines], limits=LIMITS)
    assert counted["decode"] == 1
    assert counted[pipelines[0].steps[0].spelling()] == 1  # the resize, once for three pipelines
    assert counted["grayscale"] == 1  # and resize,grayscale once for two
    for pipeline, out in zip(pipelines, together, strict=True):
        alone = run(data, pipeline, limits=LIMITS, options=OPTIONS)
        assert np.array_equal(pixels_of(out.data), pixels_of(alone.data)) and out.size == alone.size


def test_one_pipeline_that_cannot_apply_fails_alone():
    data = encoded(photo(100, 80, seed=5), "PNG")
    wanted = [parse("crop:x=90:y=0:w=50:h=10"), parse("mirror"), parse("resize:w=16000:h=16000:fit=fill")]
    bad_crop, mirrored, too_large = run_many(data, [(p, OPTIONS) for p in wanted], limits=LIMITS)
    assert isinstance(bad_crop, PipelineError) and bad_crop.code == "bad_pipeline"
    assert isinstance(too_large, ImageError) and too_large.code == "output_too_large"
    assert np.array_equal(pixels_of(mirrored.data), pixels_of(data)[:, ::-1])


def test_the_shared_work_is_reserved_before_any_pixel_work(counted):
    data = encoded(photo(300, 200, seed=6), "PNG")
    pipelines = [parse("resize:w=150,grayscale"), parse("resize:w=150,mirror")]

    def reservations(wanted: list) -> list[int]:
        seen: list[int] = []

        def reserve(needs: int) -> nullcontext:
            assert "decode" not in counted  # before any pixel work
            seen.append(needs)
            return nullcontext()

        counted.clear()
        run_many(data, [(p, OPTIONS) for p in wanted], limits=LIMITS, reserve=reserve)
        return seen

    alone = [reservations([p])[0] for p in pipelines]
    together = reservations(pipelines)
    # One reservation for both: the larger render's peak, and the kept outputs the second one starts from.
    assert len(together) == 1 and together[0] > max(alone)
