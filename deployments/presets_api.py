"""Presets: named pipelines from the configuration (PROG_IMAGE_PRESETS, fixed) or set over HTTP.

A request names one as `GET /{id}/preset/{name}` or as a step, `ops=preset:<name>,...`. Its variant
is keyed by what the preset expands to, so changing a preset never serves the old one's bytes; each
replica re-reads the stored presets at most every PRESETS_TTL_S.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from deployments import api_docs as docs
from deployments.config import Settings
from deployments.context import Context, context
from deployments.errors import ApiError
from deployments.security import check_api_key
from storage.presets import PresetStore
from transforms import PipelineError, parse
from transforms.pipeline import PRESET_NAME, Preset

PRESETS_TTL_S = 1.0
router = APIRouter()
Ctx = Annotated[Context, Depends(context)]
PresetName = Annotated[str, Path(description="Lowercase letters, digits, - and _ (at most 64).",
                                 examples=["avatar"])]


class PresetBody(BaseModel):
    ops: str = Field(description="Steps, as in GET /{id}/process.", examples=["resize:w=128:h=128:fit=cover:g=smart"])
    format: str | None = Field(None, description="jpeg, png, webp, avif or gif; default: keep.", examples=["webp"])
    quality: int | None = Field(None, ge=1, le=100, description="1-100, for lossy formats.", examples=[80])


class PresetBook:
    """The presets a request may name: the configured ones, then the stored ones (re-read every TTL)."""

    def __init__(self, settings: Settings, store: PresetStore) -> None:
        self.fixed = settings.preset_map
        self.store = store
        self.cached: dict[str, Preset] = {}
        self.read_at = float("-inf")

    async def current(self) -> dict[str, Preset]:
        if time.monotonic() - self.read_at > PRESETS_TTL_S:
            self.cached = await asyncio.to_thread(stored_presets, self.store)
            self.read_at = time.monotonic()
        return {**self.cached, **self.fixed}

    def forget(self) -> None:
        self.read_at = float("-inf")


def stored_presets(store: PresetStore) -> dict[str, Preset]:
    """The presets set over HTTP (one query)."""
    return {name: Preset(doc["ops"], doc.get("format"), None if doc.get("quality") is None else str(doc["quality"]))
            for name, doc in store.all().items()}


def all_presets(settings: Settings, store: PresetStore) -> dict[str, Preset]:
    """Stored and configured presets (a configured one wins), read now: for a batch job."""
    return {**stored_presets(store), **settings.preset_map}


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
