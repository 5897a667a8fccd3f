"""API keys for writes, HMAC-SHA256 signed URLs for derived images (imgproxy-style), CORS.

A signed URL carries `exp` (unix seconds) and `sig`, the hex HMAC-SHA256 of
"<path>?<the other query parameters, sorted>&exp=<exp>" under a signing key. The first configured
key signs; every configured key verifies, so keys rotate without breaking issued URLs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import urlencode

from starlette.requests import Request

from deployments.errors import ApiError

_EXPIRY = re.compile(r"[0-9]{1,12}")  # unix seconds, ASCII digits only ('²'.isdigit() is True)
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_BEARER = re.compile(r"Bearer +(\S+)", re.IGNORECASE)


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
    if keys:
        verify_signature(request.url.path, dict(request.query_params), keys)


def verify_signature(path: str, params: dict[str, str], keys: tuple[str, ...]) -> None:
    """Raise 403 unless params carry an unexpired signature of path and params by one of keys."""
    if not keys:
        return
    sig, exp = params.get("sig", ""), params.get("exp", "")
    if not sig or not exp:
        raise ApiError(403, "signature_required", "this URL must be signed (exp and sig parameters)")
    if not _EXPIRY.fullmatch(exp) or not _SIGNATURE.fullmatch(sig):
        raise ApiError(403, "bad_signature", "exp must be unix seconds and sig 64 lowercase hex digits")
    if int(exp) < time.time():
        raise ApiError(403, "signature_expired", "the signed URL has expired")
    if not any(hmac.compare_digest(signature(key, path, params, int(exp)), sig) for key in keys):
        raise ApiError(403, "bad_signature", "the URL's signature does not match")


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "a valid API key is required (X-API-Key or Authorization: Bearer)",
                    {"WWW-Authenticate": "Bearer"})


def api_key_valid(x_api_key: str | None, authorization: str | None, keys: tuple[str, ...]) -> bool:
    """One of keys, in X-API-Key or as `Authorization: Bearer <key>` (nothing else is a key)."""
    bearer = _BEARER.fullmatch(authorization or "")
    given = x_api_key or (bearer.group(1) if bearer else "")
    return bool(given) and any(hmac.compare_digest(given.encode(), key.encode()) for key in keys)


def check_api_key(request: Request, keys: tuple[str, ...]) -> None:
    """Raise 401 unless the request carries one of keys (X-API-Key, or Authorization: Bearer)."""
    if not keys:
        return
    if not api_key_valid(request.headers.get("x-api-key"), request.headers.get("authorization"), keys):
        raise unauthorized()
