"""Liveness and readiness: /healthz checks the whole path, /readyz what the service depends on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from ray.serve.handle import DeploymentHandle

from deployments.http import docs
from deployments.http.context import Context, context

router = APIRouter()
Ctx = Annotated[Context, Depends(context)]


async def check(probe: Callable[[], Awaitable[Any]], timeout_s: float) -> str:
    """'ok', or 'failed: <why>' when the probe raises or takes longer than timeout_s."""
    try:
        await asyncio.wait_for(probe(), timeout_s)
        return "ok"
    except Exception as exc:
        return f"failed: {type(exc).__name__}: {exc}"[:200]


def checks_response(checks: dict[str, str]) -> JSONResponse:
    healthy = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if healthy else "failing", "checks": checks},
                        status_code=200 if healthy else 503)


@router.get("/healthz", responses={200: docs.HEALTHY, 503: docs.FAILING})
async def healthz(ctx: Ctx) -> JSONResponse:
    """Liveness of the whole path: Serve (this answer), MongoDB, and a transform round trip."""
    return checks_response({
        "serve": "ok",
        "mongodb": await check(lambda: asyncio.to_thread(ctx.store.ping), 5),
        "transforms": await check(lambda: ctx.transformer.self_test.remote(), 10),
    })


@router.get("/readyz", responses={200: docs.READY, 503: docs.FAILING})
async def readyz(ctx: Ctx) -> JSONResponse:
    """Readiness: MongoDB reachable and, when batch jobs are configured, the bridge connected to RabbitMQ."""
    checks = {"mongodb": await check(lambda: asyncio.to_thread(ctx.store.ping), 5)}
    if ctx.bridge is not None:
        checks["rabbitmq"] = await check(lambda: _bridge_connected(ctx.bridge), 5)
    return checks_response(checks)


async def _bridge_connected(bridge: DeploymentHandle) -> None:
    if not (await bridge.status.remote())["connected"]:
        raise ConnectionError("the bridge is not connected")
