"""Variants: what to render, and rendering one into GridFS once. Used by the transform deployment,
and by the ingress for small originals (no Ray here: a plain class over the store)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any

from deployments.config import Settings
from deployments.errors import RETRY_AFTER, ApiError, file_gone
from deployments.job_messages import pipeline_of
from deployments.memory_gate import MemoryGate
from deployments.metrics import metrics
from storage import FileGone, ImageStore, StoredFile
from storage.keys import variant_key
from transforms import OPERATIONS, EncodeOptions, Pipeline, PipelineError, RenderTimeout, run

log = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class Variant:
    """A rendered (or cached) variant, as it travels back to the ingress: with its bytes, or (when
    larger than transform_return_max_bytes) only its stored file, for the ingress to stream. A
    variant with bytes may not be stored yet: it is answered first and stored just after."""

    stored: StoredFile
    data: bytes | None
    rendered_by: str  # "ingress" or "transform": sent as X-Rendered-By


@dataclass(frozen=True)
class VariantRequest:
    """What to render and the key it is stored under: built by the ingress or the bridge. The key
    holds everything that changes the output's bytes: the pipeline and the encode options."""

    image_id: str
    key: str
    pipeline: Pipeline
    operation: str  # a seed operation's name, "process" or "auto": the metrics label
    options: EncodeOptions
    deadline: float = float("inf")  # time.time() by which it is answered, or stopped and not stored

    def until(self, deadline: float) -> VariantRequest:
        return dataclasses.replace(self, deadline=deadline)


def seed_request(settings: Settings, image_id: str, operation: str,
                 png_compression: str | None = None) -> VariantRequest:
    """One of the seed's named operations, with the configured encode options (PNG compression overridable)."""
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
    """A batch job's operation: a seed operation's name, or a pipeline as the query of GET /{id}/process
    (the same variant, under the same key, as that URL's)."""
    if operation in OPERATIONS:
        return seed_request(settings, image_id, operation)
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


def _original_or_404(stored: StoredFile | None, image_id: str) -> StoredFile:
    if stored is None:
        raise ApiError(404, "not_found", f"no image with id {image_id}")
    return stored


class Renderer:
    """Finds or renders variants: a render reads the original from GridFS, and its output is stored
    there (by the caller, once it has answered, or at once by variant())."""

    def __init__(self, settings: Settings, store: ImageStore) -> None:
        self.settings = settings
        self.store = store
        self.limits = settings.limits
        self.gate = MemoryGate(self.limits.memory_bytes)
        self._storing: set[asyncio.Task[StoredFile]] = set()  # referenced until done (asyncio keeps weak refs)

    def original(self, image_id: str) -> StoredFile:
        """The stored original, or a 404."""
        return _original_or_404(self.store.find(image_id), image_id)

    def find(self, request: VariantRequest) -> tuple[StoredFile | None, StoredFile]:
        """(the stored variant or None, the original), in one round trip; a 404 without the original."""
        found = self.store.find_many([request.key, request.image_id])
        return found.get(request.key), _original_or_404(found.get(request.image_id), request.image_id)

    def draw(self, request: VariantRequest, original: StoredFile) -> tuple[StoredFile, bytes]:
        """Render the variant: the file it will be stored as (see keep) and its bytes. The plan is checked
        and its memory reserved before any pixel work; past the request's deadline the render stops."""
        started = time.perf_counter()
        try:
            data = self.store.read(original)
        except FileGone as exc:  # deleted since it was looked up
            raise file_gone(exc) from None
        assets = self._assets(request.pipeline)
        try:
            out = run(data, request.pipeline, limits=self.limits, options=request.options, deadline=request.deadline,
                      reserve=lambda needs: self.gate.reserve(needs, request.deadline), assets=assets)
        except PipelineError as exc:  # valid grammar, but not for this image (a crop outside it)
            raise ApiError(400, "bad_pipeline", str(exc)) from None
        except RenderTimeout:
            raise self.timed_out() from None
        width, height = out.size or (original.metadata["width"], original.metadata["height"])
        stored = self.store.describe(request.key, out.data, content_type=out.media_type, metadata={
            "kind": "variant", "source": request.image_id, "operation": request.key.split("/", 1)[1],
            "format": out.format, "width": width, "height": height})
        m = metrics()
        m.render.observe(time.perf_counter() - started, tags={"operation": request.operation})
        for stage, seconds in out.timings:
            m.stage.observe(seconds, tags={"stage": stage})
        return stored, out.data

    def _assets(self, pipeline: Pipeline) -> dict[str, bytes]:
        """The other stored images the pipeline places (watermarks), by id; a 400 for one that is gone."""
        ids = pipeline.assets()
        found = self.store.find_many(list(ids)) if ids else {}
        for image_id in ids:
            if image_id not in found:
                raise ApiError(400, "bad_pipeline", f"watermark: no image {image_id}")
        try:
            return {image_id: self.store.read(found[image_id]) for image_id in ids}
        except FileGone:  # deleted since it was looked up
            raise ApiError(400, "bad_pipeline", "watermark: the image was deleted") from None

    def keep(self, stored: StoredFile, data: bytes) -> StoredFile:
        """Store a drawn variant (unless another render stored it first: then that one). If its original
        was deleted while it was rendered or waited to be stored, it is removed again: no orphans (a
        DELETE removes the original before it lists the variants, so one of the two sees the other)."""
        kept = self.store.write(stored, data, cache=True)[0]
        if self.store.find(stored.metadata["source"]) is None:
            self.store.delete(kept.key)
        return kept

    def keep_later(self, stored: StoredFile, data: bytes) -> asyncio.Task[StoredFile]:
        """Store a drawn variant in a thread, after its answer has gone (a store is MongoDB latency the
        client need not wait for). A failure is only logged: the variant is rendered again when next asked."""
        task = asyncio.get_running_loop().create_task(asyncio.to_thread(self.keep, stored, data))
        self._storing.add(task)
        task.add_done_callback(self._stored)
        return task

    def _stored(self, task: asyncio.Task[StoredFile]) -> None:
        self._storing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("storing a rendered variant failed (it will be rendered again): %r", task.exception())

    def variant(self, request: VariantRequest) -> tuple[StoredFile, bytes | None]:
        """The stored variant, rendering and storing it first if needed (then also its bytes)."""
        cached, original = self.find(request)
        if cached is not None:  # another replica, request or batch job got here first
            return cached, None
        stored, data = self.draw(request, original)
        if time.time() > request.deadline:  # answered 503 already: nothing of it is stored
            raise self.timed_out()
        return self.keep(stored, data), data

    def timed_out(self) -> ApiError:
        return ApiError(503, "timeout", f"processing took longer than {self.settings.request_timeout_s:g} s; it was "
                        "stopped and nothing of it is stored", RETRY_AFTER)
