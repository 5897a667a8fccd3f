"""Cheap checks before any body is read, and time limits on reading it.

An ASGI middleware, so it runs before FastAPI parses a form: an upload without a valid API key, of
the wrong content type, declaring too many bytes, or beyond this replica's concurrent uploads is
answered at once, without reading a byte of its body. A body that stops arriving (a pause longer
than upload_idle_s) or takes longer than upload_timeout_s in all is cut off with 408: idle clients
can't hold a replica's request slots. A streamed body is cut off with 413 as soon as it passes
the size limit, never buffered whole.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.errors import RETRY_AFTER, ApiError, send_error
from deployments.http.security import api_key_valid, unauthorized

UPLOAD_PATH = "/upload_file"


@dataclass(frozen=True)
class GuardSettings:
    max_body_bytes: int
    api_keys: tuple[str, ...]
    body_timeout_s: float
    body_idle_s: float
    max_concurrent_uploads: int


class RequestGuard:
    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # app.state.guard (GuardSettings) is set by the ingress from Settings
        self.uploads = 0  # uploads this replica is receiving now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        guard: GuardSettings | None = getattr(self.state, "guard", None)
        if scope["type"] != "http" or guard is None:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        upload = scope["method"] == "POST" and scope["path"].endswith(UPLOAD_PATH)
        refusal = self._refusal(guard, headers, upload)
        if refusal is not None:
            await _error(send, *refusal)
            return
        self.uploads += upload
        try:
            await self._guarded(guard, scope, receive, send)
        finally:
            self.uploads -= upload

    def _refusal(self, guard: GuardSettings, headers: dict[bytes, bytes],
                 upload: bool) -> tuple[int, str, str, dict[str, str]] | None:
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or len(declared) > 15):
            return 400, "bad_request", "Content-Length must be a number of bytes", {}
        if declared is not None and int(declared) > guard.max_body_bytes:
            return 413, "too_large", f"upload is larger than the limit of {guard.max_body_bytes} bytes", {}
        if not upload:
            return None
        if guard.api_keys and not api_key_valid(_text(headers.get(b"x-api-key")),
                                                _text(headers.get(b"authorization")), guard.api_keys):
            error = unauthorized()
            return error.status, error.code, error.message, error.headers or {}
        if not headers.get(b"content-type", b"").lower().startswith(b"multipart/form-data"):
            return 400, "missing_field", "an upload is a multipart/form-data form with the field 'image'", {}
        if self.uploads >= guard.max_concurrent_uploads:
            return 503, "overloaded", f"this replica is receiving {self.uploads} uploads; retry shortly", RETRY_AFTER
        return None

    async def _guarded(self, guard: GuardSettings, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + guard.body_timeout_s
        seen = 0
        body_done = False
        refusal: tuple[int, str, str] | None = None
        replied = False

        async def guarded_receive() -> Message:
            nonlocal seen, body_done, refusal
            if body_done or refusal:  # after the body: disconnect listening, no time limit
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, min(guard.body_idle_s, deadline - loop.time())))
            except TimeoutError:
                refusal = (408, "request_timeout", f"the request body did not arrive in time (limit "
                           f"{guard.body_timeout_s:g} s in all, {guard.body_idle_s:g} s without data)")
                return {"type": "http.disconnect"}  # the app stops reading; its answer is replaced below
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if seen > guard.max_body_bytes:
                    refusal = (413, "too_large", f"upload is larger than the limit of {guard.max_body_bytes} bytes")
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replied
            if refusal is None:
                await send(message)
            elif not replied:  # replace whatever the app makes of a cut-off body
                replied = True
                await _error(send, *refusal, {"Connection": "close"})

        await self.app(scope, guarded_receive, guarded_send)


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


async def _error(send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
    await send_error(send, ApiError(status, code, message, headers))
