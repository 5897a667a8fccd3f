"""The batch job message: schema, validation and the deterministic job id.

A JSON job (content_type application/json):

    {"job_id": "optional string", "items": [{"image_id": "<64 hex>"}, ...],
     "operations": ["jpeg", "png", "grayscale", "mirror", "ops=resize:w=200&format=webp"]}

or a single image (content_type image/*) with the header `x-operations: png,grayscale`.
`prog-image batch schema` prints the JSON Schema.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from transforms import OPERATIONS, Pipeline, PipelineError, parse

MAX_ITEMS = 10_000
MAX_OPERATIONS = 20


class InvalidJob(Exception):
    """The message can never succeed: it is dead-lettered with this reason, not retried."""


class JobItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_id: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="An uploaded image's id.")]


class JobMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    job_id: Annotated[str | None, Field(default=None, min_length=1, max_length=128,
                                        pattern=r"^[A-Za-z0-9._:-]+$")] = None
    items: Annotated[list[JobItem], Field(min_length=1, max_length=MAX_ITEMS)]
    operations: Annotated[list[str], Field(min_length=1, max_length=MAX_OPERATIONS, description=(
        f"Any of {', '.join(OPERATIONS)}, or a pipeline as the query of GET /{{id}}/process, "
        "e.g. ops=resize:w=200:h=200:fit=cover:g=smart&format=webp&quality=80."))]

    @field_validator("operations")
    @classmethod
    def _known(cls, operations: list[str]) -> list[str]:
        for operation in operations:
            check_operation(operation)
        return list(dict.fromkeys(operations))  # unique, in order


def pipeline_of(operation: str) -> Pipeline:
    """A job's pipeline operation (the query of GET /{id}/process) parsed; PipelineError if it is not one."""
    params = dict(urllib.parse.parse_qsl(operation, keep_blank_values=True))
    unknown = set(params) - {"ops", "format", "quality", "progressive", "strip", "max_bytes"}
    if "ops" not in params or unknown:
        raise PipelineError(f"{operation!r} is neither one of {', '.join(OPERATIONS)} nor ops=...[&format=...]")
    return parse(params.pop("ops"), params.pop("format", None), params.pop("quality", None), **params)


def check_operation(operation: str) -> None:
    if operation not in OPERATIONS:
        try:
            pipeline_of(operation)
        except PipelineError as exc:
            raise ValueError(str(exc)) from None


def parse_operations(text: str) -> list[str]:
    ops = [op.strip() for op in text.split(",") if op.strip()]
    unknown = [op for op in ops if op not in OPERATIONS]
    if not ops or unknown:
        raise ValueError(f"operations must be some of {', '.join(OPERATIONS)}; got {text!r}")
    return list(dict.fromkeys(ops))  # unique, in order


def parse_json_job(body: bytes) -> JobMessage:
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJob(f"body is not JSON: {exc}") from None
    try:
        return JobMessage.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise InvalidJob(f"schema violation at {where}: {first['msg']}") from None


def derived_job_id(message_id: str | None, body: bytes, extra: str = "") -> str:
    """Without a job_id, the message id or the body's hash names the job, so a redelivery is the same job."""
    if message_id:
        return f"msg-{message_id}"
    return "sha-" + hashlib.sha256(body + extra.encode()).hexdigest()[:32]


def schema() -> dict[str, Any]:
    return JobMessage.model_json_schema()
