"""The transform deployment: uploads are validated, batch items and larger originals rendered here.

Where the bytes go: this replica reads the original from GridFS itself. The ingress sends only the
pipeline and the original's file description, so an original never crosses the cluster to reach a
transform; the output is stored in GridFS here as the cached variant (later requests never reach
this deployment at all) and travels back in the reply.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

import numpy as np
import ray
from pymongo.errors import ConnectionFailure
from ray import serve

from deployments.config import Settings
from deployments.errors import domain_error
from deployments.render.allocator import keep_freed_memory
from deployments.render.service import RenderService, node_name
from deployments.render.variants import Variant, VariantRequest, image_record
from storage import FileGone, ImageStore, StoredFile, content_id
from transforms import OPERATIONS, Pipeline, encode, plan, render, validate
from transforms.placeholder import placeholder

P = ParamSpec("P")
T = TypeVar("T")


def domain_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A pymongo error crosses Ray badly (it may not unpickle): the caller gets its domain error instead
    (Unavailable, or NotFound for a file deleted while it was read)."""
    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except (ConnectionFailure, FileGone) as exc:
            raise domain_error(exc) from None
    return wrapper


@serve.deployment
class Transformer:
    def __init__(self, settings: Settings) -> None:
        keep_freed_memory()  # see deployments/allocator.py: renders run in this process
        self.settings = settings
        # No database call here: a replica must start (and stay up) while MongoDB is down. The store
        # makes its indexes before its first write.
        self.store = ImageStore(settings.mongo_url, settings.mongo_db)
        self.service = RenderService(settings, self.store, node_name("transform"))

    @domain_errors
    async def ingest(self, data: bytes, deadline: float = float("inf")) -> dict[str, Any]:
        """Validate an upload with a full decode, then store it under its content id (unless the deadline
        passed meanwhile: the client was answered 503, so nothing is stored)."""
        return await asyncio.to_thread(self._ingest, data, deadline)

    async def render(self, wanted: VariantRequest, original: StoredFile) -> Variant:
        """An original above the ingress's placement limit, rendered here (answered before it is stored)."""
        return await self.service.render(wanted, original)

    async def render_items(self, image_ids: list[str], operations: list[str], deadline: float
                           ) -> list[list[dict[str, Any]]]:
        """Batch items: every operation on each original (see RenderService.render_items). A database outage
        is a ConnectionError (it crosses Ray intact): the bridge retries the job."""
        try:
            return await asyncio.to_thread(self.service.render_items, image_ids, operations, deadline)
        except ConnectionFailure as exc:
            raise ConnectionError(f"the database is unreachable: {type(exc).__name__}") from None

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
        """Healthy while its event loop answers. MongoDB is not checked: a database outage is no reason to
        kill and restart replicas (their requests answer 503 meanwhile, and recover when it is back)."""

    def _ingest(self, data: bytes, deadline: float) -> dict[str, Any]:
        image_id = content_id(data)
        stored = self.store.find(image_id)
        if stored is None:
            limits = self.service.limits
            with self.service.gate.reserve(plan(data, Pipeline(), limits).peak_bytes, deadline):
                decoded = validate(data, limits)  # refuses truncated, corrupt, incomplete, bombs
                hint = placeholder(decoded.pixels)
                info = decoded.info
                del decoded
            if time.time() > deadline:  # the client has its 503: the upload must not appear later
                raise self.service.timed_out()
            stored, _ = self.store.put(image_id, data, content_type=info.media_type, metadata={
                "kind": "original", "format": info.format, "width": info.width, "height": info.height,
                "blurhash": hint.blurhash, "dominant_color": hint.dominant_color, "frames": info.frames,
                "uploaded_at": dt.datetime.now(dt.UTC)}, etag=image_id)  # hashed once: the id is its SHA-256
        return image_record(stored)

    def _self_test(self) -> bool:
        sample = encode(np.arange(48, dtype=np.uint8).reshape(4, 4, 3), "PNG", self.settings.encode_options)
        for operation in OPERATIONS:
            render(sample, operation, limits=self.service.limits, options=self.settings.encode_options)
        return True
