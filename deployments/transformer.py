"""The transform deployment: uploads are validated, batch jobs and larger originals rendered here.

Where the bytes go: this replica reads the original from GridFS itself, by id. The ingress sends
only the id and the pipeline, so an original never crosses the cluster to reach a transform; the
output is stored in GridFS here as the cached variant (so later requests never reach this
deployment at all) and comes back in the reply only when it is small enough
(transform_return_max_bytes); otherwise the ingress streams it from GridFS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from typing import Any

import numpy as np
import ray
from ray import serve

from deployments.allocator import keep_freed_memory
from deployments.config import Settings
from deployments.variants import Renderer, Variant, VariantRequest, image_record, seed_request
from storage import ImageStore, StoredFile, content_id
from transforms import OPERATIONS, decode, encode, render


@serve.deployment
class Transformer:
    def __init__(self, settings: Settings) -> None:
        keep_freed_memory()  # see deployments/allocator.py: renders run in this process
        self.settings = settings
        self.store = ImageStore(settings.mongo_url, settings.mongo_db)
        self.store.ensure_indexes()
        self.renderer = Renderer(settings, self.store)

    async def ingest(self, data: bytes) -> dict[str, Any]:
        """Validate an upload with a full decode, then store it under its content id."""
        return await asyncio.to_thread(self._ingest, data)

    async def render(self, request: VariantRequest) -> Variant:
        """The variant; a new one comes back with its bytes before it is stored (unless too large to return:
        then stored first, for the ingress to stream it)."""
        stored, data, drawn = await asyncio.to_thread(self._render, request)
        limit = self.settings.transform_return_max_bytes
        if stored.length > limit:
            if drawn:
                stored = await asyncio.to_thread(self.renderer.keep, stored, data)
            return Variant(stored, None, "transform")
        if drawn:
            self.renderer.keep_later(stored, data)
        return Variant(stored, data, "transform")

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

    def _render(self, request: VariantRequest) -> tuple[StoredFile, bytes | None, bool]:
        """(file, bytes, drawn): the stored variant with its bytes when small enough to return, or a new
        one drawn now and not stored yet."""
        cached, original = self.renderer.find(request)
        if cached is None:
            return *self.renderer.draw(request, original), True
        return cached, self.store.read_small(cached, self.settings.transform_return_max_bytes), False

    def _materialise(self, image_id: str, operation: str) -> dict[str, Any]:
        stored, _ = self.renderer.variant(seed_request(self.settings, image_id, operation))
        return {"variant_id": stored.key, "content_type": stored.content_type, "bytes": stored.length}

    def _self_test(self) -> bool:
        sample = encode(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), "PNG", self.settings.encode_options)
        for operation in OPERATIONS:
            render(sample, operation, max_pixels=self.settings.max_pixels, options=self.settings.encode_options)
        return True
