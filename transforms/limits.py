"""What one render may cost, and the plan that checks it before any pixel is decoded.

A render's memory is known from the header alone: every step's output size follows from its input
size and its parameters, and every step's working memory from both (the model below, per step in
transforms.pipeline.STEPS). So a request that would need gigabytes is refused in microseconds,
not after a decode; and the caller can reserve the plan's peak before it starts (see the
deployments' memory gate), so several large renders never run at once beyond a budget.

The model is an upper bound, measured against the real peak RSS in tests/test_limits.py: decoded
images count 4 bytes a pixel (Pillow keeps RGB as RGBX), views count as copies, and a step's
input stays alive while it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from transforms.errors import OutputTooLarge, OverBudget

Shape = tuple[int, int, int]  # height, width, channels (1 L, 2 LA, 3 RGB, 4 RGBA)

PILLOW_BYTES_PER_PIXEL = 4  # Pillow stores every 3- and 4-channel image as 4 bytes a pixel


@dataclass(frozen=True)
class Limits:
    """Every limit a render is held to. Defaults match deployments.config's."""

    max_pixels: int = 50_000_000  # one input frame, width x height (a decompression bomb beyond)
    max_output_pixels: int = 50_000_000  # any intermediate or output image
    max_frames: int = 500  # frames of an animation or pages of a TIFF, counted before decoding
    max_animation_pixels: int = 500_000_000  # frames x canvas
    max_scans: int = 100  # progressive JPEG scans (a CPU bomb beyond; cameras write 1, encoders about 10)
    memory_bytes: int = 2 << 30  # one render's peak working memory (the plan's estimate)

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_output_pixels", "max_frames", "max_animation_pixels", "max_scans",
                     "memory_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


def image_bytes(shape: Shape) -> int:
    return shape[0] * shape[1] * shape[2]


def pillow_bytes(shape: Shape) -> int:
    """An image as Pillow holds it."""
    return shape[0] * shape[1] * (PILLOW_BYTES_PER_PIXEL if shape[2] >= 3 else shape[2])


@dataclass(frozen=True)
class Stage:
    name: str
    output: Shape
    peak_bytes: int  # input + output + working memory while this stage runs


@dataclass(frozen=True)
class Plan:
    stages: tuple[Stage, ...]
    source_bytes: int  # the encoded original, held throughout
    held_bytes: int = 0  # an animation's finished frames, held for its encoder while the next ones render

    @property
    def peak_bytes(self) -> int:
        return self.source_bytes + self.held_bytes + max(stage.peak_bytes for stage in self.stages)

    @property
    def output(self) -> Shape:
        return self.stages[-1].output

    def check(self, limits: Limits) -> Plan:
        """Raise OutputTooLarge or OverBudget unless every stage fits the limits; returns itself."""
        for stage in self.stages:
            height, width, _ = stage.output
            if height * width > limits.max_output_pixels:
                raise OutputTooLarge(f"{stage.name} would make a {width}x{height} image ({width * height} pixels); "
                                     f"the limit is {limits.max_output_pixels}")
        if self.peak_bytes > limits.memory_bytes:
            worst = max(self.stages, key=lambda stage: stage.peak_bytes)
            raise OverBudget(f"this render needs about {_mb(self.peak_bytes)} MB (most in {worst.name}); "
                             f"one render may use {_mb(limits.memory_bytes)} MB")
        return self


DEEP_DECODE_BYTES_PER_PIXEL = 24  # 16/32-bit samples: Pillow's, then uint32 temporaries while scaling to 8 bits


def decode_stage(shape: Shape, deep: bool = False) -> Stage:
    """Pillow's image, up to two oriented or colour-converted copies of it, and the array we keep."""
    if deep:
        return Stage("decode", shape, DEEP_DECODE_BYTES_PER_PIXEL * shape[0] * shape[1] * shape[2])
    return Stage("decode", shape, 3 * pillow_bytes(shape) + image_bytes(shape))


def encode_stage(shape: Shape) -> Stage:
    """The input, a contiguous or flattened copy (uint16 temporaries when flattening alpha), Pillow's or
    the PNG filter's copy, and an output no larger than the raw pixels."""
    return Stage("encode", shape, 3 * image_bytes(shape) + pillow_bytes(shape) + 4 * shape[0] * shape[1])


def _mb(size: int) -> int:
    return math.ceil(size / 2**20)
