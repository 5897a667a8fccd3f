"""How files are named in the store."""

from __future__ import annotations

import re

_IMAGE_ID = re.compile(r"[0-9a-f]{64}")


def is_image_id(value: str) -> bool:
    """An image id is the SHA-256 of the uploaded bytes, in lowercase hex."""
    return bool(_IMAGE_ID.fullmatch(value))


def variant_key(image_id: str, operation: str, query: str = "") -> str:
    """Deterministic: the same source, operation and (canonical) parameters always name the same file."""
    return f"{image_id}/{operation}" + (f"?{query}" if query else "")
