"""The one JSON error shape, {"error": {"code": str, "message": str}}, and the one table from a domain
error's code to its HTTP status."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from storage import FileGone
from transforms import ImageError, NotFound, Overloaded, Unavailable

RETRY_AFTER = {"Retry-After": "1"}
DATABASE_RETRY_AFTER = {"Retry-After": "5"}
log = logging.getLogger("ray.serve")

# A domain error's code -> HTTP status (transforms.errors); a code not here is a 400.
STATUS = {"unsupported_format": 415, "not_found": 404, "image_too_large": 422, "image_too_complex": 422,
          "output_too_large": 422, "over_budget": 422, "timeout": 503, "overloaded": 503, "unavailable": 503}


class ApiError(Exception):
    """An HTTP-only refusal raised by the ingress itself (a missing form field, a bad key or signature)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def database_unavailable(exc: ConnectionFailure) -> Unavailable:
    """MongoDB unreachable (down, restarting, partitioned): the client may retry, nothing is lost."""
    return Unavailable(f"the database is unreachable ({type(exc).__name__}); retry shortly")


def domain_error(exc: Exception) -> ImageError | None:
    """The domain error an exception from storage or transforms stands for (None: a fault of ours)."""
    if isinstance(exc, ImageError):
        return exc
    if isinstance(exc, FileGone):  # deleted while it was read: as if it had never been there
        return NotFound(f"deleted: {exc}")
    if isinstance(exc, ConnectionFailure):
        return database_unavailable(exc)
    if isinstance(exc, BackPressureError):  # the transform deployment's queue is full
        return Overloaded("the service is saturated; retry shortly")
    if isinstance(exc, RayActorError):  # a replica died mid-request
        return Unavailable("a transform replica failed; retry shortly")
    return None


def as_api_error(exc: ImageError) -> ApiError:
    status = STATUS.get(exc.code, 400)
    if status != 503:
        return ApiError(status, exc.code, exc.message)
    return ApiError(status, exc.code, exc.message, DATABASE_RETRY_AFTER if exc.code == "unavailable" else RETRY_AFTER)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one JSON error shape."""
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def as_refusal(exc: Exception) -> ApiError:
    """Any exception as the HTTP refusal it stands for; a fault of ours (logged) is a 500."""
    if isinstance(exc, ApiError):
        return exc
    domain = domain_error(exc)
    if domain is not None:
        return as_api_error(domain)
    log.exception("unexpected error", exc_info=exc)
    return ApiError(500, "internal_error", f"unexpected {type(exc).__name__}")


async def send_error(send: Send, error: ApiError) -> None:
    """The JSON error as raw ASGI messages, for the middleware and the image lane (before FastAPI)."""
    body = json.dumps(error_body(error.code, error.message), ensure_ascii=False, separators=(",", ":")).encode()
    extra = [(name.lower().encode(), value.encode()) for name, value in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})


_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(ImageError)
    @app.exception_handler(FileGone)
    @app.exception_handler(ConnectionFailure)
    @app.exception_handler(BackPressureError)
    @app.exception_handler(RayActorError)
    async def _domain(request: Request, exc: Exception) -> JSONResponse:
        return await _api(request, as_api_error(domain_error(exc)))  # type: ignore[arg-type]

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, "bad_request", f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, _STATUS_CODES.get(exc.status_code, "http_error"),
                              str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return await _api(request, as_refusal(exc))
