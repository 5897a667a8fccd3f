"""The cached path's fast lane: a seed variant in this ingress replica's memory is answered before
FastAPI routes the request (no route matching, parameter parsing, guard or handler).

bench/cached_side_by_side.py measured the full FastAPI path for a memory hit at about half the rate of
a constant FastAPI answer on the same Serve instance (its --floor row): the framework, not the cache,
was the cost. Only the plainest request takes this lane: GET /{image_id}/{jpeg|png|grayscale|mirror}
with no query and no If-None-Match, on a deployment without signed URLs or CORS (both need the full
path). Everything else, a miss included, goes on to the app unchanged. The request is still counted by
RequestMetrics (outside this), under its route's name.
"""

from __future__ import annotations

from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.http.cache_headers import cache_headers
from deployments.metrics import metrics
from deployments.render.memory_cache import Entry, MemoryCache
from storage.keys import is_image_id, variant_key
from transforms import OPERATIONS

SEED_ROUTE = "/{image_id}/{operation}"


class MemoryHits:
    def __init__(self, app: ASGIApp, memory: MemoryCache, spelling: str, routes: list[BaseRoute]) -> None:
        """spelling: the configured encode options as a seed variant's key holds them."""
        self.app = app
        self.memory = memory
        self.spelling = spelling
        self.route = next(r for r in routes if getattr(r, "path", None) == SEED_ROUTE
                          and "GET" in getattr(r, "methods", ()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self._hit(scope) if scope["type"] == "http" and scope["method"] == "GET" else None
        if entry is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # the metric's label, as if FastAPI had routed it
        metrics().cache.inc(tags={"result": "hit"})
        headers = {"Content-Type": entry.media_type, "Content-Length": str(len(entry.data)),
                   **cache_headers(entry.etag, hit=True)}
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()]})
        await send({"type": "http.response.body", "body": entry.data})

    def _hit(self, scope: Scope) -> Entry | None:
        if scope["query_string"] or any(name == b"if-none-match" for name, _ in scope["headers"]):
            return None
        parts = scope["path"].split("/")
        if len(parts) != 3 or parts[2] not in OPERATIONS or not is_image_id(parts[1]):
            return None
        return self.memory.get(variant_key(parts[1], parts[2], self.spelling))
