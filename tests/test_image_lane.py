"""The image lane (deployments.http.image_lane) in-process, on the real render service over an in-memory store:
it answers image URLs as the FastAPI routes do, byte for byte; it leaves every other request to FastAPI; and a
variant is stored from its second request (deployments.render.storing), under one ETag wherever it renders."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from deployments.config import Settings
from deployments.http.answers import VariantAnswers
from deployments.http.context import Context
from deployments.http.ingress import asgi_app, create_app
from deployments.presets import PresetBook
from deployments.render.memory_cache import MemoryCache
from deployments.render.service import RenderService
from deployments.render.storing import StorePolicy
from deployments.render.variants import named_request
from storage import content_id
from tests.images import encoded, photo, pixels_of
from tests.memory_store import MemoryStore

SETTINGS = Settings(amqp_url="", presets="small=resize:w=20&format=png")
PICTURE = photo(64, 48, seed=7)
ORIGINAL = encoded(PICTURE, "JPEG", quality=90)
IMAGE_ID = content_id(ORIGINAL)


def replica(settings: Settings = SETTINGS, store: MemoryStore | None = None) -> tuple[Any, Any, MemoryStore]:
    """(the replica's ASGI app, its FastAPI app alone, its store) with ORIGINAL stored."""
    if store is None:
        store = MemoryStore()
        store.put(IMAGE_ID, ORIGINAL, content_type="image/jpeg", metadata={
            "kind": "original", "format": "JPEG", "width": 64, "height": 48})
    service = RenderService(settings, store, "test", originals=MemoryCache(1 << 20, 60))
    answers = VariantAnswers(store, service, MemoryCache(1 << 20, 60))
    ctx = Context(settings, store, None, PresetBook(settings, SimpleNamespace(all=dict)), answers,  # type: ignore
                  None, None)  # type: ignore[arg-type]
    return asgi_app(settings, ctx), create_app(settings, ctx), store


async def call(app: Any, path: str, query: str = "", headers: dict[str, str] | None = None,
               method: str = "GET") -> tuple[int, dict[str, str], bytes, dict[str, Any]]:
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "headers": [(k.lower().encode(), v.encode()) for k, v in
                                                          (headers or {}).items()],
             "http_version": "1.1", "scheme": "http", "server": ("test", 80), "client": ("test", 1),
             "root_path": ""}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, body, scope


async def settled() -> None:
    """Let the stores that follow an answer finish."""
    for _ in range(100):
        await asyncio.sleep(0.01)


URLS = [  # (path, query, headers, method)
    (f"/{IMAGE_ID}/jpeg", "", {}, "GET"),
    (f"/{IMAGE_ID}/png", "compression=small", {}, "GET"),
    (f"/{IMAGE_ID}/grayscale", "", {}, "GET"),
    (f"/{IMAGE_ID}/mirror", "", {}, "HEAD"),
    (f"/{IMAGE_ID}/process", "ops=mirror,resize:w=32&format=webp&quality=70", {}, "GET"),
    (f"/{IMAGE_ID}/process", "ops=resize:w=30&format=jpeg&progressive=1&strip=1", {}, "GET"),
    (f"/{IMAGE_ID}/auto", "", {"Accept": "image/webp,*/*"}, "GET"),
    (f"/{IMAGE_ID}/preset/small", "", {}, "GET"),
    (f"/{IMAGE_ID}/png", "compression=tiny", {}, "GET"),  # 400 bad_parameter
    (f"/{IMAGE_ID}/process", "ops=sepia", {}, "GET"),  # 400 bad_pipeline
    (f"/{IMAGE_ID}/process", "ops=crop:x=0:y=0:w=900:h=10", {}, "GET"),  # 400: not inside the image
    (f"/{IMAGE_ID}/preset/nothing", "", {}, "GET"),  # 400: no such preset
    (f"/{'0' * 64}/mirror", "", {}, "GET"),  # 404 not_found
]


def test_the_lane_answers_as_the_fastapi_routes_do():
    async def scenario() -> None:
        lane, _, _ = replica()
        _, fastapi, _ = replica()
        for path, query, headers, method in URLS:
            ours, theirs = await call(lane, path, query, headers, method), await call(fastapi, path, query, headers,
                                                                                       method)
            assert ours[0] == theirs[0] and ours[2] == theirs[2], (path, query, ours[0], theirs[0], ours[2][:200])
            assert {k: v for k, v in ours[1].items() if k != "content-length" or method != "HEAD"} == \
                {k: v for k, v in theirs[1].items() if k != "content-length" or method != "HEAD"}, (path, query)
            assert ours[3].get("route") is not None, path  # labelled for RequestMetrics as FastAPI labels it
            assert ours[3]["route"].path == theirs[3]["route"].path, path
        status, headers, body, _ = await call(lane, f"/{IMAGE_ID}/mirror")
        assert status == 200 and headers["content-type"] == "image/jpeg"
        assert np.abs(pixels_of(body).astype(int) - pixels_of(ORIGINAL)[:, ::-1]).mean() < 3  # pixels, not a status
        etag = headers["etag"]
        assert (await call(lane, f"/{IMAGE_ID}/mirror", headers={"If-None-Match": etag}))[0] == 304
        assert (await call(lane, f"/{IMAGE_ID}/auto"))[1]["vary"] == "Accept"
        error = await call(lane, f"/{IMAGE_ID}/process", "ops=sepia")
        assert error[1]["content-type"] == "application/json" and b'"code":"bad_pipeline"' in error[2]

    asyncio.run(scenario())


