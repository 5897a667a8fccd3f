"""What an image URL asks for, as a VariantRequest: one parser for the image lane and the FastAPI routes that
document the same URLs.

    /{image_id}/{operation}        a named operation (jpeg, png, grayscale, mirror); ?compression= for PNG
    /{image_id}/process?ops=...    a pipeline, with format, quality, progressive, strip and max_bytes
    /{image_id}/auto               the best format the Accept header allows
    /{image_id}/preset/{name}      a named pipeline
"""

from __future__ import annotations

from deployments.errors import ApiError
from deployments.http.context import Context
from deployments.render.variants import VariantRequest, named_request, pipeline_request
from storage.keys import is_image_id
from transforms import OPERATIONS, Pipeline, parse
from transforms.encode import PNG_COMPRESSIONS


def check_id(image_id: str) -> None:
    if not is_image_id(image_id):
        raise ApiError(404, "not_found", f"no image with id {image_id!r}: ids are 64 hex characters")


def named(ctx: Context, image_id: str, operation: str, compression: str | None) -> VariantRequest:
    if compression is not None and compression not in PNG_COMPRESSIONS:
        raise ApiError(400, "bad_parameter", f"compression must be one of {', '.join(PNG_COMPRESSIONS)}")
    check_id(image_id)
    if operation not in OPERATIONS:
        raise ApiError(404, "unknown_operation", f"unknown operation {operation!r}; one of {', '.join(OPERATIONS)}")
    return named_request(ctx.settings, image_id, operation, compression)


async def processed(ctx: Context, image_id: str, ops: str, fmt: str | None, quality: str | None,
                    output: dict[str, str | None] | None = None) -> VariantRequest:
    check_id(image_id)
    presets = await ctx.presets.current() if "preset:" in ops else None
    return pipeline_request(ctx.settings, image_id, parse(ops, fmt, quality, presets, **(output or {})))


def auto(ctx: Context, image_id: str, accept: str) -> VariantRequest:
    check_id(image_id)
    fmt = "AVIF" if "image/avif" in accept else "WEBP" if "image/webp" in accept else None
    return pipeline_request(ctx.settings, image_id, Pipeline((), fmt), "auto")


async def preset(ctx: Context, image_id: str, name: str) -> VariantRequest:
    return await processed(ctx, image_id, f"preset:{name}", None, None)
