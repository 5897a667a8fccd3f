"""Pipelines: a fixed sequence of steps, decode -> operations -> encode, and their URL grammar.

Grammar (the `ops` query parameter of GET /{id}/process):

    ops     := step ("," step)*                      at most MAX_STEPS steps
    step    := name (":" param)*
    param   := key "=" value
    format  := jpeg | png | webp | avif             (query parameter; default: keep the source's)
    quality := 1..100                                (query parameter; lossy formats only)

    e.g.  ops=grayscale,mirror,resize:w=800&format=webp&quality=80

Steps and their parameters are in STEPS. A pipeline has one canonical spelling (parameters sorted,
defaults written out), which names its cached variant.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transforms.blur import blur
from transforms.decode import decode, plain_jpeg
from transforms.encode import WRITABLE, EncodeOptions, encode
from transforms.formats import MEDIA_TYPES
from transforms.geometry import crop, flip, rotate
from transforms.grayscale import grayscale
from transforms.jpeg_lossless import mirror_jpeg
from transforms.mirror import mirror
from transforms.resize import FITS, resize, thumbnail

MAX_STEPS = 10
MAX_SIDE = 16384
FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}


class PipelineError(ValueError):
    """The pipeline can't be parsed or applied: a 400 with this message."""


@dataclass(frozen=True)
class Param:
    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    default: Any = None

    def parse(self, step: str, key: str, raw: str) -> Any:
        if self.choices:
            if raw not in self.choices:
                raise PipelineError(f"{step}: {key} must be one of {', '.join(self.choices)}")
            return raw
        try:
            value = self.kind(raw)
        except ValueError:
            raise PipelineError(f"{step}: {key}={raw!r} is not a valid {self.kind.__name__}") from None
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise PipelineError(f"{step}: {key} must be between {self.low:g} and {self.high:g}")
        return value


@dataclass(frozen=True)
class StepKind:
    apply: Callable[..., np.ndarray]
    params: dict[str, Param] = field(default_factory=dict)
    required: tuple[str, ...] = ()


_SIDE = Param(int, 1, MAX_SIDE)
_COORD = Param(int, 0, MAX_SIDE)
STEPS: dict[str, StepKind] = {
    "grayscale": StepKind(grayscale),
    "mirror": StepKind(mirror),
    "flip": StepKind(flip),
    "rotate": StepKind(rotate, {"deg": Param(str, choices=("90", "180", "270"))}, ("deg",)),
    "crop": StepKind(crop, {"x": _COORD, "y": _COORD, "w": _SIDE, "h": _SIDE}, ("x", "y", "w", "h")),
    "resize": StepKind(resize, {"w": _SIDE, "h": _SIDE, "fit": Param(str, choices=FITS, default="contain")}),
    "thumbnail": StepKind(thumbnail, {"size": _SIDE}, ("size",)),
    "blur": StepKind(blur, {"r": Param(float, 0.1, 100)}, ("r",)),
}


@dataclass(frozen=True)
class Step:
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        kwargs = dict(self.params)
        if self.name == "rotate":
            kwargs["degrees"] = int(kwargs.pop("deg"))
        elif self.name == "blur":
            kwargs["radius"] = kwargs.pop("r")
        try:
            return STEPS[self.name].apply(pixels, **kwargs)
        except ValueError as exc:  # e.g. a crop outside this image
            raise PipelineError(str(exc)) from None

    def spelling(self) -> str:
        return ":".join([self.name, *(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params)])


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[Step, ...] = ()
    format: str | None = None  # None: the source's format when we can write it, else PNG
    quality: int | None = None

    def output_format(self, source_format: str) -> str:
        if self.format:
            return self.format
        return source_format if source_format in WRITABLE else "PNG"

    def canonical(self) -> str:
        parts = [f"ops={','.join(step.spelling() for step in self.steps)}"]
        if self.format:
            parts.append(f"format={self.format.lower()}")
        if self.quality:
            parts.append(f"quality={self.quality}")
        return "&".join(parts)


