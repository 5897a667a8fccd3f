"""The one JSON error shape: {"error": {"code": str, "message": str}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from starlette.exceptions import HTTPException as StarletteHTTPException

from storage import FileGone
from transforms import ImageError

RETRY_AFTER = {"Retry-After": "1"}
DATABASE_RETRY_AFTER = {"Retry-After": "5"}
log = logging.getLogger("ray.serve")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def __reduce__(self) -> tuple:
        # Raised in a transform replica, re-raised in the ingress: it must survive pickling.
        return type(self), (self.status, self.code, self.message, self.headers)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def database_unavailable(exc: ConnectionFailure) -> ApiError:
    """MongoDB unreachable (down, restarting, partitioned): the client may retry, nothing is lost."""
    return ApiError(503, "unavailable", f"the database is unreachable ({type(exc).__name__}); retry shortly",
                    DATABASE_RETRY_AFTER)


def image_error(exc: ImageError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message, RETRY_AFTER if exc.status == 503 else None)


def file_gone(exc: FileGone) -> ApiError:
    """A file deleted while it was being read: as if it had never been there."""
    return ApiError(404, "not_found", f"deleted: {exc}")


_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(ImageError)
    async def _image(request: Request, exc: ImageError) -> JSONResponse:
        return await _api(request, image_error(exc))

    @app.exception_handler(FileGone)
    async def _gone(request: Request, exc: FileGone) -> JSONResponse:
        return await _api(request, file_gone(exc))

    @app.exception_handler(ConnectionFailure)
    async def _database(request: Request, exc: ConnectionFailure) -> JSONResponse:
        return await _api(request, database_unavailable(exc))

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
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal_error", f"unexpected {type(exc).__name__}")
