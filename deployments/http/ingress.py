"""HTTP ingress: the Serve deployment, and the FastAPI app its replicas build (create_app).

A variant is answered from this replica's memory, else from GridFS (no hop to a transform replica
at all); a miss is rendered by the render service, where its placement rule says
(deployments.render.service). A new variant is answered first and stored in GridFS just after.
"""

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments import errors
from deployments.config import Settings
from deployments.errors import ApiError
from deployments.http import docs, web
from deployments.http import jobs as jobs_api
from deployments.http import presets as presets_api
from deployments.http.cache_headers import cache_headers, not_modified
from deployments.http.context import Context
from deployments.http.guard import GuardSettings, RequestGuard
from deployments.http.image_lane import MemoryHits
from deployments.http.security import check_api_key, check_signature
from deployments.metrics import RequestMetrics, metrics
from deployments.render.allocator import keep_freed_memory
from deployments.render.memory_cache import MemoryCache
from deployments.render.service import RenderService, node_name
from deployments.render.variants import Variant, VariantRequest, image_record, pipeline_request, seed_request
from storage import ImageStore, StoredFile
from storage.jobs import JobStore
from storage.keys import is_image_id
from storage.presets import PresetStore
from transforms import OPERATIONS, NotFound, Pipeline, parse
from transforms.encode import PNG_COMPRESSIONS
from transforms.formats import MEDIA_TYPES

log = logging.getLogger("ray.serve")
_DELETIONS_POLL_S = 0.5  # how soon another replica's DELETE empties this one's memory of that image
_DELETIONS_OVERLAP = dt.timedelta(seconds=5)  # re-read a little of the past: clocks of nodes differ
_INLINE_MAX = 4 * 1024 * 1024  # stored variants up to this size are read in one go; larger ones stream


class UploadResult(BaseModel):
    image_id: str = Field(examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"])
    format: str = Field(examples=["JPEG"])
    width: int = Field(examples=[1152])
    height: int = Field(examples=[864])
    bytes: int = Field(examples=[183421])
    blurhash: str = Field(examples=["LKO2?U%2Tw=w]~RBVZRi};RPxuwH"], description="A BlurHash to show while loading.")
    dominant_color: str = Field(examples=["#7a8c5e"], description="The colour most of the image is.")


async def check(probe: Callable[[], Awaitable[Any]], timeout_s: float) -> str:
    """'ok', or 'failed: <why>' when the probe raises or takes longer than timeout_s."""
    try:
        await asyncio.wait_for(probe(), timeout_s)
        return "ok"
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}"[:200]


def checks_response(checks: dict[str, str]) -> JSONResponse:
    healthy = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if healthy else "failing", "checks": checks},
                        status_code=200 if healthy else 503)


def _image_response(request: Request, etag: str, media_type: str, length: int,
                    body: Callable[[dict[str, str]], Response], hit: bool) -> Response:
    """An image answer with its caching headers: 304 when the client has it, headers only for HEAD."""
    headers = cache_headers(etag, hit=hit)
    if not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(headers=headers, media_type=media_type)
    return body(headers)


