"""Pipelines: a fixed sequence of steps, decode -> operations -> encode, and their URL grammar.

Grammar (the `ops` query parameter of GET /{id}/process):

    ops     := step ("," step)*                      at most MAX_STEPS steps
    step    := name (":" param)*
    param   := key "=" value
    format  := jpeg | png | webp | avif | gif       (query parameter; default: keep the source's)
    quality := 1..100                                (query parameter; lossy formats only)

    e.g.  ops=grayscale,mirror,resize:w=800&format=webp&quality=80

Steps and their parameters are in STEPS. A pipeline has one canonical spelling (parameters sorted,
defaults written out), which names its cached variant.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transforms import jpeg_exact
from transforms.blur import blur
from transforms.colour import PATTERN as COLOUR_PATTERN
from transforms.decode import (
    Header,
    ImageInfo,
    animation_frames,
    animation_loop,
    decode,
    orientation,
    probe,
    probe_header,
)
from transforms.encode import ANIMATED, WRITABLE, AnimationWriter, EncodeOptions, OutputOptions, encode_output
from transforms.errors import ImageError, RenderTimeout
from transforms.formats import MEDIA_TYPES
from transforms.geometry import crop, flip, rotate
from transforms.gravity import GRAVITIES
from transforms.grayscale import grayscale
from transforms.layout import background, pad, trim
from transforms.limits import Limits, Plan, Shape, Stage, decode_stage, encode_stage, image_bytes, pillow_bytes
from transforms.metadata import exif_of
from transforms.mirror import mirror
from transforms.resize import FITS, resize, target_size, thumbnail
from transforms.sharpen import sharpen
from transforms.watermark import watermark

MAX_STEPS = 10
MAX_SIDE = 16384
PHOTO_INPUTS = frozenset(("HEIF", "AVIF"))  # read, not written by default: served as JPEG
FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "gif": "GIF"}


class PipelineError(ImageError, ValueError):
    """The pipeline can't be parsed or applied (a ValueError too, for the job schema's validators)."""

    code = "bad_pipeline"


_INT = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")
_KIND_NAMES = {int: "whole number (ASCII digits)", float: "decimal number (ASCII digits)", str: "string"}


@dataclass(frozen=True)
class Param:
    kind: type
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    default: Any = None
    implicit: bool = False  # its default is left out of the canonical spelling (a parameter added later)
    pattern: str = ""  # a str parameter without choices: what it must look like
    hint: str = ""  # and how to say so

    def parse(self, step: str, key: str, raw: str) -> Any:
        if self.choices:
            if raw not in self.choices:
                raise PipelineError(f"{step}: {key} must be one of {', '.join(self.choices)}")
            return raw
        if self.kind is str:
            if not re.fullmatch(self.pattern, raw):
                raise PipelineError(f"{step}: {key} must be {self.hint}")
            return raw
        # ASCII digits only: int() and float() also take '٣٢', '1_0', 'nan' and 'inf'.
        if not (_INT if self.kind is int else _DECIMAL).fullmatch(raw):
            raise PipelineError(f"{step}: {key}={raw!r} is not a valid {_KIND_NAMES[self.kind]}")
        value = self.kind(raw)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise PipelineError(f"{step}: {key} must be between {self.low:g} and {self.high:g}")
        return value


# How a step changes the image's shape, and its peak memory: (input shape, its parameters) -> stage.
Planner = Callable[[Shape, dict[str, Any]], tuple[Stage, ...]]


@dataclass(frozen=True)
class StepKind:
    apply: Callable[..., np.ndarray]
    plan: Planner
    params: dict[str, Param] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()  # at least one of these must be given


def _copy(name: str, shape: Shape) -> tuple[Stage, ...]:
    """A step whose output is the input's size (views are counted as copies)."""
    return (Stage(name, shape, 2 * image_bytes(shape)),)


def _plan_grayscale(shape: Shape, _: dict[str, Any]) -> tuple[Stage, ...]:
    out = (shape[0], shape[1], {3: 1, 4: 2}.get(shape[2], shape[2]))
    return (Stage("grayscale", out, image_bytes(shape) + 2 * image_bytes(out)),)


