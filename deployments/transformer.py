"""The transform deployment: every decode, operation and encode runs here, never in the ingress.

Where the bytes go: this replica reads the original from GridFS itself, by id. The ingress sends
only the id and the operation name, so an original never crosses the cluster to reach a
transform; only the (usually much smaller) output comes back, and it is stored in GridFS here
as the cached variant so that later requests never reach this deployment at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray import serve

from deployments.config import Settings
from deployments.errors import ApiError
from deployments.metrics import metrics
from storage import ImageStore, StoredFile, content_id
from storage.keys import variant_key
from transforms import OPERATIONS, Pipeline, PipelineError, decode, encode, render, run


@dataclass(frozen=True)
class Variant:
    """A rendered (or cached) variant, as it travels back to the ingress: with its bytes, or (when
    larger than transform_return_max_bytes) only its stored file, for the ingress to stream."""

    stored: StoredFile
    data: bytes | None


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


@serve.deployment
class Transformer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = ImageStore(settings.mongo_url, settings.mongo_db)
        self.store.ensure_indexes()

    async def ingest(self, data: bytes) -> dict[str, Any]:
        """Validate an upload with a full decode, then store it under its content id."""
        return await asyncio.to_thread(self._ingest, data)

    async def render(self, request: VariantRequest) -> Variant:
        return await asyncio.to_thread(self._render, request)

    async def materialise(self, image_id: str, operation: str) -> dict[str, Any]:
        """Make sure the variant is stored; return its id, not its bytes (batch jobs don't need them)."""
        return await asyncio.to_thread(self._materialise, image_id, operation)

    async def self_test(self) -> bool:
        """A tiny decode -> operation -> encode, for /healthz."""
        return await asyncio.to_thread(self._self_test)

    def memory(self, reset_peak: bool = False) -> dict[str, float]:
        """This replica's RSS and peak RSS (MB), for the benchmark; reset_peak restarts the peak (Linux)."""
        if reset_peak:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status)
        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id(),
                "rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "peak_mb": int(fields["VmHWM"].split()[0]) / 1024}

    def check_health(self) -> None:
        # Serve restarts a replica that cannot reach MongoDB.
        self.store.ping()

    def _ingest(self, data: bytes) -> dict[str, Any]:
        image_id = content_id(data)
        stored = self.store.find(image_id)
        if stored is None:
            info = decode(data, self.settings.max_pixels).info  # refuses truncated, corrupt, bombs
            stored, _ = self.store.put(image_id, data, content_type=info.media_type, metadata={
                "kind": "original", "format": info.format, "width": info.width, "height": info.height,
                "uploaded_at": dt.datetime.now(dt.UTC)})
        return image_record(stored)

    def _render(self, request: VariantRequest) -> Variant:
        stored, data = self._variant(request)
        if stored.length > self.settings.transform_return_max_bytes:
            return Variant(stored, None)
        return Variant(stored, data if data is not None else self.store.read(stored))

    def _materialise(self, image_id: str, operation: str) -> dict[str, Any]:
        stored, _ = self._variant(seed_request(self.settings, image_id, operation))
        return {"variant_id": stored.key, "content_type": stored.content_type, "bytes": stored.length}

    def _variant(self, request: VariantRequest) -> tuple[StoredFile, bytes | None]:
        """The stored variant, rendering and storing it first if needed (then also its bytes)."""
        cached = self.store.find(request.key)
        if cached is not None:  # another replica, request or batch job got here first
            return cached, None
        original = self.store.find(request.image_id)
        if original is None:
            raise ApiError(404, "not_found", f"no image with id {request.image_id}")
        started = time.perf_counter()
        options = self.settings.encode_options
        if request.png_compression:
            options = dataclasses.replace(options, png_compression=request.png_compression)
        try:
            out = run(self.store.read(original), request.pipeline, max_pixels=self.settings.max_pixels,
                      options=options)
        except PipelineError as exc:  # valid grammar, but not for this image (a crop outside it)
            raise ApiError(400, "bad_pipeline", str(exc)) from None
        stored, _ = self.store.put(request.key, out.data, content_type=out.media_type, metadata={
            "kind": "variant", "source": request.image_id, "operation": request.key.split("/", 1)[1],
            "format": out.format})
        m = metrics()
        m.render.observe(time.perf_counter() - started, tags={"operation": request.operation})
        for stage, seconds in out.timings:
            m.stage.observe(seconds, tags={"stage": stage})
        return stored, out.data

    def _self_test(self) -> bool:
        sample = encode(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), "PNG", self.settings.encode_options)
        for operation in OPERATIONS:
            render(sample, operation, max_pixels=self.settings.max_pixels, options=self.settings.encode_options)
        return True