@pytest.mark.parametrize(("path", "method"), [
    ("/presets", "GET"),  # another router
    (f"/{IMAGE_ID}/sepia", "GET"),  # an unknown operation: FastAPI's 404 unknown_operation
    (f"/{IMAGE_ID.upper()}/mirror", "GET"),  # not an id: FastAPI's 404
    (f"/{IMAGE_ID}/mirror/x", "GET"),
    (f"/{IMAGE_ID}/mirror", "DELETE"),
])
def test_everything_else_reaches_fastapi_unchanged(path, method):
    async def scenario() -> None:
        lane, fastapi, _ = replica()
        ours, theirs = await call(lane, path, method=method), await call(fastapi, path, method=method)
        assert (ours[0], ours[2]) == (theirs[0], theirs[2]) and ours[0] != 500

    asyncio.run(scenario())


def test_a_variant_is_stored_from_its_second_request_under_the_etag_it_was_first_answered_with():
    async def scenario() -> None:
        app, _, store = replica()
        key = named_request(SETTINGS, IMAGE_ID, "grayscale").key
        first = await call(app, f"/{IMAGE_ID}/grayscale")
        await settled()
        assert first[1]["x-cache"] == "MISS" and key not in store.files  # a one-off variant costs no write
        second = await call(app, f"/{IMAGE_ID}/grayscale")  # from this replica's memory, and now stored
        await settled()
        assert second[1]["x-cache"] == "HIT" and second[2] == first[2]
        assert store.files[key].etag == first[1]["etag"].strip('"') and store.data[key] == first[2]
        other, _, _ = replica(store=store)  # another replica finds it stored
        third = await call(other, f"/{IMAGE_ID}/grayscale")
        assert third[1]["x-cache"] == "HIT" and third[1]["etag"] == first[1]["etag"] and third[2] == first[2]

        eager, _, eager_store = replica(SETTINGS.replace(variant_store_min_uses=1))
        await call(eager, f"/{IMAGE_ID}/grayscale")
        await settled()
        assert key in eager_store.files  # 1: every variant at its first request

    asyncio.run(scenario())


def test_two_replicas_rendering_one_variant_answer_one_etag():
    async def scenario() -> list[str]:
        return [(await call(replica()[0], f"/{IMAGE_ID}/process", "ops=mirror&format=png"))[1]["etag"]
                for _ in range(2)]

    first, second = asyncio.run(scenario())
    assert first == second


def test_the_store_policy_counts_uses_per_key():
    policy = StorePolicy(3)
    assert [policy.used("a"), policy.used("b"), policy.used("a"), policy.used("a"), policy.used("b")] == \
        [False, False, False, True, False]
    assert StorePolicy(1).used("a")


def test_serve_labels_image_requests_at_once_and_every_request_as_before():
    """Serve labels its own metrics by matching a request against the app's routes in order: the image
    routes' labels go first (Serve matched 20-odd routes before them), with the same label for every path."""
    from types import SimpleNamespace

    from ray.serve._private.thirdparty.get_asgi_route_name import extract_route_patterns, get_asgi_route_name

    from deployments.http.image_lane import serve_routes

    fastapi = create_app(SETTINGS, None)
    shown = SimpleNamespace(routes=serve_routes(fastapi.routes), router=fastapi.router)
    for path in [f"/{IMAGE_ID}/mirror", f"/{IMAGE_ID}/process", f"/{IMAGE_ID}/preset/x", f"/{IMAGE_ID}/auto",
                 f"/{IMAGE_ID}", f"/{IMAGE_ID}/sepia", f"/{IMAGE_ID.upper()}/mirror", "/jobs/abc", "/images",
                 f"/images/{IMAGE_ID}/variants", "/static/console.js", "/presets", "/healthz", "/nothing/at/all"]:
        scope = {"type": "http", "path": path, "method": "GET", "root_path": ""}
        assert get_asgi_route_name(shown, scope) == get_asgi_route_name(fastapi, scope), path
    assert extract_route_patterns(shown) == extract_route_patterns(fastapi)
