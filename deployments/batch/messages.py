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
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from deployments.render.variants import pipeline_of
from transforms import OPERATIONS, PipelineError
from transforms.pipeline import Preset

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
    def _known(cls, operations: list[str], info: ValidationInfo) -> list[str]:
        presets = (info.context or {}).get("presets", ANY_PRESET)
        for operation in operations:
            check_operation(operation, presets)
        return list(dict.fromkeys(operations))  # unique, in order


class _AnyPreset(dict[str, Preset]):
    """Where the presets are not known yet (a message checked before it is run): any name is one."""

    def get(self, name: str, default: object = None) -> Preset:  # type: ignore[override]
        return Preset("")


ANY_PRESET: Mapping[str, Preset] = _AnyPreset()


def check_operation(operation: str, presets: Mapping[str, Preset] | None = None) -> None:
    if operation not in OPERATIONS:
        try:
            pipeline_of(operation, presets)
        except PipelineError as exc:
            raise ValueError(str(exc)) from None


def expanded(operation: str, presets: Mapping[str, Preset]) -> str:
    """What the transform deployment renders for an operation: a seed name, or the canonical pipeline with
    any preset expanded (so the renderer needs no presets)."""
    return operation if operation in OPERATIONS else pipeline_of(operation, presets).canonical()


def parse_operations(text: str) -> list[str]:
    ops = [op.strip() for op in text.split(",") if op.strip()]
    unknown = [op for op in ops if op not in OPERATIONS]
    if not ops or unknown:
        raise ValueError(f"operations must be some of {', '.join(OPERATIONS)}; got {text!r}")
    return list(dict.fromkeys(ops))  # unique, in order


def parse_json_job(body: bytes, presets: Mapping[str, Preset] | None = None) -> JobMessage:
    """The message checked against the schema and the grammar (against these presets when given)."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJob(f"body is not JSON: {exc}") from None
    try:
        return JobMessage.model_validate(raw, context=None if presets is None else {"presets": presets})
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
