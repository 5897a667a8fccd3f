"""Recently used files, kept in the ingress replica's memory: small variants it served, and originals
it took or read.

A hit costs no MongoDB round trip (a variant's, no thread hop either). Safe because stored bytes never
change (an original's id is its content's digest, a variant's pipeline deterministic); only a DELETE
ends one. This replica drops an image's entries when it deletes it, and the others when they see the
deletion (deployments.http.answers polls the deletion log); an entry lives `ttl_s` at most in any case.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from storage import StoredFile


@dataclass(frozen=True)
class Entry:
    data: bytes
    media_type: str
    etag: str
    expires: float
    unstored: StoredFile | None = None  # a variant not stored yet: the file a later use may store it as


class MemoryCache:
    def __init__(self, max_bytes: int, ttl_s: float, max_item_bytes: int = 1 << 20) -> None:
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.max_item_bytes = min(max_item_bytes, max_bytes)
        self.size = 0
        self.entries: OrderedDict[str, Entry] = OrderedDict()  # least recently used first
        self.lock = threading.Lock()  # originals are read and kept by the render threads

    def get(self, key: str) -> Entry | None:
        with self.lock:
            entry = self.entries.get(key)
            if entry is None:
                return None
            if entry.expires <= time.monotonic():
                self._remove(key)
                return None
            self.entries.move_to_end(key)
            return entry

    def put(self, key: str, data: bytes, media_type: str, etag: str, unstored: StoredFile | None = None) -> None:
        if len(data) > self.max_item_bytes:
            return
        with self.lock:
            if key in self.entries:
                self._remove(key)
            self.entries[key] = Entry(data, media_type, etag, time.monotonic() + self.ttl_s, unstored)
            self.size += len(data)
            while self.size > self.max_bytes:
                self._remove(next(iter(self.entries)))

    def drop_image(self, image_id: str) -> None:
        """Forget an image: its original (key: its id) and its variants (keys: '<image id>/...')."""
        with self.lock:
            for key in [key for key in self.entries if key == image_id or key.startswith(f"{image_id}/")]:
                self._remove(key)

    def _remove(self, key: str) -> None:
        self.size -= len(self.entries.pop(key).data)