def _plan_rotate(shape: Shape, params: dict[str, Any]) -> tuple[Stage, ...]:
    height, width, channels = shape
    out = (width, height, channels) if params["deg"] in ("90", "270") else shape
    return (Stage("rotate", out, 2 * image_bytes(shape)),)


def _plan_crop(shape: Shape, params: dict[str, Any]) -> tuple[Stage, ...]:
    height, width, channels = shape
    x, y, w, h = params.get("x", 0), params.get("y", 0), params["w"], params["h"]
    if x + w > width or y + h > height:  # refused here, before decoding, as crop() would refuse it
        where = f"at ({x}, {y}) " if "x" in params else ""
        raise PipelineError(f"crop: rectangle {w}x{h} {where}is not inside the {width}x{height} image")
    return (Stage("crop", (h, w, channels), image_bytes(shape) + h * w * channels),)


def _plan_resize(shape: Shape, params: dict[str, Any], name: str = "resize") -> tuple[Stage, ...]:
    """Pillow's copy of the input, its horizontal pass, its output; then our array (cropped for cover)."""
    height, width, channels = shape
    w, h, fit = params.get("w"), params.get("h"), params.get("fit", "contain")
    new_w, new_h = target_size(width, height, w, h, fit)
    resampled = (new_h, new_w, channels)
    working = pillow_bytes(shape) + pillow_bytes((height, new_w, channels)) + pillow_bytes(resampled)
    stages = (Stage(name, resampled, image_bytes(shape) + working + image_bytes(resampled)),)
    if fit == "cover" and w and h:  # then cropped to w x h: a view of the resampled image
        stages += (Stage(f"{name} (cover crop)", (h, w, channels), image_bytes(resampled)),)
    return stages


def _plan_thumbnail(shape: Shape, params: dict[str, Any]) -> tuple[Stage, ...]:
    size = params["size"]
    if shape[0] <= size and shape[1] <= size:
        return (Stage("thumbnail", shape, image_bytes(shape)),)
    return _plan_resize(shape, {"w": size, "h": size, "fit": "contain"}, "thumbnail")


def _plan_blur(shape: Shape, _: dict[str, Any]) -> tuple[Stage, ...]:
    """Pillow's copy of the input and its blurred output, then our array."""
    return (Stage("blur", shape, 2 * image_bytes(shape) + 2 * pillow_bytes(shape)),)


def _plan_pad(shape: Shape, params: dict[str, Any]) -> tuple[Stage, ...]:
    height, width, channels = shape
    transparent = len(params["color"]) == 8 and channels in (1, 3)
    out = (height + params["t"] + params["b"], width + params["l"] + params["r"], channels + transparent)
    return (Stage("pad", out, 2 * image_bytes(shape) + image_bytes(out)),)


def _plan_background(shape: Shape, params: dict[str, Any]) -> tuple[Stage, ...]:
    height, width, channels = shape
    out = (height, width, {2: 3, 4: 3}.get(channels, channels))
    return (Stage("background", out, image_bytes(shape) + 4 * image_bytes(out)),)


def _plan_watermark(shape: Shape, params: dict[str, Any]) -> tuple[Stage, ...]:
    """The mark decoded (its shape is put in params by plan()), its scaled copy, and a copy of the image."""
    height, width, channels = shape
    out = (height, width, max(3, channels))
    mark = params.get("_mark", (1, 1, 4))
    return (Stage("watermark", out, image_bytes(shape) + 2 * image_bytes(out) + decode_stage(mark).peak_bytes
                  + 16 * height * width),)


_SIDE = Param(int, 1, MAX_SIDE)
_COORD = Param(int, 0, MAX_SIDE)
_COLOUR = Param(str, default="ffffff", pattern=COLOUR_PATTERN, hint="rrggbb or rrggbbaa (hex)")
_PLACE = {"g": Param(str, choices=GRAVITIES, default="center", implicit=True),
          "fx": Param(float, 0, 1), "fy": Param(float, 0, 1)}  # where a cover or crop window goes
