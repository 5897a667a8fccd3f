"""The seed's named operations, each a fixed pipeline (see transforms.pipeline)."""

from __future__ import annotations

from transforms.encode import EncodeOptions
from transforms.limits import Limits
from transforms.pipeline import Pipeline, Rendered, Step, run

OPERATIONS: dict[str, Pipeline] = {
    "jpeg": Pipeline((), "JPEG"),
    "png": Pipeline((), "PNG"),
    "grayscale": Pipeline((Step("grayscale"),)),  # keeps the source's format
    "mirror": Pipeline((Step("mirror"),)),
}


def render(data: bytes, operation: str, *, limits: Limits, options: EncodeOptions) -> Rendered:
    """Decode the original, apply one named operation, encode. KeyError for an unknown operation."""
    return run(data, OPERATIONS[operation], limits=limits, options=options)
