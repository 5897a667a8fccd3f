"""Which rendered variants are stored in GridFS, and how: a variant is a cache (it can always be rendered
again from its original), so it is written only once it has been asked for `min_uses` times in this
process (nginx's proxy_cache_min_uses), off the response path, in bulk with the others drawn meanwhile.

Why not every variant at its first request: the write was the largest part of the request path's CPU
(bench/request_budget.py: MongoDB's share of an uncached 1 MP JPEG, and up to 15 ms for a 2 MB PNG),
paid for every one-off variant. A variant asked for again is stored at that second request; batch
results are always stored (deployments.render.batch_items).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict

from storage import ImageStore, StoredFile

log = logging.getLogger("ray.serve")
_USES_KEPT = 20_000  # keys whose uses are counted (least recently asked for forgotten first)


class StorePolicy:
    """Counts the uses of variants not stored yet, by key."""

    def __init__(self, min_uses: int) -> None:
        self.min_uses = min_uses
        self.uses: OrderedDict[str, int] = OrderedDict()
        self.lock = threading.Lock()

    def used(self, key: str) -> bool:
        """Count one use; True when the variant is to be stored now (the use that reaches min_uses)."""
        if self.min_uses <= 1:
            return True
        with self.lock:
            count = self.uses.pop(key, 0) + 1
            if count >= self.min_uses:
                return True
            self.uses[key] = count
            if len(self.uses) > _USES_KEPT:
                self.uses.popitem(last=False)
            return False


class StoreQueue:
    """Drawn variants waiting for their write: those queued while a write runs go in the next one, as one
    bulk write and one orphan check (under load, a fraction of a round trip each)."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.queued: list[tuple[StoredFile, bytes, asyncio.Future[None]]] = []
        self.writing: asyncio.Task[None] | None = None

    async def put(self, stored: StoredFile, data: bytes) -> None:
        """Store it (unless another render stored the key first); returns once it is written."""
        written = asyncio.get_running_loop().create_future()
        self.queued.append((stored, data, written))
        if self.writing is None or self.writing.done():
            self.writing = asyncio.ensure_future(self._write_queued())
        await written

    async def _write_queued(self) -> None:
        while self.queued:
            batch, self.queued = self.queued, []
            try:
                await asyncio.to_thread(keep, self.store, [(stored, data) for stored, data, _ in batch])
            except Exception as exc:
                for *_, written in batch:
                    written.set_exception(exc)
            else:
                for *_, written in batch:
                    written.set_result(None)


def keep(store: ImageStore, drawn: list[tuple[StoredFile, bytes]]) -> list[StoredFile]:
    """Write drawn variants (each unless its key exists: then that one), then remove again those whose
    original was deleted meanwhile."""
    return drop_orphans(store, [stored for stored, _ in store.write_many(drawn, cache=True)])


def drop_orphans(store: ImageStore, kept: list[StoredFile]) -> list[StoredFile]:
    """Stored variants whose original was deleted while they were rendered are removed again: no orphans
    (a DELETE removes the original before it lists the variants, so one of the two sees the other)."""
    sources = {stored.metadata["source"] for stored in kept}
    gone = sources - set(store.find_many(list(sources))) if sources else set()
    for stored in kept:
        if stored.metadata["source"] in gone:
            store.delete(stored.key)
    return kept
