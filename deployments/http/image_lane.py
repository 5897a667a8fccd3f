"""The image lane: GET and HEAD of an image URL (deployments.http.variant_requests) answered before FastAPI,
in raw ASGI: no route matching over every route, no parameter models, no middleware stack, no Response
objects. Every other request, and an image URL the lane does not know (a bad id, an unknown operation),
goes on to the FastAPI app unchanged, whose routes document these same URLs and answer them the same way.

bench/request_budget.py measured FastAPI's path at about a millisecond of an uncached request's CPU beside
the render; bench/cached_side_by_side.py, about half of a memory hit's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from deployments.errors import as_refusal, send_error
from deployments.http import variant_requests as requests
from deployments.http.answers import Reply
from deployments.http.context import Context
from deployments.http.security import verify_signature
from deployments.render.variants import OUTPUT_PARAMS, VariantRequest
from storage.keys import is_image_id, variant_key
from transforms import OPERATIONS

ROUTES = ("/{image_id}/{operation}", "/{image_id}/process", "/{image_id}/auto", "/{image_id}/preset/{name}")


class ImageLane:
    def __init__(self, app: ASGIApp, ctx: Context, routes: list[BaseRoute]) -> None:
        """app: the FastAPI app, for everything else; routes: its routes (the metrics' route labels)."""
        self.app = app
        self.ctx = ctx
        self.routes = routes  # Serve reads an ASGI app's routes for its own metrics
        self.labels = {path: next(r for r in _flat(routes) if getattr(r, "path", None) == path
                                  and "GET" in getattr(r, "methods", ())) for path in ROUTES}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        parts = path.split("/")
        known = (len(parts) == 3 and parts[2] in (*OPERATIONS, "process", "auto")) \
            or (len(parts) == 4 and parts[2] == "preset" and parts[3])
        if not known or not is_image_id(parts[1]):
            await self.app(scope, receive, send)
            return
        route = ROUTES[0] if parts[2] in OPERATIONS else ROUTES[3] if len(parts) == 4 else f"/{{image_id}}/{parts[2]}"
        scope["route"] = self.labels[route]  # the metric's label, as if FastAPI had routed it
        if route == ROUTES[0] and not scope["query_string"] and not self.ctx.settings.signing_key_list:
            # The plainest request, a named operation with nothing to parse: its key at once, for memory.
            key = variant_key(parts[1], parts[2], self.ctx.settings.encode_options.spelling())
            reply = self.ctx.answers.from_memory(key, _header(scope, b"if-none-match"), scope["method"] == "HEAD")
            if reply is not None:
                await self._send(send, reply)
                return
        headers = dict(scope["headers"])
        params = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        try:
            if self.ctx.settings.signing_key_list:
                verify_signature(scope["path"], params, self.ctx.settings.signing_key_list)
            wanted = await self._wanted(parts, params, headers)
            reply = await self.ctx.answers.answer(wanted, headers.get(b"if-none-match", b"").decode("latin-1"),
                                                  scope["method"] == "HEAD")
            if route == ROUTES[2]:
                reply.headers["Vary"] = "Accept"
        except Exception as exc:
            await send_error(send, as_refusal(exc))
            return
        await self._send(send, reply)

    async def _wanted(self, parts: list[str], params: dict[str, str], headers: dict[bytes, bytes]) -> VariantRequest:
        image_id, what = parts[1], parts[2]
        if what in OPERATIONS:
            return requests.named(self.ctx, image_id, what, params.get("compression"))
        if what == "process":
            return await requests.processed(self.ctx, image_id, params.get("ops", ""), params.get("format"),
                                            params.get("quality"),
                                            {name: params.get(name) for name in OUTPUT_PARAMS})
        if what == "auto":
            return requests.auto(self.ctx, image_id, headers.get(b"accept", b"").decode("latin-1"))
        return await requests.preset(self.ctx, image_id, parts[3])

    async def _send(self, send: Send, reply: Reply) -> None:
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(name.lower().encode(), value.encode()) for name, value in reply.headers.items()]})
        if reply.stream is None:
            await send({"type": "http.response.body", "body": reply.body})
            return
        chunks: Iterator[bytes] = self.ctx.store.iter_chunks(reply.stream)
        while (chunk := await asyncio.to_thread(next, chunks, None)) is not None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


class ServeLabel(BaseRoute):
    """An image route as Serve sees it when it labels its own metrics: Serve matches every request against
    the app's routes in order, and the image routes come last in FastAPI's (their `/{image_id}/...` would
    shadow `/jobs/{job_id}` and the like). This one matches only a path whose first segment is an image id,
    so it can go first: an image request is labelled at once, any other as before."""

    def __init__(self, route: BaseRoute) -> None:
        self.path: str = route.path  # type: ignore[attr-defined]
        self.methods: set[str] = route.methods  # type: ignore[attr-defined]
        self.regex = re.compile(re.sub(r"\{[a-z_]+\}", "[^/]+", self.path.replace("{image_id}", "[0-9a-f]{64}", 1)))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        return (Match.FULL, {}) if self.regex.fullmatch(_route_path(scope)) else (Match.NONE, {})

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:  # never routed through
        raise NotImplementedError


def serve_routes(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The routes Serve is shown: the image routes' labels first (the most specific first), then all."""
    images = {getattr(route, "path", None): route for route in _flat(routes) if "GET" in getattr(route, "methods", ())}
    return [*(ServeLabel(images[path]) for path in (*ROUTES[1:], ROUTES[0])), *routes]


def _flat(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, those of included routers too (FastAPI keeps them nested)."""
    for route in routes:
        nested = getattr(route, "original_router", None)
        yield from _flat(nested.routes) if nested is not None else (route,)


def _header(scope: Scope, name: bytes) -> str:
    return next((value.decode("latin-1") for key, value in scope["headers"] if key == name), "")


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point (Serve mounts it at its route prefix)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path