def parse(ops: str, fmt: str | None = None, quality: str | None = None) -> Pipeline:
    names = [part for part in ops.split(",") if part] if ops else []
    if len(names) > MAX_STEPS:
        raise PipelineError(f"at most {MAX_STEPS} steps; got {len(names)}")
    steps = []
    for text in names:
        name, *raw_params = text.split(":")
        kind = STEPS.get(name)
        if kind is None:
            raise PipelineError(f"unknown operation {name!r}; one of {', '.join(STEPS)}")
        values: dict[str, Any] = {}
        for raw in raw_params:
            key, sep, value = raw.partition("=")
            if not sep or key not in kind.params:
                raise PipelineError(f"{name}: unknown parameter {raw!r}; takes {', '.join(kind.params) or 'none'}")
            if key in values:
                raise PipelineError(f"{name}: {key} given twice")
            values[key] = kind.params[key].parse(name, key, value)
        missing = [key for key in kind.required if key not in values]
        if missing:
            raise PipelineError(f"{name}: missing {', '.join(missing)}")
        if name == "resize" and "w" not in values and "h" not in values:
            raise PipelineError("resize: give w, h or both")
        for key, param in kind.params.items():
            if key not in values and param.default is not None:
                values[key] = param.default
        steps.append(Step(name, tuple(sorted(values.items()))))
    out_format = None
    if fmt:
        out_format = FORMATS.get(fmt.lower())
        if out_format is None:
            raise PipelineError(f"format must be one of {', '.join(FORMATS)}")
    level = None
    if quality:
        level = Param(int, 1, 100).parse("quality", "quality", quality)
    return Pipeline(tuple(steps), out_format, level)


@dataclass(frozen=True)
class Rendered:
    data: bytes
    format: str
    # Seconds per stage, in order: ("decode", s), (step name, s)..., ("encode", s); for metrics.
    timings: tuple[tuple[str, float], ...] = ()

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def run(data: bytes, pipeline: Pipeline, *, max_pixels: int, options: EncodeOptions) -> Rendered:
    """Decode the original, apply the steps in order, encode."""
    clock = _Clock()
    if pipeline.steps == (Step("mirror"),) and pipeline.format in (None, "JPEG") and plain_jpeg(data, max_pixels):
        mirrored = mirror_jpeg(data)  # lossless, in the DCT domain; None when the geometry doesn't allow
        if mirrored is not None:
            return Rendered(mirrored, "JPEG", clock.lap("mirror_lossless"))
    shrink = _shrink_target(pipeline)
    decoded = decode(data, max_pixels, shrink_to=shrink)
    clock.lap("decode")
    pixels = decoded.pixels
    for step in pipeline.steps:
        pixels = step.apply(pixels)
        clock.lap(step.name)
    fmt = pipeline.output_format(decoded.info.format)
    if pipeline.quality:
        options = EncodeOptions(pipeline.quality, options.png_compression, pipeline.quality)
    encoded = encode(pixels, fmt, options)
    return Rendered(encoded, fmt, clock.lap("encode"))


class _Clock:
    """Stage timings: each lap is the time since the previous one."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, stage: str) -> tuple[tuple[str, float], ...]:
        now = time.perf_counter()
        self.laps.append((stage, now - self.last))
        self.last = now
        return tuple(self.laps)


def _shrink_target(pipeline: Pipeline) -> tuple[int, int] | None:
    """When the first step only shrinks, the decoder may decode at a smaller scale (JPEG draft)."""
    if not pipeline.steps or pipeline.steps[0].name not in ("resize", "thumbnail"):
        return None
    params = dict(pipeline.steps[0].params)
    if pipeline.steps[0].name == "thumbnail":
        return params["size"], params["size"]
    if params.get("fit") == "fill" or "w" not in params or "h" not in params:
        return None
    return params["w"], params["h"]
