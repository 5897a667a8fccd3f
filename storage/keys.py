"""How files are named in the store."""

from __future__ import annotations

import re

_IMAGE_ID = re.compile(r"[0-9a-f]{64}")


def is_image_id(value: str) -> bool:
    """An image id is the SHA-256 of the uploaded bytes, in lowercase hex."""
    return bool(_IMAGE_ID.fullmatch(value))


def variant_key(image_id: str, operation: str, **params: str) -> str:
    """Deterministic: the same source, operation and parameters always name the same file."""
    query = "&".join(f"{name}={value}" for name, value in sorted(params.items()))
    return f"{image_id}/{operation}" + (f"?{query}" if query else "")
