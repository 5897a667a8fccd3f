"""HTTP caching for image responses: strong ETags, immutable variants."""

from starlette.requests import Request

# A variant of a content-addressed id never changes, so caches may keep it for a year.
CACHE_CONTROL = "public, max-age=31536000, immutable"


def cache_headers(etag: str, hit: bool) -> dict[str, str]:
    """X-Cache says whether the variant was already there (HIT: stored, or in memory) or rendered for this
    request (MISS)."""
    return {"ETag": f'"{etag}"', "Cache-Control": CACHE_CONTROL, "X-Cache": "HIT" if hit else "MISS"}


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match matches the quoted etag (weak comparison, as RFC 9110 asks for this header)."""
    return if_none_match.strip() == "*" or etag in (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))


def not_modified(request: Request, etag: str) -> bool:
    return etag_matches(request.headers.get("if-none-match", ""), etag)
