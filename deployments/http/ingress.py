"""HTTP ingress: the Serve deployment, and the ASGI app its replicas answer with.

    CORS (when configured) -> RequestMetrics -> ImageLane -> FastAPI (RequestGuard, the routers)

The image lane answers image URLs before FastAPI (deployments.http.image_lane); everything else is
FastAPI's. A variant is answered from this replica's memory, else from GridFS, else rendered by the
render service where its placement rule says (deployments.render.service).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.types import ASGIApp

from deployments import errors
from deployments.config import Settings
from deployments.http import docs, health, images, jobs, presets, web
from deployments.http.answers import VariantAnswers
from deployments.http.context import Context
from deployments.http.guard import GuardSettings, RequestGuard
from deployments.http.image_lane import ImageLane, serve_routes
from deployments.metrics import RequestMetrics
from deployments.presets import PresetBook
from deployments.render.allocator import keep_freed_memory
from deployments.render.memory_cache import MemoryCache
from deployments.render.service import RenderService, node_name
from storage import ImageStore
from storage.jobs import JobStore
from storage.presets import PresetStore


@serve.deployment
@serve.ingress()
class Api:
    """One ingress replica: its stores, render service and memory caches; it builds its app when it starts."""

    def __init__(self, transformer: DeploymentHandle, bridge: DeploymentHandle | None, settings: Settings) -> None:
        keep_freed_memory()  # see deployments/render/allocator.py: renders run in this process
        self.settings = settings
        store = ImageStore(settings.mongo_url, settings.mongo_db)
        originals = MemoryCache(settings.ingress_originals_bytes, settings.ingress_cache_ttl_s, 16 << 20)
        service = RenderService(settings, store, node_name("ingress"), transformer, originals)
        memory = MemoryCache(settings.ingress_cache_bytes, settings.ingress_cache_ttl_s)
        answers = VariantAnswers(store, service, memory)
        self.context = Context(settings, store, JobStore(store), PresetBook(settings, PresetStore(store)), answers,
                               transformer, bridge)

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return asgi_app(self.settings, self.context)

    def check_health(self) -> None:
        """Healthy while this replica answers. MongoDB is not checked: during an outage this replica still
        serves its memory cache, /healthz and /readyz, and 503s with Retry-After, and it recovers by itself
        when the database is back; restarting it would only turn those answers into connection errors."""


def create_app(settings: Settings, ctx: Context | None) -> FastAPI:
    """The FastAPI app: every route, the one error shape, the docs and the upload guard."""
    app = FastAPI(title="prog-image", summary="Upload images; download them converted.", version="0.1.0")
    errors.install(app)
    docs.install(app)
    app.state.context = ctx
    app.state.guard = GuardSettings(settings.max_upload_bytes, settings.api_key_list, settings.upload_timeout_s,
                                    settings.upload_idle_s, settings.max_concurrent_uploads)
    # web first: images' /{image_id} would match /about; health before it for the same reason.
    for router in (web.router, jobs.router, presets.router, health.router, images.router):
        app.include_router(router)
    app.add_middleware(RequestGuard, state=app.state)
    return app


def asgi_app(settings: Settings, ctx: Context) -> ASGIApp:
    """What a replica answers with: the image lane before the FastAPI app, both counted by RequestMetrics."""
    app = create_app(settings, ctx)
    outer: ASGIApp = RequestMetrics(ImageLane(app, ctx, app.routes))  # counts the guard's refusals too
    if settings.cors_origin_list:
        outer = CORSMiddleware(outer, allow_origins=list(settings.cors_origin_list),
                               allow_methods=["GET", "HEAD", "POST", "DELETE"], allow_headers=["*"],
                               expose_headers=["ETag", "X-Cache", "X-Rendered-By"])
    outer.routes = serve_routes(app.routes)  # type: ignore[attr-defined]  # Serve labels its metrics by them
    return outer