@serve.deployment
@serve.ingress()
class Api:
    """One ingress replica: its stores, render service and memory cache; it builds its app when it starts."""

    def __init__(self, transformer: DeploymentHandle, bridge: DeploymentHandle | None, settings: Settings) -> None:
        keep_freed_memory()  # see deployments/allocator.py: renders run in this process
        self.transformer = transformer
        self.bridge = bridge
        self.settings = settings
        self.store = ImageStore(settings.mongo_url, settings.mongo_db)
        self.memory = MemoryCache(settings.ingress_cache_bytes, settings.ingress_cache_ttl_s)
        self.originals = MemoryCache(settings.ingress_originals_bytes, settings.ingress_cache_ttl_s, 16 << 20)
        self.service = RenderService(settings, self.store, node_name("ingress"), transformer, self.originals)
        self.deletions_watch: asyncio.Task[None] | None = None
        self.context = Context(settings, self.store, JobStore(self.store),
                               presets_api.PresetBook(settings, PresetStore(self.store)))

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self.settings, self)

    def check_health(self) -> None:
        """Healthy while this replica answers. MongoDB is not checked: during an outage this replica still
        serves its memory cache, /healthz and /readyz, and 503s with Retry-After, and it recovers by itself
        when the database is back; restarting it would only turn those answers into connection errors."""

    def deadline(self) -> float:
        return time.time() + self.settings.request_timeout_s

    async def ingest(self, data: bytes) -> dict[str, Any]:
        """Validated and stored by the transform deployment (a full decode is no work for the ingress)."""
        deadline = self.deadline()
        stored = await self.service.within(deadline, self.transformer.ingest.remote(data, deadline))
        # Kept here: the renders that follow an upload (a page's sizes) need not read it back from GridFS.
        self.originals.put(stored["image_id"], data, MEDIA_TYPES.get(stored["format"], ""), stored["image_id"])
        return stored

    async def original(self, image_id: str) -> StoredFile:
        check_id(image_id)
        stored = await asyncio.to_thread(self.store.find, image_id)
        if stored is None:
            raise NotFound(f"no image with id {image_id}")
        return stored

    async def pipeline(self, image_id: str, ops: str, fmt: str | None, quality: str | None,
                       output: dict[str, str | None] | None = None) -> VariantRequest:
        presets = await self.context.presets.current() if "preset:" in ops else None
        return pipeline_request(self.settings, image_id, parse(ops, fmt, quality, presets, **(output or {})))

    async def serve_variant(self, wanted: VariantRequest, request: Request) -> Response:
        """From memory, else the stored variant (no transform hop at all), else rendered once."""
        check_signature(request, self.settings.signing_key_list)
        if self.deletions_watch is None or self.deletions_watch.done():
            self.deletions_watch = asyncio.ensure_future(self._watch_deletions())
        remembered = self.memory.get(wanted.key)
        if remembered is not None:  # no database round trip, no thread hop
            metrics().cache.inc(tags={"result": "hit"})
            return _respond(remembered.data, remembered.media_type, remembered.etag, request, hit=True)
        pending = self.service.pending(wanted.key)
        if pending is not None:  # being rendered or stored by this replica: share it, no database round trip
            metrics().cache.inc(tags={"result": "miss"})
            return self._answer(wanted, await asyncio.shield(pending), request)
        wanted = wanted.until(self.deadline())
        cached, body, original = await asyncio.to_thread(self._lookup, wanted)
        metrics().cache.inc(tags={"result": "hit" if cached is not None else "miss"})
        if cached is None:
            return self._answer(wanted, await self.service.render(wanted, original), request)
        if body is None:
            return _image_response(request, cached.etag, cached.content_type, cached.length, lambda headers:
                                   StreamingResponse(self.store.iter_chunks(cached), media_type=cached.content_type,
                                                     headers=headers), hit=True)
        self.memory.put(wanted.key, body, cached.content_type, cached.etag)
        return _respond(body, cached.content_type, cached.etag, request, hit=True)

    def _lookup(self, wanted: VariantRequest) -> tuple[StoredFile | None, bytes | None, StoredFile]:
        """One thread hop and one query: the stored variant (with its bytes when small), and the original."""
        cached, original = self.service.lookup(wanted)
        return cached, None if cached is None else self.store.read_small(cached, _INLINE_MAX), original

    def forget(self, image_id: str) -> None:
        """A deleted image leaves this replica's memory: its original and its variants."""
        self.memory.drop_image(image_id)
        self.originals.drop_image(image_id)

    def _answer(self, wanted: VariantRequest, rendered: Variant, request: Request) -> Response:
        stored = rendered.stored
        self.memory.put(wanted.key, rendered.data, stored.content_type, stored.etag)
        response = _respond(rendered.data, stored.content_type, stored.etag, request, hit=False)
        response.headers["X-Rendered-By"] = rendered.rendered_by
        return response

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


def check_id(image_id: str) -> None:
    if not is_image_id(image_id):
        raise ApiError(404, "not_found", f"no image with id {image_id!r}: ids are 64 hex characters")


def _respond(data: bytes, media_type: str, etag: str, request: Request, hit: bool) -> Response:
    return _image_response(request, etag, media_type, len(data),
                           lambda headers: Response(data, media_type=media_type, headers=headers), hit=hit)


