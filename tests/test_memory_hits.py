"""The cached path's fast lane (deployments.http.image_lane): plain GETs of a seed variant in memory are
answered before FastAPI; every other request reaches the app unchanged."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import Response

from deployments.http.image_lane import MemoryHits
from deployments.render.memory_cache import MemoryCache

IMAGE_ID = "ab" * 32
SPELLING = "q=80"


def lane() -> tuple[MemoryHits, MemoryCache, list[str]]:
    app = FastAPI()
    reached: list[str] = []

    @app.get("/{image_id}/{operation}")
    async def variant(image_id: str, operation: str) -> Response:
        reached.append(f"{image_id}/{operation}")
        return Response(b"from the app", media_type="image/png")

    memory = MemoryCache(1 << 20, 60)
    memory.put(f"{IMAGE_ID}/grayscale?{SPELLING}", b"remembered", "image/jpeg", "etag1")
    return MemoryHits(app, memory, SPELLING, app.routes), memory, reached


def get(app: Any, path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None,
        method: str = "GET") -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query,
             "headers": headers or [], "http_version": "1.1", "scheme": "http", "server": ("test", 80),
             "client": ("test", 1), "root_path": "", "app": app}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start, body, scope


def test_a_plain_get_of_a_remembered_seed_variant_is_answered_from_memory():
    hits, _, reached = lane()
    start, body, scope = get(hits, f"/{IMAGE_ID}/grayscale")
    headers = dict(start["headers"])
    assert (start["status"], body, reached) == (200, b"remembered", [])
    assert headers[b"content-type"] == b"image/jpeg" and headers[b"content-length"] == b"10"
    assert headers[b"etag"] == b'"etag1"' and headers[b"x-cache"] == b"HIT"
    assert b"immutable" in headers[b"cache-control"]
    assert scope["route"].path == "/{image_id}/{operation}"  # what RequestMetrics labels it with


@pytest.mark.parametrize(("path", "query", "headers", "method"), [
    (f"/{IMAGE_ID}/png", b"", [], "GET"),  # not in memory
    (f"/{IMAGE_ID}/grayscale", b"compression=small", [], "GET"),  # a query: the full path parses it
    (f"/{IMAGE_ID}/grayscale", b"", [(b"if-none-match", b'"etag1"')], "GET"),  # conditional: 304 there
    (f"/{IMAGE_ID}/grayscale", b"", [], "HEAD"),
    (f"/{IMAGE_ID.upper()}/grayscale", b"", [], "GET"),  # not an id
    (f"/{IMAGE_ID}/grayscale/x", b"", [], "GET"),
])
def test_everything_else_reaches_the_app(path, query, headers, method):
    hits, _, reached = lane()
    start, body, _ = get(hits, path, query, headers, method)
    assert reached or start["status"] in (404, 405), (path, start["status"])
    assert body != b"remembered"


def test_a_forgotten_image_is_no_longer_a_hit():
    hits, memory, reached = lane()
    memory.drop_image(IMAGE_ID)
    assert get(hits, f"/{IMAGE_ID}/grayscale")[1] == b"from the app" and reached