STEPS: dict[str, StepKind] = {
    "grayscale": StepKind(grayscale, _plan_grayscale),
    "mirror": StepKind(mirror, lambda shape, _: _copy("mirror", shape)),
    "flip": StepKind(flip, lambda shape, _: _copy("flip", shape)),
    "rotate": StepKind(rotate, _plan_rotate, {"deg": Param(str, choices=("90", "180", "270"))}, ("deg",)),
    "crop": StepKind(crop, _plan_crop, {"x": _COORD, "y": _COORD, "w": _SIDE, "h": _SIDE, **_PLACE}, ("w", "h")),
    "resize": StepKind(resize, _plan_resize,
                       {"w": _SIDE, "h": _SIDE, "fit": Param(str, choices=FITS, default="contain"), **_PLACE},
                       one_of=("w", "h")),
    "thumbnail": StepKind(thumbnail, _plan_thumbnail, {"size": _SIDE}, ("size",)),
    "blur": StepKind(blur, _plan_blur, {"r": Param(float, 0.1, 100)}, ("r",)),
    "sharpen": StepKind(sharpen, _plan_blur, {"r": Param(float, 0.1, 20, default=1.0),
                                              "amount": Param(int, 1, 500, default=100),
                                              "threshold": Param(int, 0, 255, default=2)}),
    "trim": StepKind(trim, lambda shape, _: _copy("trim", shape), {"threshold": Param(int, 0, 255, default=10)}),
    "pad": StepKind(pad, _plan_pad, {side: Param(int, 0, MAX_SIDE, default=0) for side in ("t", "r", "b", "l")}
                    | {"color": _COLOUR}),
    "background": StepKind(background, _plan_background, {"color": _COLOUR}),
    "watermark": StepKind(watermark, _plan_watermark,
                          {"id": Param(str, pattern=r"[0-9a-f]{64}", hint="an image id (64 hex digits)"),
                           "pos": Param(str, choices=tuple(g for g in GRAVITIES if g != "smart"), default="se"),
                           "opacity": Param(float, 0, 1, default=1.0), "scale": Param(float, 0.01, 1, default=0.25)},
                          ("id",)),
}


