"""Variants: what to render, and rendering one into GridFS once. Used by the transform deployment,
and by the ingress for small originals (no Ray here: a plain class over the store)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from deployments.config import Settings
from deployments.errors import ApiError
from deployments.metrics import metrics
from storage import ImageStore, StoredFile
from storage.keys import variant_key
from transforms import OPERATIONS, Pipeline, PipelineError, run


@dataclass(frozen=True)
class Variant:
    """A rendered (or cached) variant, as it travels back to the ingress: with its bytes, or (when
    larger than transform_return_max_bytes) only its stored file, for the ingress to stream."""

    stored: StoredFile
    data: bytes | None
    rendered_by: str  # "ingress" or "transform": sent as X-Rendered-By


@dataclass(frozen=True)
class VariantRequest:
    """What to render and the key it is stored under: built by the ingress or the bridge."""

    image_id: str
    key: str
    pipeline: Pipeline
    operation: str  # a seed operation's name, "process" or "auto": the metrics label
    png_compression: str | None = None


def seed_request(settings: Settings, image_id: str, operation: str,
                 png_compression: str | None = None) -> VariantRequest:
    """One of the seed's named operations. Only a non-default compression is part of the key."""
    custom = png_compression and png_compression != settings.png_compression
    key = variant_key(image_id, operation, f"compression={png_compression}" if custom else "")
    return VariantRequest(image_id, key, OPERATIONS[operation], operation, png_compression)


def pipeline_request(image_id: str, pipeline: Pipeline, operation: str = "process") -> VariantRequest:
    return VariantRequest(image_id, variant_key(image_id, "process", pipeline.canonical()), pipeline, operation)


def image_record(stored: StoredFile) -> dict[str, Any]:
    """The public description of an original (the upload answer)."""
    meta = stored.metadata
    return {"image_id": stored.key, "format": meta["format"], "width": meta["width"],
            "height": meta["height"], "bytes": stored.length}


class Renderer:
    """Finds or renders variants: every render reads the original from GridFS and stores its output there."""

    def __init__(self, settings: Settings, store: ImageStore) -> None:
        self.settings = settings
        self.store = store

    def render(self, request: VariantRequest, return_max_bytes: int | None, rendered_by: str,
               original: StoredFile | None = None) -> Variant:
        """The variant, with its bytes when they are at most return_max_bytes (None: always)."""
        stored, data = self.variant(request, original)
        if return_max_bytes is not None and stored.length > return_max_bytes:
            return Variant(stored, None, rendered_by)
        return Variant(stored, data if data is not None else self.store.read(stored), rendered_by)

    def original(self, image_id: str) -> StoredFile:
        """The stored original, or a 404."""
        stored = self.store.find(image_id)
        if stored is None:
            raise ApiError(404, "not_found", f"no image with id {image_id}")
        return stored

    def variant(self, request: VariantRequest, original: StoredFile | None = None) -> tuple[StoredFile, bytes | None]:
        """The stored variant, rendering and storing it first if needed (then also its bytes).
        A caller that passes the original has just looked for the variant itself."""
        if original is None:
            cached = self.store.find(request.key)
            if cached is not None:  # another replica, request or batch job got here first
                return cached, None
            original = self.original(request.image_id)
        started = time.perf_counter()
        options = self.settings.encode_options
        if request.png_compression:
            options = dataclasses.replace(options, png_compression=request.png_compression)
        try:
            out = run(self.store.read(original), request.pipeline, max_pixels=self.settings.max_pixels,
                      options=options)
        except PipelineError as exc:  # valid grammar, but not for this image (a crop outside it)
            raise ApiError(400, "bad_pipeline", str(exc)) from None
        stored, _ = self.store.put(request.key, out.data, content_type=out.media_type, cache=True, metadata={
            "kind": "variant", "source": request.image_id, "operation": request.key.split("/", 1)[1],
            "format": out.format})
        m = metrics()
        m.render.observe(time.perf_counter() - started, tags={"operation": request.operation})
        for stage, seconds in out.timings:
            m.stage.observe(seconds, tags={"stage": stage})
        return stored, out.data
