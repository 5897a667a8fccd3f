"""The named operations the service offers, and the decode -> operate -> encode pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from transforms.decode import decode, plain_jpeg
from transforms.encode import MEDIA_TYPES, WRITABLE, EncodeOptions, encode
from transforms.grayscale import grayscale
from transforms.jpeg_lossless import mirror_jpeg
from transforms.mirror import mirror


def _identity(pixels: np.ndarray) -> np.ndarray:
    return pixels


@dataclass(frozen=True)
class Operation:
    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    output_format: str | None  # None: keep the source's format when we can write it, else PNG

    def format_for(self, source_format: str) -> str:
        if self.output_format:
            return self.output_format
        return source_format if source_format in WRITABLE else "PNG"


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("jpeg", _identity, "JPEG"),
        Operation("png", _identity, "PNG"),
        Operation("grayscale", grayscale, None),
        Operation("mirror", mirror, None),
    )
}


@dataclass(frozen=True)
class Rendered:
    data: bytes
    format: str

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def render(data: bytes, operation: str, *, max_pixels: int, options: EncodeOptions) -> Rendered:
    """Decode the original, apply one operation, encode. Raises KeyError for an unknown operation."""
    op = OPERATIONS[operation]
    if operation == "mirror" and plain_jpeg(data, max_pixels):
        mirrored = mirror_jpeg(data)  # lossless, in the DCT domain; None when the geometry doesn't allow
        if mirrored is not None:
            return Rendered(mirrored, "JPEG")
    decoded = decode(data, max_pixels)
    fmt = op.format_for(decoded.info.format)
    return Rendered(encode(op.apply(decoded.pixels), fmt, options), fmt)
