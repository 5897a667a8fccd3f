"""Batch jobs over HTTP: submit one (published to the job queue, run by the bridge), list, follow.

A job submitted here is the same message a producer would publish to RabbitMQ, so it gets the
same guarantees; its document is created as soon as the broker confirms it, so GET /jobs/{id}
answers at once.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

import pika.exceptions
from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from deployments.batch import amqp
from deployments.batch.messages import JobMessage, check_operation
from deployments.errors import RETRY_AFTER, ApiError
from deployments.http import docs
from deployments.http.context import Context, context
from deployments.http.security import check_api_key

router = APIRouter()
Ctx = Annotated[Context, Depends(context)]


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    doc["job_id"] = doc.pop("_id")
    return jsonable_encoder(doc)


@router.get("/jobs", responses={200: docs.JOBS, **docs.errors(400)})
async def list_jobs(ctx: Ctx, limit: int = Query(50, ge=1, le=500, description="How many.", examples=[50])
                    ) -> JSONResponse:
    """The newest batch jobs first, with state and progress (GET /jobs/{id} has the per-item results)."""
    docs_ = await asyncio.to_thread(ctx.jobs.recent, limit)
    return JSONResponse({"items": [_public(doc) for doc in docs_]})


@router.post("/jobs", status_code=202, responses={202: docs.JOB_SUBMITTED, **docs.errors(400, 401, 404, 503)})
async def submit_job(job: JobMessage, ctx: Ctx, request: Request) -> JSONResponse:
    """Submit a batch job: the JSON a producer publishes to the queue (`prog-image batch schema`).
    Needs the API key when keys are set; every image must exist."""
    check_api_key(request, ctx.settings.api_key_list)
    if not ctx.settings.amqp_url:
        raise ApiError(503, "batch_disabled", "batch jobs are off here (PROG_IMAGE_AMQP_URL is empty)")
    if any("preset:" in op for op in job.operations):  # checked now against the presets there are
        presets = await ctx.presets.current()
        for op in job.operations:
            try:
                check_operation(op, presets)
            except ValueError as exc:
                raise ApiError(400, "bad_request", f"operations: {exc}") from None
    image_ids = [item.image_id for item in job.items]
    found = await asyncio.to_thread(ctx.store.find_many, list(dict.fromkeys(image_ids)))
    missing = [image_id for image_id in dict.fromkeys(image_ids) if image_id not in found]
    if missing:
        raise ApiError(404, "not_found", f"no image with id {', '.join(missing[:5])}" + (" ..." * (len(missing) > 5)))
    job_id = job.job_id or f"web-{uuid.uuid4().hex}"
    body = job.model_copy(update={"job_id": job_id}).model_dump_json().encode()
    try:
        await asyncio.to_thread(amqp.publish, ctx.settings.amqp_url, ctx.settings.amqp_queue, body,
                                message_id=job_id, name="prog-image-ingress")
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise ApiError(503, "unavailable", f"the job queue is unreachable ({type(exc).__name__}); retry shortly",
                       RETRY_AFTER) from None
    # The bridge begins it the same way ($setOnInsert), whichever comes first; a known job id is not run twice.
    doc = await asyncio.to_thread(ctx.jobs.begin, job_id, image_ids, job.operations)
    return JSONResponse({"job_id": job_id, "state": doc["state"], "url": f"/jobs/{job_id}"}, status_code=202)


@router.get("/jobs/{job_id}", responses={200: docs.JOB, **docs.errors(404)})
async def job(job_id: docs.JobId, ctx: Ctx) -> JSONResponse:
    """A batch job's state (queued, running, done or failed), progress and per-item results."""
    doc = await asyncio.to_thread(ctx.jobs.get, job_id)
    if doc is None:
        raise ApiError(404, "not_found", f"no job with id {job_id!r}")
    return JSONResponse(_public(doc))
