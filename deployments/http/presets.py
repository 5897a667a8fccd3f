"""The presets router: list, set and delete the named pipelines (deployments.presets holds them)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from deployments.errors import ApiError
from deployments.http import docs
from deployments.http.context import Context, context
from deployments.http.security import check_api_key
from transforms import PipelineError, parse
from transforms.pipeline import PRESET_NAME, Preset

router = APIRouter()
Ctx = Annotated[Context, Depends(context)]
PresetName = Annotated[str, Path(description="Lowercase letters, digits, - and _ (at most 64).",
                                 examples=["avatar"])]


class PresetBody(BaseModel):
    ops: str = Field(description="Steps, as in GET /{id}/process.", examples=["resize:w=128:h=128:fit=cover:g=smart"])
    format: str | None = Field(None, description="jpeg, png, webp, avif or gif; default: keep.", examples=["webp"])
    quality: int | None = Field(None, ge=1, le=100, description="1-100, for lossy formats.", examples=[80])


def _describe(preset: Preset, fixed: bool) -> dict[str, object]:
    return {"ops": preset.ops, "format": preset.format, "quality": preset.quality and int(preset.quality),
            "fixed": fixed}


@router.get("/presets", responses={200: docs.PRESETS})
async def list_presets(ctx: Ctx) -> JSONResponse:
    """Every preset; `fixed` ones come from PROG_IMAGE_PRESETS and can't be changed over HTTP."""
    book = ctx.presets
    current = await book.current()
    return JSONResponse({name: _describe(preset, name in book.fixed) for name, preset in sorted(current.items())})


@router.put("/presets/{name}", status_code=204, responses={204: {"description": "Stored."},
                                                          **docs.errors(400, 401, 409)})
async def put_preset(name: PresetName, body: PresetBody, ctx: Ctx, request: Request) -> Response:
    """Create or change a preset (API key required when keys are set). Its steps are checked now."""
    check_api_key(request, ctx.settings.api_key_list)
    if not PRESET_NAME.fullmatch(name):
        raise ApiError(400, "bad_request", "a preset name is lowercase letters, digits, - and _ (at most 64)")
    if name in ctx.presets.fixed:
        raise ApiError(409, "preset_fixed", f"preset {name!r} comes from PROG_IMAGE_PRESETS")
    try:
        parse(body.ops, body.format, None if body.quality is None else str(body.quality))
    except PipelineError as exc:
        raise ApiError(400, "bad_pipeline", str(exc)) from None
    await asyncio.to_thread(ctx.presets.store.put, name, body.ops, body.format, body.quality)
    ctx.presets.forget()
    return Response(status_code=204)


@router.delete("/presets/{name}", status_code=204, responses={204: {"description": "Deleted."},
                                                             **docs.errors(401, 404, 409)})
async def delete_preset(name: PresetName, ctx: Ctx, request: Request) -> Response:
    """Delete a stored preset (API key required when keys are set). Its variants stay: they are keyed by
    the steps they were made with."""
    check_api_key(request, ctx.settings.api_key_list)
    if name in ctx.presets.fixed:
        raise ApiError(409, "preset_fixed", f"preset {name!r} comes from PROG_IMAGE_PRESETS")
    if not await asyncio.to_thread(ctx.presets.store.delete, name):
        raise ApiError(404, "not_found", f"no preset {name!r}")
    ctx.presets.forget()
    return Response(status_code=204)
