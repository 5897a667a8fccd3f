"""Variants: what to render and the key it is stored under (deployments.render.service renders them)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from deployments.config import Settings
from storage import StoredFile
from storage.keys import variant_key
from transforms import OPERATIONS, EncodeOptions, Pipeline, PipelineError, parse
from transforms.pipeline import Preset


@dataclass(frozen=True)
class Variant:
    """A rendered variant, as it travels back to the ingress: answered before it is stored, if it is."""

    stored: StoredFile  # the file it is, or will be, stored as
    data: bytes
    rendered_by: str  # the process and node that rendered it ("ingress@<node>"): sent as X-Rendered-By
    kept: bool = True  # stored or being stored; False: not (yet) asked for often enough (render.storing)


@functools.cache
def _renderer_version() -> str:
    """What a variant's bytes depend on beside its key: this code and the codecs' versions."""
    import imagecodecs
    import PIL
    import simplejpeg

    return f"prog-image {version('prog-image')}; Pillow {PIL.__version__}; imagecodecs {imagecodecs.__version__}; " \
           f"simplejpeg {simplejpeg.__version__}; jpegtran-cffi-wheels {version('jpegtran-cffi-wheels')}"


def variant_etag(key: str) -> str:
    """A variant's ETag, the same in every process that renders it: its key (which holds everything that
    changes the output) and the renderer's version, digested. Renders are deterministic, so two replicas
    rendering the same variant at once answer one ETag, stored or not."""
    return hashlib.blake2b(f"{key}\n{_renderer_version()}".encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class VariantRequest:
    """What to render and the key it is stored under: built by the ingress or the bridge. The key
    holds everything that changes the output's bytes: the pipeline and the encode options."""

    image_id: str
    key: str
    pipeline: Pipeline
    operation: str  # a named operation, "process" or "auto": the metrics label
    options: EncodeOptions
    deadline: float = float("inf")  # time.time() by which it is answered, or stopped and not stored

    def until(self, deadline: float) -> VariantRequest:
        return dataclasses.replace(self, deadline=deadline)


def named_request(settings: Settings, image_id: str, operation: str,
                 png_compression: str | None = None) -> VariantRequest:
    """A named operation (transforms.operations), with the configured encode options (PNG compression
    overridable)."""
    options = settings.encode_options
    if png_compression:
        options = dataclasses.replace(options, png_compression=png_compression)
    return VariantRequest(image_id, variant_key(image_id, operation, options.spelling()), OPERATIONS[operation],
                          operation, options)


def pipeline_request(settings: Settings, image_id: str, pipeline: Pipeline, operation: str = "process"
                     ) -> VariantRequest:
    """A pipeline; its own quality, when given, stands in for the configured ones."""
    options = settings.encode_options
    configured = options.spelling(skip=("jpeg_quality", "webp_quality") if pipeline.quality else ())
    query = "&".join(part for part in (pipeline.canonical(), configured) if part)
    return VariantRequest(image_id, variant_key(image_id, "process", query), pipeline, operation, options)


def job_request(settings: Settings, image_id: str, operation: str) -> VariantRequest:
    """A batch job's operation: a named operation, or a pipeline as the query of GET /{id}/process
    (the same variant, under the same key, as that URL's)."""
    if operation in OPERATIONS:
        return named_request(settings, image_id, operation)
    return pipeline_request(settings, image_id, pipeline_of(operation))


def job_result_path(image_id: str, operation: str) -> str:
    """Where a job's result is served over HTTP."""
    return f"/{image_id}/{operation}" if operation in OPERATIONS else f"/{image_id}/process?{operation}"


def image_record(stored: StoredFile) -> dict[str, Any]:
    """The public description of an original (the upload answer)."""
    meta = stored.metadata
    record = {"image_id": stored.key, "format": meta["format"], "width": meta["width"],
              "height": meta["height"], "bytes": stored.length}
    if meta.get("frames", 1) > 1:
        record["frames"] = meta["frames"]
    for hint in ("blurhash", "dominant_color"):  # placeholders (absent on originals stored before them)
        if hint in meta:
            record[hint] = meta[hint]
    return record


OUTPUT_PARAMS = ("progressive", "strip", "max_bytes")  # a pipeline's output options beside format and quality


def pipeline_of(operation: str, presets: Mapping[str, Preset] | None = None) -> Pipeline:
    """A job's pipeline operation (the query of GET /{id}/process, presets allowed) parsed; PipelineError if it
    is not one."""
    params = dict(urllib.parse.parse_qsl(operation, keep_blank_values=True))
    unknown = set(params) - {"ops", "format", "quality", *OUTPUT_PARAMS}
    if "ops" not in params or unknown:
        raise PipelineError(f"{operation!r} is neither one of {', '.join(OPERATIONS)} nor ops=...[&format=...]")
    return parse(params.pop("ops"), params.pop("format", None), params.pop("quality", None), presets, **params)
