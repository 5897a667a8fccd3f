"""In-memory stand-ins for the stores, for unit tests of the render service and the job runner without
MongoDB: the calls they make, kept in dicts, and counted."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from storage import FileGone, ImageStore, StoredFile


class MemoryStore:
    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}
        self.data: dict[str, bytes] = {}
        self.calls: Counter[str] = Counter()

    describe = staticmethod(ImageStore.describe)

    def put(self, key: str, data: bytes, *, content_type: str, metadata: dict[str, Any]) -> StoredFile:
        return self.write_many([(self.describe(key, data, content_type=content_type, metadata=metadata), data)],
                               cache=False)[0][0]

    def find(self, key: str) -> StoredFile | None:
        self.calls["find"] += 1
        return self.files.get(key)

    def find_many(self, keys: list[str]) -> dict[str, StoredFile]:
        self.calls["find_many"] += 1
        return {key: self.files[key] for key in keys if key in self.files}

    def read(self, stored: StoredFile) -> bytes:
        self.calls["read"] += 1
        if stored.key not in self.data:
            raise FileGone(stored.key)
        return self.data[stored.key]

    def find_with_data(self, keys: list[str], without_data: tuple[str, ...] = (), inline_max: int = 1 << 20
                       ) -> dict[str, tuple[StoredFile, bytes | None]]:
        self.calls["find_with_data"] += 1
        def data(key: str) -> bytes | None:
            return None if key in without_data or self.files[key].length > inline_max else self.data[key]

        return {key: (self.files[key], data(key)) for key in keys if key in self.files}

    def read_small(self, stored: StoredFile, inline_max: int) -> bytes | None:
        return self.read(stored) if stored.length <= inline_max else None

    def iter_chunks(self, stored: StoredFile) -> Iterator[bytes]:
        data = self.read(stored)
        yield from (data[start:start + 1000] for start in range(0, len(data), 1000))

    def deleted_since(self, since: Any) -> list[str]:
        return []

    def read_many(self, files: list[StoredFile]) -> dict[str, bytes]:
        self.calls["read_many"] += 1
        return {stored.key: self.data[stored.key] for stored in files if stored.key in self.data}

    def write_many(self, files: list[tuple[StoredFile, bytes]], cache: bool) -> list[tuple[StoredFile, bool]]:
        self.calls["write_many"] += 1
        written = []
        for stored, data in files:
            if stored.key in self.files:
                written.append((self.files[stored.key], False))
            else:
                self.files[stored.key], self.data[stored.key] = stored, data
                written.append((stored, True))
        return written

    def delete(self, key: str) -> bool:
        self.calls["delete"] += 1
        self.data.pop(key, None)
        return self.files.pop(key, None) is not None


class MemoryJobs:
    """storage.jobs.JobStore's calls that the job runner makes."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()

    def begin(self, job_id: str, image_ids: list[str], operations: list[str]) -> dict[str, Any]:
        self.calls["begin"] += 1
        self.docs.setdefault(job_id, {
            "_id": job_id, "state": "queued", "operations": operations,
            "items": [{"image_id": image_id, "results": {}} for image_id in image_ids],
            "progress": {"total": len(image_ids) * len(operations), "done": 0, "failed": 0}})
        return copy.deepcopy(self.docs[job_id])

    def set_state(self, job_id: str, state: str) -> None:
        self.calls["set_state"] += 1
        self.docs[job_id]["state"] = state

    def record_many(self, job_id: str, results: list[tuple[int, str, dict[str, Any]]]) -> None:
        self.calls["record_many"] += 1
        doc = self.docs[job_id]
        for index, operation, result in results:
            if operation not in doc["items"][index]["results"]:
                doc["items"][index]["results"][operation] = result
                doc["progress"]["done" if result["status"] == "ok" else "failed"] += 1

    def finish(self, job_id: str) -> dict[str, Any]:
        self.calls["finish"] += 1
        doc = self.docs[job_id]
        doc["state"] = "failed" if doc["progress"]["failed"] else "done"
        return copy.deepcopy(doc)


def local_transformer(service: Any) -> Any:
    """A stand-in for the transform deployment's handle: render_items.remote() runs the service here."""
    return SimpleNamespace(render_items=SimpleNamespace(
        remote=lambda *args: asyncio.ensure_future(asyncio.to_thread(service.render_items, *args))))
