"""HTTP ingress: the FastAPI app served by Ray Serve.

A variant is answered from this replica's memory, else from GridFS (no hop to a transform replica
at all); a miss is rendered here when the original is small and a render slot is free, else it
sends only (image id, pipeline) to the Transformer, which reads the original itself. A new variant
is answered first and stored in GridFS just after.
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
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from deployments import api_docs as docs
from deployments import errors, jobs_api, presets_api, web
from deployments.allocator import keep_freed_memory
from deployments.config import Settings
from deployments.context import Context
from deployments.errors import RETRY_AFTER, ApiError
from deployments.http_cache import cache_headers, not_modified
from deployments.memory_cache import MemoryCache
from deployments.metrics import RequestMetrics, metrics
from deployments.request_guard import GuardSettings, RequestGuard
from deployments.security import check_api_key, check_signature
from deployments.variants import Renderer, Variant, VariantRequest, image_record, pipeline_request, seed_request
from storage import ImageStore, StoredFile
from storage.jobs import JobStore
from storage.keys import is_image_id
from storage.presets import PresetStore
from transforms import OPERATIONS, Pipeline, PipelineError, parse
from transforms.encode import PNG_COMPRESSIONS

app = FastAPI(
    title="prog-image",
    summary="Upload images; download them converted.",
    version="0.1.0",
)
errors.install(app)
docs.install(app)
app.include_router(web.router)  # before the image routes, whose /{image_id} would match /about
app.include_router(jobs_api.router)
app.include_router(presets_api.router)
app.add_middleware(RequestGuard, state=app.state)
app.add_middleware(RequestMetrics)  # outermost: counts the guard's refusals too

log = logging.getLogger("ray.serve")
_DELETIONS_POLL_S = 0.5  # how soon another replica's DELETE empties this one's memory of that image
_DELETIONS_OVERLAP = dt.timedelta(seconds=5)  # re-read a little of the past: clocks of nodes differ
_GRACE_S = 2.0  # the ingress waits this much past the deadline for the renderer's own answer
_INLINE_MAX = 4 * 1024 * 1024  # stored variants up to this size are read in one go; larger ones stream
Drawn = tuple[Variant, "asyncio.Task[StoredFile] | None"]  # a render's variant, and its store when still running


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


def _image_response(request: Request, sha256: str, media_type: str, length: int,
                    body: Callable[[dict[str, str]], Response], hit: bool) -> Response:
    """An image answer with its caching headers: 304 when the client has it, headers only for HEAD."""
    headers = cache_headers(sha256, hit=hit)
    if not_modified(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(headers=headers, media_type=media_type)
    return body(headers)


@serve.deployment
@serve.ingress(app)
class Api:
    def __init__(self, transformer: DeploymentHandle, bridge: DeploymentHandle | None, settings: Settings) -> None:
        keep_freed_memory()  # see deployments/allocator.py: renders run in this process
        self.transformer = transformer
        self.bridge = bridge
        self.settings = settings
        self.store = ImageStore(settings.mongo_url, settings.mongo_db)
        self.jobs = JobStore(self.store)
        self.inflight: dict[str, asyncio.Future[Variant]] = {}
        self.tasks: set[asyncio.Task[None]] = set()  # renders in flight (asyncio keeps only weak references)
        self.renderer = Renderer(settings, self.store)
        self.memory = MemoryCache(settings.ingress_cache_bytes, settings.ingress_cache_ttl_s)
        self.local_slots = asyncio.Semaphore(settings.ingress_render_slots)
        self.local_waiting = 0  # renders waiting for a slot (at most ingress_render_queue)
        self.deletions_watch: asyncio.Task[None] | None = None
        self.presets = presets_api.PresetBook(settings, PresetStore(self.store))
        app.state.context = Context(settings, self.store, self.jobs, self.presets)
        app.state.guard = GuardSettings(settings.max_upload_bytes, settings.api_key_list, settings.upload_timeout_s,
                                        settings.upload_idle_s, settings.max_concurrent_uploads)
        if settings.cors_origin_list:  # before the first request builds the middleware stack
            app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origin_list),
                               allow_methods=["GET", "HEAD", "POST", "DELETE"], allow_headers=["*"],
                               expose_headers=["ETag", "X-Cache", "X-Rendered-By"])

    def check_health(self) -> None:
        """Healthy while this replica answers. MongoDB is not checked: during an outage this replica still
        serves its memory cache, /healthz and /readyz, and 503s with Retry-After, and it recovers by itself
        when the database is back; restarting it would only turn those answers into connection errors."""

    def _deadline(self) -> float:
        return time.time() + self.settings.request_timeout_s

    @app.post("/upload_file", status_code=201, response_model=UploadResult,
              responses={201: docs.example("Stored (or already stored: the same bytes get the same id).",
                                           docs.UPLOADED), **docs.errors(400, 401, 413, 415, 422, 503)})
    async def upload_file(self, request: Request,
                          image: UploadFile | None = File(None, description="The image file.")) -> JSONResponse:
        """Store an image. Its id is the SHA-256 of its bytes: the same bytes always get the same id."""
        # The API key, content type and size were checked before the body was read (deployments.request_guard).
        if image is None or not hasattr(image, "read"):
            raise ApiError(400, "missing_field", "multipart form field 'image' is required")
        data = await image.read()
        deadline = self._deadline()
        record = await self._call(lambda: self.transformer.ingest.remote(data, deadline), deadline)
        return JSONResponse(record, status_code=201)

    @app.get("/healthz", responses={200: docs.HEALTHY, 503: docs.FAILING})
    async def healthz(self) -> JSONResponse:
        """Liveness of the whole path: Serve (this answer), MongoDB, and a transform round trip."""
        return checks_response({
            "serve": "ok",
            "mongodb": await check(lambda: asyncio.to_thread(self.store.ping), 5),
            "transforms": await check(lambda: self.transformer.self_test.remote(), 10),
        })

    @app.get("/readyz", responses={200: docs.READY, 503: docs.FAILING})
    async def readyz(self) -> JSONResponse:
        """Readiness: MongoDB reachable and, when batch jobs are configured, the bridge connected to RabbitMQ."""
        checks = {"mongodb": await check(lambda: asyncio.to_thread(self.store.ping), 5)}
        if self.bridge is not None:
            checks["rabbitmq"] = await check(self._bridge_connected, 5)
        return checks_response(checks)

    async def _bridge_connected(self) -> None:
        if not (await self.bridge.status.remote())["connected"]:
            raise ConnectionError("the bridge is not connected")

    @app.get("/images", responses={200: docs.IMAGES_PAGE, **docs.errors(400)})
    async def list_images(self, limit: int = Query(50, ge=1, le=1000, description="Page size.", examples=[50]),
                          after: str | None = Query(None, description="The last image_id of the previous page.",
                                                    examples=[docs.EXAMPLE_ID])
                          ) -> JSONResponse:
        """Originals in id order, a page at a time: pass the last id back as `after` for the next page."""
        records = await asyncio.to_thread(self.store.list_originals, limit, after)
        items = [image_record(stored) for stored in records]
        return JSONResponse({"items": items, "next": items[-1]["image_id"] if len(items) == limit else None})

    @docs.image_route(app, "/{image_id}", responses={200: docs.METADATA, **docs.errors(404, 503)})
    async def metadata(self, image_id: docs.ImageId) -> JSONResponse:
        """An original's metadata, and the keys of its stored variants."""
        stored = await self._original(image_id)
        variants = await asyncio.to_thread(self.store.variants, image_id)
        return JSONResponse({**image_record(stored), "uploaded_at": stored.upload_date.isoformat(),
                             "content_type": stored.content_type, "variants": [v.key for v in variants]})

    @app.get("/images/{image_id}/variants", responses={200: docs.VARIANTS, **docs.errors(404, 503)})
    async def list_variants(self, image_id: docs.ImageId) -> JSONResponse:
        """An original's stored variants, with format, byte size, dimensions and the URL that serves each."""
        await self._original(image_id)
        variants = await asyncio.to_thread(self.store.variants, image_id)
        return JSONResponse({"items": [{
            "key": v.key, "url": f"/{v.key}", "format": v.metadata.get("format"), "content_type": v.content_type,
            "bytes": v.length, "width": v.metadata.get("width"), "height": v.metadata.get("height"),
            "created_at": v.upload_date.isoformat()} for v in variants]})

    @app.delete("/{image_id}", status_code=204, responses={**docs.DELETED, **docs.errors(401, 404)})
    async def delete(self, image_id: docs.ImageId, request: Request) -> Response:
        """Delete an original and every variant of it."""
        check_api_key(request, self.settings.api_key_list)
        self._check_id(image_id)
        if not await asyncio.to_thread(self.store.delete_image, image_id):
            raise ApiError(404, "not_found", f"no image with id {image_id}")
        self.memory.drop_image(image_id)  # other replicas drop theirs within _DELETIONS_POLL_S
        return Response(status_code=204)

    async def _watch_deletions(self) -> None:
        """Drop from memory what any replica deleted: polls the store's deletion log."""
        since = dt.datetime.now(dt.UTC) - _DELETIONS_OVERLAP
        while True:
            await asyncio.sleep(_DELETIONS_POLL_S)
            checked = dt.datetime.now(dt.UTC)
            try:
                for image_id in await asyncio.to_thread(self.store.deleted_since, since):
                    self.memory.drop_image(image_id)
                since = checked - _DELETIONS_OVERLAP
            except Exception as exc:  # MongoDB away: nothing can be deleted meanwhile either
                log.debug("deletion log unreadable: %r", exc)

    @docs.image_route(app, "/{image_id}/auto", response_class=Response,
                   responses={**docs.IMAGE, **docs.errors(403, 404, 503)})
    async def auto(self, image_id: docs.ImageId, request: Request) -> Response:
        """The best format the client's Accept header allows: AVIF, then WebP, else the original's format."""
        self._check_id(image_id)
        accept = request.headers.get("accept", "")
        fmt = "AVIF" if "image/avif" in accept else "WEBP" if "image/webp" in accept else None
        wanted = pipeline_request(self.settings, image_id, Pipeline((), fmt), "auto")
        response = await self._serve_variant(wanted, request)
        response.headers["Vary"] = "Accept"
        return response

    @docs.image_route(app, "/{image_id}/process", response_class=Response,
                   responses={**docs.IMAGE, **docs.errors(400, 403, 404, 503)})
    async def process(self, image_id: docs.ImageId, request: Request,
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
        self._check_id(image_id)
        output = {"progressive": progressive, "strip": strip, "max_bytes": max_bytes}
        return await self._serve_variant(await self._pipeline(image_id, ops, format, quality, output), request)

    @docs.image_route(app, "/{image_id}/preset/{name}", response_class=Response,
                      responses={**docs.IMAGE, **docs.errors(400, 403, 404, 503)})
    async def preset(self, image_id: docs.ImageId, name: presets_api.PresetName, request: Request) -> Response:
        """The image through a named preset (GET /presets lists them)."""
        self._check_id(image_id)
        return await self._serve_variant(await self._pipeline(image_id, f"preset:{name}", None, None), request)

    async def _pipeline(self, image_id: str, ops: str, fmt: str | None, quality: str | None,
                        output: dict[str, str | None] | None = None) -> VariantRequest:
        presets = await self.presets.current() if "preset:" in ops else None
        try:
            pipeline = parse(ops, fmt, quality, presets, **(output or {}))
        except PipelineError as exc:
            raise ApiError(400, "bad_pipeline", str(exc)) from None
        return pipeline_request(self.settings, image_id, pipeline)

    @docs.image_route(app, "/{image_id}/{operation}", response_class=Response,
                   responses={**docs.IMAGE, **docs.errors(400, 403, 404, 503)})
    async def variant(self, image_id: docs.ImageId, operation: docs.Operation, request: Request,
                      compression: str | None = Query(None, description="PNG output: fast or small; "
                                                      "default from PROG_IMAGE_PNG_COMPRESSION.",
                                                      examples=["small"])) -> Response:
        """The image converted by `operation`: jpeg, png, grayscale (keeps the format) or mirror (keeps the format)."""
        if compression is not None and compression not in PNG_COMPRESSIONS:
            raise ApiError(400, "bad_parameter", f"compression must be one of {', '.join(PNG_COMPRESSIONS)}")
        self._check_id(image_id)
        if operation not in OPERATIONS:
            raise ApiError(404, "unknown_operation",
                           f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
        return await self._serve_variant(seed_request(self.settings, image_id, operation, compression), request)

    @staticmethod
    def _check_id(image_id: str) -> None:
        if not is_image_id(image_id):
            raise ApiError(404, "not_found", f"no image with id {image_id!r}: ids are 64 hex characters")

    async def _original(self, image_id: str) -> StoredFile:
        self._check_id(image_id)
        return await asyncio.to_thread(self.renderer.original, image_id)

    async def _serve_variant(self, wanted: VariantRequest, request: Request) -> Response:
        """The stored variant if there is one (no transform hop at all), else render it once."""
        check_signature(request, self.settings.signing_key_list)
        if self.deletions_watch is None or self.deletions_watch.done():
            self.deletions_watch = asyncio.ensure_future(self._watch_deletions())
        remembered = self.memory.get(wanted.key)
        if remembered is not None:  # no database round trip, no thread hop
            metrics().cache.inc(tags={"result": "hit"})
            return self._respond(remembered.data, remembered.media_type, remembered.sha256, request, hit=True)
        pending = self.inflight.get(wanted.key)
        if pending is not None:  # being rendered or stored by this replica: share it, no database round trip
            metrics().cache.inc(tags={"result": "miss"})
            return self._answer(wanted, await asyncio.shield(pending), request)
        wanted = wanted.until(self._deadline())
        cached, body, original = await asyncio.to_thread(self._lookup, wanted)
        metrics().cache.inc(tags={"result": "hit" if cached is not None else "miss"})
        if cached is not None:
            if body is None:
                return self._stream(cached, request)
            self.memory.put(wanted.key, body, cached.content_type, cached.sha256)
            return self._respond(body, cached.content_type, cached.sha256, request, hit=True)
        rendered = await self._render_once(wanted.key, lambda: self._render(wanted, original))
        return self._answer(wanted, rendered, request)

    def _answer(self, wanted: VariantRequest, rendered: Variant, request: Request) -> Response:
        if rendered.data is None:
            response = self._stream(rendered.stored, request, hit=False)
        else:
            stored = rendered.stored
            self.memory.put(wanted.key, rendered.data, stored.content_type, stored.sha256)
            response = self._respond(rendered.data, stored.content_type, stored.sha256, request, hit=False)
        response.headers["X-Rendered-By"] = rendered.rendered_by
        return response

    async def _render_once(self, key: str, render: Callable[[], Awaitable[Drawn]]) -> Variant:
        """Concurrent first requests for one variant share a single render. It is answered as soon as
        it is drawn; its entry stays until it is stored, so that requests meanwhile share it too."""
        pending = self.inflight.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            pending.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved
            self.inflight[key] = pending
            task = asyncio.ensure_future(self._render_then_store(key, render, pending))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return await asyncio.shield(pending)

    async def _render_then_store(self, key: str, render: Callable[[], Awaitable[Drawn]],
                                 pending: asyncio.Future[Variant]) -> None:
        try:
            variant, storing = await render()
            pending.set_result(variant)
            if storing is not None:
                await asyncio.wait([storing])  # its failure is logged by the renderer
        except BaseException as exc:  # the render's error (an ApiError too) goes to every request sharing it
            if not pending.done():
                pending.set_exception(exc)
        finally:
            self.inflight.pop(key, None)

    def _lookup(self, wanted: VariantRequest) -> tuple[StoredFile | None, bytes | None, StoredFile]:
        """One thread hop and one query: the stored variant (with its bytes when small), and the original."""
        cached, original = self.renderer.find(wanted)
        return cached, None if cached is None else self.store.read_small(cached, _INLINE_MAX), original

    async def _render(self, wanted: VariantRequest, original: StoredFile) -> Drawn:
        """Render here when the original is small and a local slot is free, or one of ingress_render_queue
        places to wait for one: no hop, no copy through Ray; the variant is stored after it is answered.
        Everything else goes to the transform deployment, which scales out across the cluster."""
        meta = original.metadata
        wait = self.local_slots.locked()
        if meta["width"] * meta["height"] <= self.settings.ingress_render_max_pixels and (
                not wait or self.local_waiting < self.settings.ingress_render_queue):
            self.local_waiting += wait
            try:
                await self.local_slots.acquire()
            finally:
                self.local_waiting -= wait
            try:
                stored, data = await self._call(lambda: asyncio.to_thread(self.renderer.draw, wanted, original),
                                                wanted.deadline)
            finally:
                self.local_slots.release()
            return Variant(stored, data, "ingress"), self.renderer.keep_later(stored, data)
        return await self._call(lambda: self.transformer.render.remote(wanted), wanted.deadline, idempotent=True), None

    async def _call(self, send: Callable[[], Awaitable[Any]], deadline: float, idempotent: bool = False) -> Any:
        """One render or upload check (here or on the transform deployment), with the deadline, backpressure
        and retry policy. The renderer stops at its next stage past the deadline and reports a timeout
        itself; this waits a little longer for that answer, then gives up on it."""
        attempts = 2 if idempotent else 1
        for attempt in range(attempts):
            try:
                return await asyncio.wait_for(send(), max(0.0, deadline - time.time()) + _GRACE_S)
            except TimeoutError:
                raise ApiError(503, "timeout", f"processing took longer than {self.settings.request_timeout_s:g} s",
                               RETRY_AFTER) from None
            except BackPressureError:
                raise ApiError(503, "overloaded", "the service is saturated; retry shortly", RETRY_AFTER) from None
            except RayActorError:
                if attempt + 1 == attempts:  # a replica died mid-request; a GET is safe to retry once
                    raise ApiError(503, "unavailable", "a transform replica failed; retry shortly",
                                   RETRY_AFTER) from None
                await asyncio.sleep(0.2)  # let the router learn that the replica is gone
        raise AssertionError("unreachable")

    def _stream(self, stored: StoredFile, request: Request, hit: bool = True) -> Response:
        return _image_response(request, stored.sha256, stored.content_type, stored.length, lambda headers:
                               StreamingResponse(self.store.iter_chunks(stored), media_type=stored.content_type,
                                                 headers=headers), hit=hit)

    def _respond(self, data: bytes, media_type: str, sha256: str, request: Request, hit: bool) -> Response:
        return _image_response(request, sha256, media_type, len(data),
                               lambda headers: Response(data, media_type=media_type, headers=headers), hit=hit)
