"""Batch job state in MongoDB: one document per job, updated as each item and operation lands."""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

from pymongo import DESCENDING, ReturnDocument, UpdateOne

from storage.gridfs_store import ImageStore


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _field(operation: str) -> str:
    """An operation as a field name: a pipeline's '.' (blur:r=1.5) and '$' would be read as a path."""
    return operation.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def _readable(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """Results keyed by the operations as they were given."""
    for item in (doc or {}).get("items", ()):
        item["results"] = {urllib.parse.unquote(key): value for key, value in item.get("results", {}).items()}
    return doc


class JobStore:
    """States: queued (received), running, done (every result ok) or failed (some result failed)."""

    def __init__(self, store: ImageStore) -> None:
        self.jobs = store.db["jobs"]

    def begin(self, job_id: str, image_ids: list[str], operations: list[str]) -> dict[str, Any]:
        """Create the job, or return it as it is when a redelivery finds it already there."""
        items = [{"image_id": image_id, "results": {}} for image_id in image_ids]
        doc = self.jobs.find_one_and_update(
            {"_id": job_id},
            {"$setOnInsert": {"state": "queued", "operations": operations, "items": items, "created_at": _now(),
                              "progress": {"total": len(items) * len(operations), "done": 0, "failed": 0}}},
            upsert=True, return_document=ReturnDocument.AFTER)
        return _readable(doc)

    def set_state(self, job_id: str, state: str, error: str | None = None) -> None:
        update: dict[str, Any] = {"state": state, "updated_at": _now()}
        if error:
            update["error"] = error
        self.jobs.update_one({"_id": job_id}, {"$set": update})

    def record_many(self, job_id: str, results: list[tuple[int, str, dict[str, Any]]]) -> None:
        """Store results (item index, operation, result) in one round trip; progress counts each (item,
        operation) once, however often it is redelivered."""
        now, updates = _now(), []
        for index, operation, result in results:
            path = f"items.{index}.results.{_field(operation)}"
            counter = "progress.done" if result["status"] == "ok" else "progress.failed"
            updates.append(UpdateOne({"_id": job_id, path: {"$exists": False}},
                                     {"$set": {path: result, "updated_at": now}, "$inc": {counter: 1}}))
        if updates:
            self.jobs.bulk_write(updates, ordered=False)

    def finish(self, job_id: str) -> dict[str, Any]:
        doc = _readable(self.jobs.find_one({"_id": job_id}))
        assert doc is not None
        state = "failed" if doc["progress"]["failed"] else "done"
        self.set_state(job_id, state)
        doc["state"] = state
        return doc

    def get(self, job_id: str) -> dict[str, Any] | None:
        return _readable(self.jobs.find_one({"_id": job_id}))

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest jobs first, without their per-item results."""
        return list(self.jobs.find({}, {"items": 0}).sort("created_at", DESCENDING).limit(limit))
