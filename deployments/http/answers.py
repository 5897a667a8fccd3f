"""A variant's answer, wherever it comes from, in this order: this replica's memory, a render of it in flight
here, the stored file (one query finds it and the original together), else rendered by the render service.

The answer is plain data (Reply), sent by the image lane as raw ASGI messages or by a FastAPI route as a
Response: both answer the same bytes and headers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from deployments.http.cache_headers import cache_headers, etag_matches
from deployments.metrics import metrics
from deployments.render.memory_cache import Entry, MemoryCache
from deployments.render.service import RenderService
from deployments.render.variants import Variant, VariantRequest
from storage import ImageStore, StoredFile

log = logging.getLogger("ray.serve")
_DELETIONS_POLL_S = 0.5  # how soon another replica's DELETE empties this one's memory of that image
_DELETIONS_OVERLAP = dt.timedelta(seconds=5)  # re-read a little of the past: clocks of nodes differ
_INLINE_MAX = 4 * 1024 * 1024  # stored variants up to this size are read in one go; larger ones stream


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: StoredFile | None = None  # a large stored variant: its chunks are the body


class VariantAnswers:
    """One ingress replica's variants: its memory of them, its render service, and the store."""

    def __init__(self, store: ImageStore, service: RenderService, memory: MemoryCache) -> None:
        self.store = store
        self.service = service
        self.memory = memory
        self.deletions_watch: asyncio.Task[None] | None = None

    async def answer(self, wanted: VariantRequest, if_none_match: str, head: bool) -> Reply:
        if self.deletions_watch is None or self.deletions_watch.done():
            self.deletions_watch = asyncio.ensure_future(self._watch_deletions())
        remembered = self.from_memory(wanted.key, if_none_match, head)
        if remembered is not None:
            return remembered
        pending = self.service.pending(wanted.key)
        if pending is not None:  # being rendered by this replica: share it, no database round trip
            metrics().cache.inc(tags={"result": "miss"})
            return self._rendered(wanted, await asyncio.shield(pending), if_none_match, head)
        wanted = wanted.until(self.service.deadline())
        cached, body, original, data = await asyncio.to_thread(self.service.lookup, wanted, _INLINE_MAX)
        metrics().cache.inc(tags={"result": "miss" if cached is None else "hit"})
        if cached is None:
            return self._rendered(wanted, await self.service.render(wanted, original, data), if_none_match, head)
        if body is None:  # large: streamed from GridFS, never held whole
            reply = _reply(cached.length, b"", cached.content_type, cached.etag, if_none_match, True, hit=True)
            return reply if head or reply.status == 304 else Reply(200, reply.headers, stream=cached)
        self.memory.put(wanted.key, body, cached.content_type, cached.etag)
        return _reply(len(body), body, cached.content_type, cached.etag, if_none_match, head, hit=True)

    def from_memory(self, key: str, if_none_match: str, head: bool) -> Reply | None:
        """The answer from this replica's memory: no database round trip, no thread hop."""
        remembered = self.memory.get(key)
        if remembered is None:
            return None
        metrics().cache.inc(tags={"result": "hit"})
        if remembered.unstored is not None:
            self._used(key, remembered)
        return _reply(len(remembered.data), remembered.data, remembered.media_type, remembered.etag, if_none_match,
                      head, hit=True)

    def _rendered(self, wanted: VariantRequest, rendered: Variant, if_none_match: str, head: bool) -> Reply:
        stored = rendered.stored
        self.memory.put(wanted.key, rendered.data, stored.content_type, stored.etag,
                        None if rendered.kept else stored)
        reply = _reply(len(rendered.data), rendered.data, stored.content_type, stored.etag, if_none_match, head,
                       hit=False)
        reply.headers["X-Rendered-By"] = rendered.rendered_by
        return reply

    def _used(self, key: str, entry: Entry) -> None:
        """A use of a variant held in memory, not stored: stored when it is asked for often enough."""
        if self.service.policy.used(key) and entry.unstored is not None:
            self.memory.put(key, entry.data, entry.media_type, entry.etag)  # stored from now on
            self.service.spawn(self.service.store_variant(entry.unstored, entry.data))

    def forget(self, image_id: str) -> None:
        """A deleted image leaves this replica's memory: its original and its variants."""
        self.memory.drop_image(image_id)
        self.service.renderer.drop(image_id)

    async def _watch_deletions(self) -> None:
        """Drop from memory what any replica deleted: polls the store's deletion log."""
        since = dt.datetime.now(dt.UTC) - _DELETIONS_OVERLAP
        while True:
            await asyncio.sleep(_DELETIONS_POLL_S)
            checked = dt.datetime.now(dt.UTC)
            try:
                for image_id in await asyncio.to_thread(self.store.deleted_since, since):
                    self.forget(image_id)
                since = checked - _DELETIONS_OVERLAP
            except Exception as exc:  # MongoDB away: nothing can be deleted meanwhile either
                log.debug("deletion log unreadable: %r", exc)


def _reply(length: int, data: bytes, media_type: str, etag: str, if_none_match: str, head: bool, hit: bool
           ) -> Reply:
    """An image answer with its caching headers: 304 when the client has it, headers only for HEAD."""
    headers = cache_headers(etag, hit=hit)
    if if_none_match and etag_matches(if_none_match, headers["ETag"]):
        return Reply(304, headers)
    headers["Content-Type"] = media_type
    headers["Content-Length"] = str(length)
    return Reply(200, headers, b"" if head else data)
