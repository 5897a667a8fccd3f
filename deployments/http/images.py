"""The images router: upload, list, describe and delete originals, and the image URLs (answered by the image
lane before FastAPI; these routes document them and answer them the same way when they get here)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from deployments.errors import ApiError
from deployments.http import docs
from deployments.http import variant_requests as requests
from deployments.http.answers import Reply
from deployments.http.context import Context, context
from deployments.http.presets import PresetName
from deployments.http.security import check_api_key, check_signature
from deployments.render.variants import VariantRequest, image_record
from storage import StoredFile
from transforms import NotFound
from transforms.formats import MEDIA_TYPES

router = APIRouter()
Ctx = Annotated[Context, Depends(context)]


class UploadResult(BaseModel):
    image_id: str = Field(examples=[docs.EXAMPLE_ID])
    format: str = Field(examples=["JPEG"])
    width: int = Field(examples=[1152])
    height: int = Field(examples=[864])
    bytes: int = Field(examples=[183421])
    blurhash: str = Field(examples=["LKO2?U%2Tw=w]~RBVZRi};RPxuwH"], description="A BlurHash to show while loading.")
    dominant_color: str = Field(examples=["#7a8c5e"], description="The colour most of the image is.")


@router.post("/upload_file", status_code=201, response_model=UploadResult,
             responses={201: docs.example("Stored (or already stored: the same bytes get the same id).",
                                          docs.UPLOADED), **docs.errors(400, 401, 413, 415, 422, 503)})
async def upload_file(ctx: Ctx, image: UploadFile | None = File(None, description="The image file.")) -> JSONResponse:
    """Store an image. Its id is the SHA-256 of its bytes: the same bytes always get the same id."""
    # The API key, content type and size were checked before the body was read (deployments.http.guard).
    if image is None or not hasattr(image, "read"):
        raise ApiError(400, "missing_field", "multipart form field 'image' is required")
    data = await image.read()
    service = ctx.answers.service
    deadline = service.deadline()
    # Validated and stored by the transform deployment (a full decode is no work for the ingress).
    stored = await service.within(deadline, ctx.transformer.ingest.remote(data, deadline))
    # Kept here: the renders that follow an upload (a page's sizes) need not read it back from GridFS.
    service.renderer.hold(stored["image_id"], data, MEDIA_TYPES.get(stored["format"], ""))
    return JSONResponse(stored, status_code=201)


@router.get("/images", responses={200: docs.IMAGES_PAGE, **docs.errors(400)})
async def list_images(ctx: Ctx, limit: int = Query(50, ge=1, le=1000, description="Page size.", examples=[50]),
                      after: str | None = Query(None, description="The last image_id of the previous page.",
                                                examples=[docs.EXAMPLE_ID])) -> JSONResponse:
    """Originals in id order, a page at a time: pass the last id back as `after` for the next page."""
    records = await asyncio.to_thread(ctx.store.list_originals, limit, after)
    items = [image_record(stored) for stored in records]
    return JSONResponse({"items": items, "next": items[-1]["image_id"] if len(items) == limit else None})


async def _original(ctx: Context, image_id: str) -> StoredFile:
    requests.check_id(image_id)
    stored = await asyncio.to_thread(ctx.store.find, image_id)
    if stored is None:
        raise NotFound(f"no image with id {image_id}")
    return stored


@docs.image_route(router, "/{image_id}", responses={200: docs.METADATA, **docs.errors(404, 503)})
async def metadata(image_id: docs.ImageId, ctx: Ctx) -> JSONResponse:
    """An original's metadata, and the keys of its stored variants."""
    stored = await _original(ctx, image_id)
    variants = await asyncio.to_thread(ctx.store.variants, image_id)
    return JSONResponse({**image_record(stored), "uploaded_at": stored.upload_date.isoformat(),
                         "content_type": stored.content_type, "variants": [v.key for v in variants]})


@router.get("/images/{image_id}/variants", responses={200: docs.VARIANTS, **docs.errors(404, 503)})
async def list_variants(image_id: docs.ImageId, ctx: Ctx) -> JSONResponse:
    """An original's stored variants, with format, byte size, dimensions and the URL that serves each."""
    await _original(ctx, image_id)
    variants = await asyncio.to_thread(ctx.store.variants, image_id)
    return JSONResponse({"items": [{
        "key": v.key, "url": f"/{v.key}", "format": v.metadata.get("format"), "content_type": v.content_type,
        "bytes": v.length, "width": v.metadata.get("width"), "height": v.metadata.get("height"),
        "created_at": v.upload_date.isoformat()} for v in variants]})