def create_app(settings: Settings, api: Api) -> FastAPI:
    """The HTTP API of one ingress replica: its routes, error shape, docs, guards and metrics."""
    app = FastAPI(title="prog-image", summary="Upload images; download them converted.", version="0.1.0")
    errors.install(app)
    docs.install(app)
    app.state.context = api.context
    app.state.guard = GuardSettings(settings.max_upload_bytes, settings.api_key_list, settings.upload_timeout_s,
                                    settings.upload_idle_s, settings.max_concurrent_uploads)
    app.include_router(web.router)  # before the image routes, whose /{image_id} would match /about
    app.include_router(jobs_api.router)
    app.include_router(presets_api.router)
    app.add_middleware(RequestGuard, state=app.state)
    if not settings.signing_key_list and not settings.cors_origin_list:  # both need the full path
        app.add_middleware(MemoryHits, memory=api.memory, spelling=settings.encode_options.spelling(),
                           routes=app.routes)
    app.add_middleware(RequestMetrics)  # outermost: counts the guard's refusals and the memory hits too
    if settings.cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origin_list),
                           allow_methods=["GET", "HEAD", "POST", "DELETE"], allow_headers=["*"],
                           expose_headers=["ETag", "X-Cache", "X-Rendered-By"])

    @app.post("/upload_file", status_code=201, response_model=UploadResult,
              responses={201: docs.example("Stored (or already stored: the same bytes get the same id).",
                                           docs.UPLOADED), **docs.errors(400, 401, 413, 415, 422, 503)})
    async def upload_file(image: UploadFile | None = File(None, description="The image file.")) -> JSONResponse:
        """Store an image. Its id is the SHA-256 of its bytes: the same bytes always get the same id."""
        # The API key, content type and size were checked before the body was read (deployments.http.guard).
        if image is None or not hasattr(image, "read"):
            raise ApiError(400, "missing_field", "multipart form field 'image' is required")
        return JSONResponse(await api.ingest(await image.read()), status_code=201)

    @app.get("/healthz", responses={200: docs.HEALTHY, 503: docs.FAILING})
    async def healthz() -> JSONResponse:
        """Liveness of the whole path: Serve (this answer), MongoDB, and a transform round trip."""
        return checks_response({
            "serve": "ok",
            "mongodb": await check(lambda: asyncio.to_thread(api.store.ping), 5),
            "transforms": await check(lambda: api.transformer.self_test.remote(), 10),
        })

    @app.get("/readyz", responses={200: docs.READY, 503: docs.FAILING})
    async def readyz() -> JSONResponse:
        """Readiness: MongoDB reachable and, when batch jobs are configured, the bridge connected to RabbitMQ."""
        checks = {"mongodb": await check(lambda: asyncio.to_thread(api.store.ping), 5)}
        if api.bridge is not None:
            checks["rabbitmq"] = await check(bridge_connected, 5)
        return checks_response(checks)

    async def bridge_connected() -> None:
        if not (await api.bridge.status.remote())["connected"]:
            raise ConnectionError("the bridge is not connected")

    @app.get("/images", responses={200: docs.IMAGES_PAGE, **docs.errors(400)})
    async def list_images(limit: int = Query(50, ge=1, le=1000, description="Page size.", examples=[50]),
                          after: str | None = Query(None, description="The last image_id of the previous page.",
                                                    examples=[docs.EXAMPLE_ID])
                          ) -> JSONResponse:
        """Originals in id order, a page at a time: pass the last id back as `after` for the next page."""
        records = await asyncio.to_thread(api.store.list_originals, limit, after)
        items = [image_record(stored) for stored in records]
        return JSONResponse({"items": items, "next": items[-1]["image_id"] if len(items) == limit else None})

    @docs.image_route(app, "/{image_id}", responses={200: docs.METADATA, **docs.errors(404, 503)})
    async def metadata(image_id: docs.ImageId) -> JSONResponse:
        """An original's metadata, and the keys of its stored variants."""
        stored = await api.original(image_id)
        variants = await asyncio.to_thread(api.store.variants, image_id)
        return JSONResponse({**image_record(stored), "uploaded_at": stored.upload_date.isoformat(),
                             "content_type": stored.content_type, "variants": [v.key for v in variants]})

    @app.get("/images/{image_id}/variants", responses={200: docs.VARIANTS, **docs.errors(404, 503)})
    async def list_variants(image_id: docs.ImageId) -> JSONResponse:
        """An original's stored variants, with format, byte size, dimensions and the URL that serves each."""
        await api.original(image_id)
        variants = await asyncio.to_thread(api.store.variants, image_id)
        return JSONResponse({"items": [{
            "key": v.key, "url": f"/{v.key}", "format": v.metadata.get("format"), "content_type": v.content_type,
            "bytes": v.length, "width": v.metadata.get("width"), "height": v.metadata.get("height"),
            "created_at": v.upload_date.isoformat()} for v in variants]})

    @app.delete("/{image_id}", status_code=204, responses={**docs.DELETED, **docs.errors(401, 404)})
    async def delete(image_id: docs.ImageId, request: Request) -> Response:
        """Delete an original and every variant of it."""
        check_api_key(request, settings.api_key_list)
        check_id(image_id)
        if not await asyncio.to_thread(api.store.delete_image, image_id):
            raise NotFound(f"no image with id {image_id}")
        api.forget(image_id)  # other replicas forget it within _DELETIONS_POLL_S
        return Response(status_code=204)

    @docs.image_route(app, "/{image_id}/auto", response_class=Response,
                      responses={**docs.IMAGE, **docs.errors(403, 404, 503)})
    async def auto(image_id: docs.ImageId, request: Request) -> Response:
        """The best format the client's Accept header allows: AVIF, then WebP, else the original's format."""
        check_id(image_id)
        accept = request.headers.get("accept", "")
        fmt = "AVIF" if "image/avif" in accept else "WEBP" if "image/webp" in accept else None
        response = await api.serve_variant(pipeline_request(settings, image_id, Pipeline((), fmt), "auto"), request)
        response.headers["Vary"] = "Accept"
        return response

    @docs.image_route(app, "/{image_id}/process", response_class=Response,
                      responses={**docs.IMAGE, **docs.errors(400, 403, 404, 503)})
    async def process(image_id: docs.ImageId, request: Request,
                      ops: str = Query("", description="Steps, e.g. grayscale,mirror,resize:w=800", examples=[
                          "grayscale,mirror,resize:w=800:h=600:fit=cover:g=smart,sharpen:r=1,pad:b=20:color=000000",
                          "trim,background:color=ffffff,crop:w=400:h=400:fx=0.3:fy=0.4",
                          f"thumbnail:size=600,watermark:id={docs.EXAMPLE_ID}:pos=se:opacity=0.5:scale=0.2",
                          "preset:avatar,blur:r=1.5"]),
                      format: str | None = Query(None, description="jpeg, png, webp, avif or gif; default: keep",
                                                 examples=["webp"]),
                      quality: str | None = Query(None, description="1-100, for lossy formats",
                                                  examples=["80"]),
                      progressive: str | None = Query(None, description="1: progressive JPEG", examples=["1"]),
                      strip: str | None = Query(None, description="0: keep the original's EXIF (orientation "
                                                "reset); default 1: no metadata", examples=["0"]),
                      max_bytes: str | None = Query(None, description="lossy formats: the highest quality whose "
                                                    "output fits in this many bytes", examples=["50000"])
                      ) -> Response:
        """Apply a pipeline of steps (see the README for the grammar) and encode; cached like every variant."""
        check_id(image_id)
        output = {"progressive": progressive, "strip": strip, "max_bytes": max_bytes}
        return await api.serve_variant(await api.pipeline(image_id, ops, format, quality, output), request)

    @docs.image_route(app, "/{image_id}/preset/{name}", response_class=Response,
                      responses={**docs.IMAGE, **docs.errors(400, 403, 404, 503)})
    async def preset(image_id: docs.ImageId, name: presets_api.PresetName, request: Request) -> Response:
        """The image through a named preset (GET /presets lists them)."""
        check_id(image_id)
        return await api.serve_variant(await api.pipeline(image_id, f"preset:{name}", None, None), request)

    @docs.image_route(app, "/{image_id}/{operation}", response_class=Response,
                      responses={**docs.IMAGE, **docs.errors(400, 403, 404, 503)})
    async def variant(image_id: docs.ImageId, operation: docs.Operation, request: Request,
                      compression: str | None = Query(None, description="PNG output: fast or small; "
                                                      "default from PROG_IMAGE_PNG_COMPRESSION.",
                                                      examples=["small"])) -> Response:
        """The image converted by `operation`: jpeg, png, grayscale (keeps the format) or mirror (keeps the format)."""
        if compression is not None and compression not in PNG_COMPRESSIONS:
            raise ApiError(400, "bad_parameter", f"compression must be one of {', '.join(PNG_COMPRESSIONS)}")
        check_id(image_id)
        if operation not in OPERATIONS:
            raise ApiError(404, "unknown_operation",
                           f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
        return await api.serve_variant(seed_request(settings, image_id, operation, compression), request)

    return app
