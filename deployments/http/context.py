"""What the ingress's plain routers share: set on app.state by the ingress replica when it starts."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from deployments.config import Settings
from deployments.presets import PresetBook
from storage import ImageStore
from storage.jobs import JobStore


@dataclass(frozen=True)
class Context:
    settings: Settings
    store: ImageStore
    jobs: JobStore
    presets: PresetBook


def context(request: Request) -> Context:
    """A FastAPI dependency: this replica's settings and stores."""
    return request.app.state.context
