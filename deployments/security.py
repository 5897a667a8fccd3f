"""API keys for writes, HMAC-SHA256 signed URLs for derived images (imgproxy-style), CORS.

A signed URL carries `exp` (unix seconds) and `sig`, the hex HMAC-SHA256 of
"<path>?<the other query parameters, sorted>&exp=<exp>" under a signing key. The first configured
key signs; every configured key verifies, so keys rotate without breaking issued URLs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import urlencode

from starlette.requests import Request

from deployments.errors import ApiError


def _payload(path: str, params: dict[str, str], expires: int) -> bytes:
    query = urlencode(sorted((k, v) for k, v in params.items() if k not in ("sig", "exp")))
    return f"{path}?{query}&exp={expires}".encode()


def signature(key: str, path: str, params: dict[str, str], expires: int) -> str:
    return hmac.new(key.encode(), _payload(path, params, expires), hashlib.sha256).hexdigest()


def sign(key: str, path: str, params: dict[str, str] | None = None, ttl_s: int = 3600,
         now: float | None = None) -> str:
    """The signed path-and-query for path with params, valid for ttl_s seconds."""
    params = dict(params or {})
    expires = int((now if now is not None else time.time()) + ttl_s)
    sig = signature(key, path, params, expires)
    return f"{path}?{urlencode(sorted({**params, 'exp': str(expires), 'sig': sig}.items()))}"


def check_signature(request: Request, keys: tuple[str, ...]) -> None:
    """Raise 403 unless the request carries an unexpired signature by one of keys."""
    if not keys:
        return
    params = dict(request.query_params)
    sig, exp = params.get("sig", ""), params.get("exp", "")
    if not sig or not exp.isdigit():
        raise ApiError(403, "signature_required", "this URL must be signed (exp and sig parameters)")
    if int(exp) < time.time():
        raise ApiError(403, "signature_expired", "the signed URL has expired")
    path = request.url.path
    if not any(hmac.compare_digest(signature(key, path, params, int(exp)), sig) for key in keys):
        raise ApiError(403, "bad_signature", "the URL's signature does not match")


def check_api_key(request: Request, keys: tuple[str, ...]) -> None:
    """Raise 401 unless the request carries one of keys (X-API-Key, or Authorization: Bearer)."""
    if not keys:
        return
    given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    if not given or not any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
        raise ApiError(401, "unauthorized", "a valid API key is required (X-API-Key header)",
                       {"WWW-Authenticate": "Bearer"})
