"""The web console's routes: its page and static files, what the deployment offers, and URL signing.

The console is plain HTML, CSS and JavaScript in deployments/static (no build step). It learns the
pipeline grammar from GET /about, so a new step shows up in its playground without a change to it.
When URLs must be signed, it asks POST /sign (guarded by the API key) for each image URL: the page
never holds a signing key.
"""

from __future__ import annotations

import hashlib
from pathlib import Path as FilePath
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from deployments.errors import ApiError
from deployments.http import docs
from deployments.http.cache_headers import not_modified
from deployments.http.context import Context, context
from deployments.http.security import check_api_key, sign
from transforms import OPERATIONS, grammar

router = APIRouter()
Ctx = Annotated[Context, Depends(context)]

_STATIC = FilePath(__file__).parent / "static"
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# name -> (bytes, media type, ETag): read once per replica; revalidated by the browser on every load.
_FILES = {path.name: (path.read_bytes(), _MEDIA_TYPES[path.suffix],
                      '"' + hashlib.sha256(path.read_bytes()).hexdigest()[:32] + '"')
          for path in sorted(_STATIC.iterdir()) if path.suffix in _MEDIA_TYPES}
_PAGE = (_STATIC / "index.html").read_text()
SIGNED_TTL_S = 3600
MAX_SIGNED = 500


Path4k = Annotated[str, Field(max_length=4096)]


class SignRequest(BaseModel):
    paths: Annotated[list[Path4k], Field(min_length=1, max_length=MAX_SIGNED, description=(
        "Paths with their query, as the page would request them, e.g. /{id}/process?ops=grayscale."),
        examples=[[f"/{docs.EXAMPLE_ID}/grayscale"]])]


@router.get("/", response_class=HTMLResponse, responses=docs.PAGE)
async def page() -> HTMLResponse:
    """The web console: gallery, image pages with a pipeline playground, and batch jobs."""
    return HTMLResponse(_PAGE, headers={"Cache-Control": "no-cache"})


@router.get("/static/{name}", response_class=Response, responses=docs.errors(404))
async def static(name: Annotated[str, Path(description="A file of the console.", examples=["console.js"])],
                 request: Request) -> Response:
    """The console's scripts and styles."""
    if name not in _FILES:
        raise ApiError(404, "not_found", f"no static file {name!r}")
    data, media_type, etag = _FILES[name]
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


@router.get("/about", responses={200: docs.ABOUT})
async def about(ctx: Ctx, request: Request) -> JSONResponse:
    """The pipeline grammar, the seed operations, and which credentials this deployment asks for."""
    settings = ctx.settings
    return JSONResponse({"version": request.app.version, "operations": list(OPERATIONS), **grammar(),
                         "api_key_required": bool(settings.api_key_list),
                         "signed_urls": bool(settings.signing_key_list), "batch_jobs": bool(settings.amqp_url)})


@router.post("/sign", responses={200: docs.SIGNED, **docs.errors(400, 401)})
async def sign_paths(body: SignRequest, ctx: Ctx, request: Request) -> JSONResponse:
    """Sign image paths for an hour with the first signing key (API key required when keys are set).
    Without signing keys the paths come back as they are."""
    check_api_key(request, ctx.settings.api_key_list)
    keys = ctx.settings.signing_key_list
    urls = []
    for path in body.paths:
        if not path.startswith("/") or path.startswith("//"):
            raise ApiError(400, "bad_request", f"not a path on this server: {path[:100]!r}")
        if not keys:
            urls.append(path)
            continue
        bare, _, query = path.partition("?")
        urls.append(sign(keys[0], bare, dict(parse_qsl(query, keep_blank_values=True)), SIGNED_TTL_S))
    return JSONResponse({"urls": urls})
