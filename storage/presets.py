"""Named pipelines set through the API: one document per preset in MongoDB."""

from __future__ import annotations

import datetime as dt
from typing import Any

from storage.gridfs_store import ImageStore


class PresetStore:
    def __init__(self, store: ImageStore) -> None:
        self.presets = store.db["presets"]

    def all(self) -> dict[str, dict[str, Any]]:
        """name -> {"ops", "format", "quality"}."""
        return {doc.pop("_id"): doc for doc in self.presets.find({}, {"updated_at": 0})}

    def put(self, name: str, ops: str, fmt: str | None, quality: int | None) -> None:
        self.presets.replace_one({"_id": name}, {"ops": ops, "format": fmt, "quality": quality,
                                                 "updated_at": dt.datetime.now(dt.UTC)}, upsert=True)

    def delete(self, name: str) -> bool:
        return self.presets.delete_one({"_id": name}).deleted_count == 1
