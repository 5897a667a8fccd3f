"""What the ingress's routers and its image lane share: built by the ingress replica when it starts."""

from __future__ import annotations

from dataclasses import dataclass

from ray.serve.handle import DeploymentHandle
from starlette.requests import Request

from deployments.config import Settings
from deployments.http.answers import VariantAnswers
from deployments.presets import PresetBook
from storage import ImageStore
from storage.jobs import JobStore


@dataclass(frozen=True)
class Context:
    settings: Settings
    store: ImageStore
    jobs: JobStore
    presets: PresetBook
    answers: VariantAnswers
    transformer: DeploymentHandle  # the transform deployment: uploads are validated there
    bridge: DeploymentHandle | None  # the batch bridge, when batch jobs are configured


def context(request: Request) -> Context:
    """A FastAPI dependency: this replica's settings, stores and answers."""
    return request.app.state.context