@router.delete("/{image_id}", status_code=204, responses={**docs.DELETED, **docs.errors(401, 404)})
async def delete(image_id: docs.ImageId, request: Request, ctx: Ctx) -> Response:
    """Delete an original and every variant of it."""
    check_api_key(request, ctx.settings.api_key_list)
    requests.check_id(image_id)
    if not await asyncio.to_thread(ctx.store.delete_image, image_id):
        raise NotFound(f"no image with id {image_id}")
    ctx.answers.forget(image_id)  # other replicas forget it within half a second (their deletion watch)
    return Response(status_code=204)


async def _answer(ctx: Context, wanted: VariantRequest, request: Request) -> Response:
    check_signature(request, ctx.settings.signing_key_list)
    reply = await ctx.answers.answer(wanted, request.headers.get("if-none-match", ""), request.method == "HEAD")
    return response_of(ctx, reply)


def response_of(ctx: Context, reply: Reply) -> Response:
    if reply.stream is not None:
        return StreamingResponse(ctx.store.iter_chunks(reply.stream), headers=reply.headers)
    return Response(reply.body, status_code=reply.status, headers=reply.headers)


@docs.image_route(router, "/{image_id}/auto", response_class=Response,
                  responses={**docs.IMAGE, **docs.errors(403, 404, 503)})
async def auto(image_id: docs.ImageId, request: Request, ctx: Ctx) -> Response:
    """The best format the client's Accept header allows: AVIF, then WebP, else the original's format."""
    response = await _answer(ctx, requests.auto(ctx, image_id, request.headers.get("accept", "")), request)
    response.headers["Vary"] = "Accept"
    return response


@docs.image_route(router, "/{image_id}/process", response_class=Response,
                  responses={**docs.IMAGE, **docs.errors(400, 403, 404, 503)})
async def process(image_id: docs.ImageId, request: Request, ctx: Ctx,
                  ops: str = Query("", description="Steps, e.g. grayscale,mirror,resize:w=800", examples=[
                      "grayscale,mirror,resize:w=800:h=600:fit=cover:g=smart,sharpen:r=1,pad:b=20:color=000000",
                      "trim,background:color=ffffff,crop:w=400:h=400:fx=0.3:fy=0.4",
                      f"thumbnail:size=600,watermark:id={docs.EXAMPLE_ID}:pos=se:opacity=0.5:scale=0.2",
                      "preset:avatar,blur:r=1.5"]),
                  format: str | None = Query(None, description="jpeg, png, webp, avif or gif; default: keep",
                                             examples=["webp"]),
                  quality: str | None = Query(None, description="1-100, for lossy formats", examples=["80"]),
                  progressive: str | None = Query(None, description="1: progressive JPEG", examples=["1"]),
                  strip: str | None = Query(None, description="0: keep the original's EXIF (orientation reset); "
                                            "default 1: no metadata", examples=["0"]),
                  max_bytes: str | None = Query(None, description="lossy formats: the highest quality whose output "
                                                "fits in this many bytes", examples=["50000"])) -> Response:
    """Apply a pipeline of steps (see the README for the grammar) and encode; cached like every variant."""
    output = {"progressive": progressive, "strip": strip, "max_bytes": max_bytes}
    return await _answer(ctx, await requests.processed(ctx, image_id, ops, format, quality, output), request)


@docs.image_route(router, "/{image_id}/preset/{name}", response_class=Response,
                  responses={**docs.IMAGE, **docs.errors(400, 403, 404, 503)})
async def preset(image_id: docs.ImageId, name: PresetName, request: Request, ctx: Ctx) -> Response:
    """The image through a named preset (GET /presets lists them)."""
    return await _answer(ctx, await requests.preset(ctx, image_id, name), request)


@docs.image_route(router, "/{image_id}/{operation}", response_class=Response,
                  responses={**docs.IMAGE, **docs.errors(400, 403, 404, 503)})
async def variant(image_id: docs.ImageId, operation: docs.Operation, request: Request, ctx: Ctx,
                  compression: str | None = Query(None, description="PNG output: fast or small; default from "
                                                  "PROG_IMAGE_PNG_COMPRESSION.", examples=["small"])) -> Response:
    """The image converted by `operation`: jpeg, png, grayscale (keeps the format) or mirror (keeps the format)."""
    return await _answer(ctx, requests.named(ctx, image_id, operation, compression), request)
