"""HTTP ingress: the FastAPI app served by Ray Serve.

The ingress does no pixel work. Cached variants are streamed straight from GridFS here (no
hop to a transform replica at all); a miss sends only (image id, operation) to the Transformer,
which reads the original itself and stores what it renders.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from deployments import errors
from deployments.body_limit import BodyLimit
from deployments.config import Settings
from deployments.errors import ApiError
from deployments.http_cache import cache_headers, not_modified
from deployments.transformer import Variant, variant_params
from storage import ImageStore, StoredFile
from storage.jobs import JobStore
from storage.keys import is_image_id, variant_key
from transforms import OPERATIONS
from transforms.encode import PNG_COMPRESSIONS

app = FastAPI(
    title="prog-image",
    summary="Upload images; download them converted.",
    version="0.1.0",
)
errors.install(app)
app.add_middleware(BodyLimit, state=app.state)

_ERROR = {"content": {"application/json": {"example": {"error": {"code": "not_found", "message": "..."}}}}}
_IMAGE = {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}, "description": "The converted image."}
_RETRY_AFTER_S = "1"
_INLINE_MAX = 4 * 1024 * 1024  # stored variants up to this size are read in one go; larger ones stream


class UploadResult(BaseModel):
    image_id: str = Field(examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"])
    format: str = Field(examples=["JPEG"])
    width: int = Field(examples=[1152])
    height: int = Field(examples=[864])
    bytes: int = Field(examples=[183421])


@serve.deployment
@serve.ingress(app)
class Api:
    def __init__(self, transformer: DeploymentHandle, bridge: DeploymentHandle | None, settings: Settings) -> None:
        self.transformer = transformer
        self.bridge = bridge
        self.settings = settings
        self.store = ImageStore(settings.mongo_url, settings.mongo_db)
        self.jobs = JobStore(self.store)
        self.inflight: dict[str, asyncio.Future[Variant]] = {}
        app.state.max_upload_bytes = settings.max_upload_bytes

    def check_health(self) -> None:
        self.store.ping()

    @app.post("/upload_file", status_code=201, response_model=UploadResult,
              responses={400: _ERROR, 413: _ERROR, 415: _ERROR, 422: _ERROR})
    async def upload_file(self, image: UploadFile | None = File(None, description="The image file.")) -> JSONResponse:
        """Store an image. Its id is the SHA-256 of its bytes: the same bytes always get the same id."""
        if image is None or not hasattr(image, "read"):
            raise ApiError(400, "missing_field", "multipart form field 'image' is required")
        data = await image.read()
        record = await self._call(lambda: self.transformer.ingest.remote(data))
        return JSONResponse(record, status_code=201)

    @app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        """Liveness of the whole path: Serve (this answer), MongoDB, and a transform round trip."""
        checks: dict[str, str] = {"serve": "ok"}
        try:
            await asyncio.wait_for(asyncio.to_thread(self.store.ping), 5)
            checks["mongodb"] = "ok"
        except Exception as exc:
            checks["mongodb"] = f"failed: {type(exc).__name__}"
        try:
            await asyncio.wait_for(self.transformer.self_test.remote(), 10)
            checks["transforms"] = "ok"
        except Exception as exc:
            checks["transforms"] = f"failed: {type(exc).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if healthy else "failing", "checks": checks},
                            status_code=200 if healthy else 503)

    @app.get("/readyz", responses={503: _ERROR})
    async def readyz(self) -> JSONResponse:
        """Readiness: MongoDB reachable and, when batch jobs are configured, the bridge connected to RabbitMQ."""
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(asyncio.to_thread(self.store.ping), 5)
            checks["mongodb"] = "ok"
        except Exception as exc:
            checks["mongodb"] = f"failed: {type(exc).__name__}"
        if self.bridge is not None:
            try:
                status = await asyncio.wait_for(self.bridge.status.remote(), 5)
                checks["rabbitmq"] = "ok" if status["connected"] else "failed: not connected"
            except Exception as exc:
                checks["rabbitmq"] = f"failed: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ready else "failing", "checks": checks},
                            status_code=200 if ready else 503)

    @app.get("/jobs/{job_id}", responses={404: _ERROR})
    async def job(self, job_id: str) -> JSONResponse:
        """A batch job's state (queued, running, done or failed), progress and per-item results."""
        doc = await asyncio.to_thread(self.jobs.get, job_id)
        if doc is None:
            raise ApiError(404, "not_found", f"no job with id {job_id!r}")
        doc["job_id"] = doc.pop("_id")
        return JSONResponse(jsonable_encoder(doc))

    @app.api_route("/{image_id}/{operation}", methods=["GET", "HEAD"], response_class=Response,
                   responses={200: _IMAGE, 304: {"description": "Not modified."}, 404: _ERROR, 503: _ERROR})
    async def variant(self, image_id: str, operation: str, request: Request,
                      compression: str | None = Query(None, description="PNG output: fast or small; "
                                                      "default from PROG_IMAGE_PNG_COMPRESSION.")) -> Response:
        """The image converted by `operation`: jpeg, png, grayscale (keeps the format) or mirror (keeps the format)."""
        if compression is not None and compression not in PNG_COMPRESSIONS:
            raise ApiError(400, "bad_parameter", f"compression must be one of {', '.join(PNG_COMPRESSIONS)}")
        if not is_image_id(image_id):
            raise ApiError(404, "not_found", f"no image with id {image_id!r}: ids are 64 hex characters")
        if operation not in OPERATIONS:
            raise ApiError(404, "unknown_operation",
                           f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
        key = variant_key(image_id, operation, **variant_params(self.settings, compression))
        cached, body = await asyncio.to_thread(self.store.fetch, key, _INLINE_MAX)
        if cached is not None:
            if body is not None:
                return self._respond(body, cached.content_type, cached.sha256, request, hit=True)
            return self._stream(cached, request)
        rendered = await self._render_once(
            key, lambda: self.transformer.render.remote(image_id, operation, compression))
        return self._respond(rendered.data, rendered.media_type, rendered.sha256, request, hit=False)

    async def _render_once(self, key: str, send: Callable[[], Awaitable[Variant]]) -> Variant:
        """Concurrent first requests for one variant share a single render."""
        pending = self.inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._call(send, idempotent=True))
            self.inflight[key] = pending
            pending.add_done_callback(lambda _: self.inflight.pop(key, None))
        return await asyncio.shield(pending)

    async def _call(self, send: Callable[[], Awaitable[Any]], idempotent: bool = False) -> Any:
        """One call to the transform deployment, with the timeout, backpressure and retry policy."""
        attempts = 2 if idempotent else 1
        for attempt in range(attempts):
            try:
                return await asyncio.wait_for(send(), self.settings.request_timeout_s)
            except TimeoutError:
                raise ApiError(503, "timeout", f"processing took longer than {self.settings.request_timeout_s:g} s",
                               {"Retry-After": _RETRY_AFTER_S}) from None
            except BackPressureError:
                raise ApiError(503, "overloaded", "the service is saturated; retry shortly",
                               {"Retry-After": _RETRY_AFTER_S}) from None
            except RayActorError:
                if attempt + 1 == attempts:  # a replica died mid-request; a GET is safe to retry once
                    raise ApiError(503, "unavailable", "a transform replica failed; retry shortly",
                                   {"Retry-After": _RETRY_AFTER_S}) from None
                await asyncio.sleep(0.2)  # let the router learn that the replica is gone
        raise AssertionError("unreachable")

    def _stream(self, stored: StoredFile, request: Request) -> Response:
        headers = cache_headers(stored.sha256, hit=True)
        if not_modified(request, headers["ETag"]):
            return Response(status_code=304, headers=headers)
        headers["Content-Length"] = str(stored.length)
        if request.method == "HEAD":
            return Response(headers=headers, media_type=stored.content_type)
        return StreamingResponse(self.store.iter_chunks(stored), media_type=stored.content_type, headers=headers)

    def _respond(self, data: bytes, media_type: str, sha256: str, request: Request, hit: bool) -> Response:
        headers = cache_headers(sha256, hit=hit)
        if not_modified(request, headers["ETag"]):
            return Response(status_code=304, headers=headers)
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(data))
            return Response(headers=headers, media_type=media_type)
        return Response(data, media_type=media_type, headers=headers)

