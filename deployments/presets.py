"""Presets: named pipelines from the configuration (PROG_IMAGE_PRESETS, fixed) or set over HTTP.

A request names one as `GET /{id}/preset/{name}` or as a step, `ops=preset:<name>,...`. Its variant
is keyed by what the preset expands to, so changing a preset never serves the old one's bytes; each
replica re-reads the stored presets at most every PRESETS_TTL_S.
"""

from __future__ import annotations

import asyncio
import time

from deployments.config import Settings
from storage.presets import PresetStore
from transforms.pipeline import Preset

PRESETS_TTL_S = 1.0


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
