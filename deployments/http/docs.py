"""OpenAPI documentation for the ingress: path parameters, and response examples for every route.

Kept apart from the routes so that the route code reads as behaviour, not documentation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Path
from fastapi.openapi.utils import get_openapi

_F = TypeVar("_F", bound=Callable[..., Any])

EXAMPLE_ID = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

ImageId = Annotated[str, Path(description="The image's id: the SHA-256 of its bytes, 64 hex characters.",
                              examples=[EXAMPLE_ID])]
Operation = Annotated[str, Path(description="jpeg, png, grayscale or mirror.", examples=["grayscale"])]
JobId = Annotated[str, Path(description="The job_id given in the job message (or the message id).",
                            examples=["nightly-2026-11-28"])]

# One example per status: the stable error shape with a code the route really returns.
_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("Bad request: a parameter or pipeline is invalid.", "bad_pipeline",
          "unknown operation 'sepia'; one of grayscale, mirror, resize, thumbnail, rotate, flip, crop, blur"),
    401: ("API key missing or wrong (only when PROG_IMAGE_API_KEYS is set).", "unauthorized",
          "a valid API key is required (X-API-Key header)"),
    403: ("Signature missing, wrong or expired (only when PROG_IMAGE_SIGNING_KEYS is set).", "bad_signature",
          "the URL's signature does not match"),
    404: ("Unknown image, job or operation.", "not_found", f"no image with id {EXAMPLE_ID}"),
    409: ("The preset comes from PROG_IMAGE_PRESETS: change it there.", "preset_fixed",
          "preset 'avatar' comes from PROG_IMAGE_PRESETS"),
    413: ("The upload is larger than PROG_IMAGE_MAX_UPLOAD_BYTES.", "too_large",
          "upload is larger than the limit of 52428800 bytes"),
    415: ("Not an image format we read (detected from the content, not the name).", "unsupported_format",
          "not a supported image: content looks like text"),
    422: ("More pixels than PROG_IMAGE_MAX_PIXELS (a decompression bomb), read from the header.",
          "image_too_large", "image is 40000x25000 = 1000000000 pixels; the limit is 50000000"),
    503: ("Saturated or timed out: retry after the Retry-After header's seconds.", "overloaded",
          "the service is saturated; retry shortly"),
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, code, message = _ERRORS[status]
        responses[status] = {"description": description, "content": {"application/json": {
            "example": {"error": {"code": code, "message": message}}}}}
    return responses


def example(description: str, body: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": body}}}


IMAGE = {200: {"description": "The converted image, with a strong ETag and Cache-Control: immutable.",
               "content": {media: {"example": "(binary image data)"}
                           for media in ("image/jpeg", "image/png", "image/webp", "image/avif")}},
         304: {"description": "Not modified: the If-None-Match ETag matches."}}

UPLOADED = {"image_id": EXAMPLE_ID, "format": "JPEG", "width": 1152, "height": 864, "bytes": 183421,
            "blurhash": "LKO2?U%2Tw=w]~RBVZRi};RPxuwH", "dominant_color": "#7a8c5e"}
METADATA = example("The original's metadata and its stored variants' keys.", {
    **UPLOADED, "uploaded_at": "2026-11-28T07:30:00+00:00", "content_type": "image/jpeg",
    "variants": [f"{EXAMPLE_ID}/grayscale", f"{EXAMPLE_ID}/process?ops=resize:fit=contain:w=800&format=webp"]})
IMAGES_PAGE = example("A page of originals; `next` is the `after` for the following page, null at the end.",
                      {"items": [UPLOADED], "next": EXAMPLE_ID})
JOB = example("The job's state and per-item results.", {
    "job_id": "nightly-2026-11-28", "state": "done", "operations": ["png", "grayscale"],
    "progress": {"total": 2, "done": 2, "failed": 0},
    "items": [{"image_id": EXAMPLE_ID, "results": {
        op: {"status": "ok", "variant_id": f"{EXAMPLE_ID}/{op}", "url": f"http://127.0.0.1:8000/{EXAMPLE_ID}/{op}",
             "content_type": media, "bytes": 182000} for op, media in (("png", "image/png"),
                                                                       ("grayscale", "image/jpeg"))}}]})
JOBS = example("The newest jobs first (without their items).", {"items": [{
    "job_id": "web-5f0c2a", "state": "running", "operations": ["png"], "progress": {"total": 3, "done": 1, "failed": 0},
    "created_at": "2026-11-28T07:30:00+00:00"}]})
JOB_SUBMITTED = example("Published to the job queue; follow it at `url`.",
                        {"job_id": "web-5f0c2a", "state": "queued", "url": "/jobs/web-5f0c2a"})
VARIANTS = example("The original's stored variants, by key.", {"items": [{
    "key": f"{EXAMPLE_ID}/grayscale", "url": f"/{EXAMPLE_ID}/grayscale", "format": "JPEG",
    "content_type": "image/jpeg", "bytes": 61234, "width": 1152, "height": 864,
    "created_at": "2026-11-28T07:31:00+00:00"}]})
ABOUT = example("What this deployment offers: the pipeline grammar and which credentials it needs.", {
    "version": "0.1.0", "operations": ["jpeg", "png", "grayscale", "mirror"],
    "formats": ["jpeg", "png", "webp", "avif"],
    "steps": {"resize": {"params": {"w": {"type": "int", "min": 1, "max": 16384}}, "required": []}},
    "max_steps": 10, "api_key_required": False, "signed_urls": False, "batch_jobs": True})
SIGNED = example("The paths, signed (or as they were when URLs need no signature).",
                 {"urls": [f"/{EXAMPLE_ID}/grayscale?exp=1795000000&sig=3f2a..."]})
PRESETS = example("Every preset by name.", {"avatar": {
    "ops": "resize:w=128:h=128:fit=cover:g=smart", "format": "webp", "quality": None, "fixed": True}})
HEALTHY = example("Every check passed.", {"status": "ok", "checks": {"serve": "ok", "mongodb": "ok",
                                                                    "transforms": "ok"}})
READY = example("Every dependency reachable.", {"status": "ok", "checks": {"mongodb": "ok", "rabbitmq": "ok"}})
FAILING = example("A check failed (with the reason).", {"status": "failing", "checks": {
    "mongodb": "failed: ServerSelectionTimeoutError: 127.0.0.1:27017: connection refused"}})
PAGE = {200: {"description": "The web page.", "content": {"text/html": {"example": "<!doctype html>..."}}}}
DELETED = {204: {"description": "Deleted, with every variant."}}


def image_route(app: FastAPI, path: str, **kwargs: Any) -> Callable[[_F], _F]:
    """GET and HEAD for one route: two routes, so each has its own OpenAPI operation id."""

    def register(endpoint: _F) -> _F:
        app.head(path, **kwargs)(endpoint)
        return app.get(path, **kwargs)(endpoint)

    return register


def install(app: FastAPI) -> None:
    """Document what the app really answers: a failed parameter check is our 400, never FastAPI's 422."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            for operations in schema["paths"].values():
                for operation in operations.values():
                    responses = operation["responses"]
                    if responses.get("422", {}).get("description") == "Validation Error":
                        del responses["422"]
                        responses.setdefault("400", errors(400)[400])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