@dataclass(frozen=True)
class Step:
    name: str
    params: tuple[tuple[str, Any], ...] = ()

    def apply(self, pixels: np.ndarray, marks: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """marks: the decoded images a watermark step places, by id."""
        kwargs = dict(self.params)
        if self.name == "watermark":
            kwargs["mark"] = (marks or {})[kwargs.pop("id")]
        elif self.name == "rotate":
            kwargs["degrees"] = int(kwargs.pop("deg"))
        elif self.name == "blur":
            kwargs["radius"] = kwargs.pop("r")
        try:
            return STEPS[self.name].apply(pixels, **kwargs)
        except ValueError as exc:  # e.g. a crop outside this image
            raise PipelineError(str(exc)) from None

    def plan(self, shape: Shape, marks: Mapping[str, Shape] | None = None) -> tuple[Stage, ...]:
        params = dict(self.params)
        if self.name == "watermark":
            params["_mark"] = (marks or {}).get(params["id"], (1, 1, 4))
        return STEPS[self.name].plan(shape, params)

    def spelling(self) -> str:
        return ":".join([self.name, *(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params)])


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[Step, ...] = ()
    format: str | None = None  # None: the source's format when we can write it, else PNG
    quality: int | None = None
    progressive: bool = False  # JPEG output in progressive scans
    strip: bool = True  # False: keep the original's EXIF (see transforms.metadata)
    max_bytes: int | None = None  # lossy outputs: the highest quality that fits

    def output_format(self, source_format: str, animated: bool = False, alpha: bool = False) -> str:
        """The format asked for; else the source's when we write it (an animated GIF stays a GIF); a photo
        format we only read (HEIC, AVIF) becomes JPEG, or PNG with alpha; anything else PNG."""
        if self.format:
            return self.format
        if animated and source_format in ANIMATED:
            return source_format
        if source_format in WRITABLE:
            return source_format
        return "PNG" if alpha or source_format not in PHOTO_INPUTS else "JPEG"

    def assets(self) -> tuple[str, ...]:
        """The ids of other stored images the steps need (watermarks), each once."""
        return tuple(dict.fromkeys(dict(step.params)["id"] for step in self.steps if step.name == "watermark"))

    def canonical(self) -> str:
        parts = [f"ops={','.join(step.spelling() for step in self.steps)}"]
        if self.format:
            parts.append(f"format={self.format.lower()}")
        if self.quality:
            parts.append(f"quality={self.quality}")
        if self.progressive:
            parts.append("progressive=1")
        if not self.strip:
            parts.append("strip=0")
        if self.max_bytes:
            parts.append(f"max_bytes={self.max_bytes}")
        return "&".join(parts)


@dataclass(frozen=True)
class Preset:
    """A named pipeline: its steps, and the format and quality it asks for unless the request does."""

    ops: str
    format: str | None = None
    quality: str | None = None


PRESET_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def parse(ops: str, fmt: str | None = None, quality: str | None = None,
          presets: Mapping[str, Preset] | None = None, *, progressive: str | None = None,
          strip: str | None = None, max_bytes: str | None = None) -> Pipeline:
    """A pipeline from the URL grammar. A `preset:<name>` step stands for that preset's steps (a preset
    holds no presets), so its variant is keyed by what it expands to: a changed preset is a new variant."""
    names: list[str] = []
    for part in ops.split(",") if ops else []:
        if part.startswith("preset:"):
            name = part.removeprefix("preset:")
            preset = (presets or {}).get(name)
            if preset is None:
                raise PipelineError(f"unknown preset {name!r}")
            names.extend(step for step in preset.ops.split(",") if step)
            fmt, quality = fmt or preset.format, quality or preset.quality
        elif part:
            names.append(part)
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
        if kind.one_of and not values.keys() & set(kind.one_of):
            raise PipelineError(f"{name}: give {', '.join(kind.one_of)} or both")
        if name == "crop" and ("x" in values) != ("y" in values):
            raise PipelineError("crop: give both x and y, or neither (then g, or fx and fy, place it)")
        for key, param in kind.params.items():
            if key not in values and param.default is not None and not param.implicit:
                values[key] = param.default
            elif param.implicit and values.get(key) == param.default:
                del values[key]  # one spelling: the default is never written
        steps.append(Step(name, tuple(sorted(values.items()))))
    out_format = None
    if fmt:
        out_format = FORMATS.get(fmt.lower())
        if out_format is None:
            raise PipelineError(f"format must be one of {', '.join(FORMATS)}")
    level = None
    if quality:
        level = Param(int, 1, 100).parse("quality", "quality", quality)
    flag = Param(str, choices=("0", "1"))
    return Pipeline(tuple(steps), out_format, level,
                    progressive=bool(progressive) and flag.parse("output", "progressive", progressive) == "1",
                    strip=not strip or flag.parse("output", "strip", strip) == "1",
                    max_bytes=Param(int, 100, 100_000_000).parse("output", "max_bytes", max_bytes) if max_bytes
                    else None)


@dataclass(frozen=True)
class Rendered:
    data: bytes
    format: str
    size: tuple[int, int] | None = None  # (width, height)
    # Seconds per stage, in order: ("decode", s), (step name, s)..., ("encode", s); for metrics.
    timings: tuple[tuple[str, float], ...] = ()

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def plan(data: bytes, pipeline: Pipeline, limits: Limits, assets: Mapping[str, bytes] | None = None) -> Plan:
    """Every stage's output size and peak memory, from the header alone (and the headers of assets, the
    other images the steps place, by id); checked against the limits (OutputTooLarge, OverBudget; a bad
    crop is a PipelineError). No pixel is decoded."""
    return _plan(probe(data, limits), len(data), pipeline, limits, assets or {})


def _plan(info: ImageInfo, source_bytes: int, pipeline: Pipeline, limits: Limits,
          assets: Mapping[str, bytes]) -> Plan:
    marks = {}
    for image_id in pipeline.assets():
        if image_id not in assets:
            raise PipelineError(f"watermark: no image {image_id}")
        mark = probe(assets[image_id], limits)
        marks[image_id] = (mark.height, mark.width, 4)
    animation = _animation(info, pipeline)
    channels = 4 if animation else info.channels  # an animation's frames are composited as RGBA
    stages = [decode_stage((info.height, info.width, channels), info.deep)]
    for step in pipeline.steps:
        stages.extend(step.plan(stages[-1].output, marks))
    stages.append(encode_stage(stages[-1].output))
    # The finished frames as the encoder takes them, and as much again for its own output and state
    # (bench/animation.py: 300 frames of 800x600 peaked at 0.6-1.0x this).
    held = 2 * info.frames * pillow_bytes(stages[-1].output) if animation else 0
    return Plan(tuple(stages), source_bytes, held).check(limits)


def _animation(info: ImageInfo, pipeline: Pipeline) -> bool:
    """Every frame is rendered: an animation, written to a format that keeps one."""
    return info.animated and pipeline.output_format(info.format, animated=True) in ANIMATED


def run(data: bytes, pipeline: Pipeline, *, limits: Limits, options: EncodeOptions,
        deadline: float | None = None,
        reserve: Callable[[int], AbstractContextManager[object]] = lambda _: nullcontext(),
        assets: Mapping[str, bytes] | None = None) -> Rendered:
    """Plan (refusing what is over the limits), decode the original, apply the steps in order, encode.

    deadline (time.time()): checked between stages, so a render that has run out of time stops
    there with RenderTimeout instead of finishing for nobody. reserve: given the plan's peak bytes
    before any pixel work, its context spans the render (a caller's memory budget). assets: the
    encoded images the steps place (pipeline.assets()), by id."""
    result = run_many(data, [(pipeline, options)], limits=limits, deadline=deadline, reserve=reserve, assets=assets)[0]
    if isinstance(result, ImageError):
        raise result
    return result


def run_many(data: bytes, wanted: Sequence[tuple[Pipeline, EncodeOptions]], *, limits: Limits,
             deadline: float | None = None,
             reserve: Callable[[int], AbstractContextManager[object]] = lambda _: nullcontext(),
             assets: Mapping[str, bytes] | None = None) -> list[Rendered | ImageError]:
    """Several pipelines of one original, as run() does each, with one decode per way of decoding (full,
    JPEG luma, or shrunk on load to one size); pipelines that share leading steps share their result.
    Each result is its Rendered or the ImageError refusing it (a bad crop fails only its own); a header
    the decoder refuses, or the deadline, raises for all."""
    info, header = probe_header(data, limits)  # once: every plan shares it, and the first decode
    plans: list[Plan | ImageError] = []
    for pipeline, _ in wanted:
        try:
            plans.append(_plan(info, len(data), pipeline, limits, assets or {}))
        except ImageError as exc:
            plans.append(exc)
    results: list[Rendered | ImageError] = list(plans)  # type: ignore[arg-type]  # planned ones are replaced
    groups: dict[tuple[Any, ...], list[int]] = {}
    exact: dict[int, jpeg_exact.Exact] = {}
    for index, (pipeline, options) in enumerate(wanted):
        if not isinstance(plans[index], ImageError):
            if (answer := _exact(header, pipeline, options)) is not None:
                exact[index] = answer
            alone = index in exact or _animation(info, pipeline)
            groups.setdefault(("alone", index) if alone else _decoding(pipeline), []).append(index)
    for key, members in groups.items():
        held = [plans[i] for i in members]
        # Shared: the outputs kept for the next pipelines (at most one chain of steps), beside a render's peak.
        kept = 0 if len(held) == 1 else max(sum(image_bytes(stage.output) for stage in plan.stages[:-1])
                                            for plan in held)  # type: ignore[union-attr]
        with reserve(kept + max(plan.peak_bytes for plan in held)):  # type: ignore[union-attr]
            marks = {image_id: decode((assets or {})[image_id], limits).pixels
                     for image_id in dict.fromkeys(a for i in members for a in wanted[i][0].assets())}
            if key[0] == "alone":
                pipeline, options = wanted[members[0]]
                results[members[0]] = _render_alone(data, info, pipeline, limits, options, _Clock(deadline), marks,
                                                    exact.get(members[0]))
                continue
            for index, rendered in zip(members, _render_group(data, [wanted[i] for i in members], limits, deadline,
                                                               marks, header), strict=True):
                header = None  # consumed by that decode
                results[index] = rendered
    return results


def _options(pipeline: Pipeline, options: EncodeOptions) -> EncodeOptions:
    """The pipeline's own quality stands in for the configured ones."""
    if pipeline.quality:
        return dataclasses.replace(options, jpeg_quality=pipeline.quality, webp_quality=pipeline.quality)
    return options


_EXACT_STEPS = {(): (False, False), (Step("mirror"),): (True, False), (Step("grayscale"),): (False, True)}


def _exact(header: Header, pipeline: Pipeline, options: EncodeOptions) -> jpeg_exact.Exact | None:
    """A JPEG asked for as itself, mirrored or in grayscale, as a JPEG with nothing else asked of it (no EXIF
    kept, no byte budget): answered from its own coefficients when the policy allows (transforms.jpeg_exact)."""
    img, fmt, _ = header
    moves = _EXACT_STEPS.get(pipeline.steps)
    if moves is None or fmt != "JPEG" or pipeline.output_format(fmt) != "JPEG" or not pipeline.strip \
            or pipeline.max_bytes is not None:
        return None
    return jpeg_exact.choose(img, orientation(img), mirror=moves[0], gray=moves[1],
                             quality=pipeline.quality or options.jpeg_quality, policy=options.jpeg_lossless,
                             progressive=pipeline.progressive)


def _decoding(pipeline: Pipeline) -> tuple[Any, ...]:
    """How a pipeline wants its original decoded: pipelines that agree share one decode."""
    return ("decode", _shrink_target(pipeline), pipeline.steps[:1] == (Step("grayscale"),))


def _render_alone(data: bytes, info: ImageInfo, pipeline: Pipeline, limits: Limits, options: EncodeOptions,
                  clock: _Clock, marks: Mapping[str, np.ndarray], exact: jpeg_exact.Exact | None) -> Rendered:
    """What shares no decode: an animation, or an exact JPEG (decoded after all if the library refuses it)."""
    if exact is not None and (answer := jpeg_exact.render(data, exact)) is not None:
        return Rendered(answer, "JPEG", (info.width, info.height), clock.lap("exact"))
    if _animation(info, pipeline):
        return _render_animation(data, pipeline, info, limits, _options(pipeline, options), clock, marks)
    return _render_group(data, [(pipeline, options)], limits, clock.deadline, marks)[0]  # type: ignore[return-value]


def _render_group(data: bytes, wanted: Sequence[tuple[Pipeline, EncodeOptions]], limits: Limits,
                  deadline: float | None, marks: Mapping[str, np.ndarray], header: Header | None = None
                  ) -> list[Rendered | ImageError]:
    """Pipelines that decode alike: one decode, then each pipeline's steps from the longest prefix already
    done, then its encode. Only outputs a later pipeline starts from are kept (the reservation counts them);
    the rest are freed as the next step has its output (the plan counts on it)."""
    clock = _Clock(deadline)
    first = wanted[0][0]
    decoded = decode(data, limits, shrink_to=_shrink_target(first), luma=first.steps[:1] == (Step("grayscale"),),
                     header=header)
    clock.lap("decode")
    source_format, luma = decoded.info.format, decoded.pixels.ndim == 2
    done: dict[tuple[Step, ...], np.ndarray] = {(): decoded.pixels}
    del decoded
    chains = [pipeline.steps[1:] if luma and pipeline.steps[:1] == (Step("grayscale"),) else pipeline.steps
              for pipeline, _ in wanted]  # a gray source, or a JPEG's Y plane, is grayscale already
    results: list[Rendered | ImageError] = []
    exif = None
    for index, ((pipeline, options), steps) in enumerate(zip(wanted, chains, strict=True)):
        later = {chain[:n] for chain in chains[index + 1:] for n in range(len(chain) + 1)}
        start = max(n for n in range(len(steps) + 1) if steps[:n] in done)
        pixels = done[steps[:start]]
        done = {prefix: kept for prefix, kept in done.items() if prefix in later}
        laps = len(clock.laps) if index else 0  # the shared decode is counted with the first
        # A last mirror that nothing later starts from is left to the encoder: a baseline JPEG flips as it
        # takes the pixels (jpeg.compress_mirrored), cheaper than copying whole pixels first.
        deferred = start < len(steps) and steps[-1] == Step("mirror") and steps not in later
        try:
            for n in range(start, len(steps) - deferred):
                pixels = steps[n].apply(pixels, marks)
                if steps[:n + 1] in later:
                    done[steps[:n + 1]] = pixels
                clock.lap(steps[n].name)
        except PipelineError as exc:  # valid grammar, not for this image (a crop outside it): this one fails
            results.append(exc)
            continue
        fmt = pipeline.output_format(source_format, alpha=pixels.ndim == 3 and pixels.shape[2] in (2, 4))
        if not pipeline.strip and exif is None:
            exif = exif_of(data)
        output = OutputOptions(pipeline.progressive, None if pipeline.strip else exif, pipeline.max_bytes, deferred)
        size = (pixels.shape[1], pixels.shape[0])
        encoded = encode_output(pixels, fmt, _options(pipeline, options), output)
        del pixels
        results.append(Rendered(encoded, fmt, size, clock.lap("encode")[laps:]))
    return results


def _render_animation(data: bytes, pipeline: Pipeline, info: ImageInfo, limits: Limits, options: EncodeOptions,
                      clock: _Clock, marks: Mapping[str, np.ndarray]) -> Rendered:
    """Each frame decoded, stepped and kept for the encoder in turn (the plan holds room for the kept
    ones), with its duration; the loop count is the source's. The deadline is checked every frame."""
    fmt = pipeline.output_format(info.format, animated=True)
    writer = AnimationWriter(fmt, options, animation_loop(data, limits))
    size = None
    for pixels, duration in animation_frames(data, limits):
        for step in pipeline.steps:
            pixels = step.apply(pixels, marks)
        if size not in (None, pixels.shape[:2]):
            raise PipelineError("the steps gave the animation's frames different sizes (trim it as a still image)")
        size = pixels.shape[:2]
        writer.add(pixels, duration)
        clock.check()
    clock.lap("frames")
    assert size is not None
    return Rendered(writer.finish(), fmt, (size[1], size[0]), clock.lap("encode"))


class _Clock:
    """Stage timings (each lap is the time since the previous one), and the deadline between stages."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, stage: str) -> tuple[tuple[str, float], ...]:
        now = time.perf_counter()
        self.laps.append((stage, now - self.last))
        self.last = now
        self.check(stage)
        return tuple(self.laps)

    def check(self, stage: str = "a frame") -> None:
        if self.deadline is not None and time.time() > self.deadline:
            raise RenderTimeout(f"the render ran out of time after {stage}; it was stopped")


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


def grammar() -> dict[str, Any]:
    """The steps and their parameters as data: for clients that build pipelines (the web console)."""
    def describe(param: Param) -> dict[str, Any]:
        if param.kind is str and not param.choices:
            return {"type": "str", "pattern": param.pattern, "default": param.default}
        if param.choices:
            return {"type": "choice", "choices": list(param.choices), "default": param.default}
        return {"type": param.kind.__name__, "min": param.low, "max": param.high, "default": param.default}

    return {"steps": {name: {"params": {key: describe(p) for key, p in kind.params.items()},
                             "required": list(kind.required), "one_of": list(kind.one_of)}
                      for name, kind in STEPS.items()},
            "formats": list(FORMATS), "max_steps": MAX_STEPS}
