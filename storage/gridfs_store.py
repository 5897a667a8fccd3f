"""Originals and variants in MongoDB GridFS, addressed by key.

A key is the file's GridFS filename and is unique (a unique index): an original's key is its
content id, a variant's is "<image id>/<operation>". Writing a key that exists stores nothing,
so redelivered jobs and concurrent first requests never duplicate a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gridfs
import gridfs.errors
from bson import ObjectId
from pymongo import ASCENDING, MongoClient
from pymongo.errors import BulkWriteError, CollectionInvalid
from pymongo.write_concern import WriteConcern

_CHUNK_BYTES = 1024 * 1024  # fewer, larger chunks than GridFS's 255 KiB: fewer round trips
DELETIONS_KEPT_S = 3600
_DUPLICATE_KEY = 11000


class FileGone(LookupError):
    """The file was deleted while it was being read."""


@dataclass(frozen=True)
class StoredFile:
    key: str
    file_id: ObjectId
    length: int
    content_type: str
    etag: str
    metadata: dict[str, Any]
    upload_date: dt.datetime


def content_id(data: bytes) -> str:
    """The content-derived id: the same bytes always get the same id."""
    return hashlib.sha256(data).hexdigest()


@functools.cache
def mongo_client(url: str) -> MongoClient:
    """One MongoClient (and its connection pool) per process and URL.

    While MongoDB is unreachable an operation fails after 2 s (the service answers 503), and the
    driver looks for the server every second, so it is used again within about a second of its return.
    """
    return MongoClient(url, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000, socketTimeoutMS=60_000,
                       heartbeatFrequencyMS=1000, tz_aware=True)


class ImageStore:
    def __init__(self, mongo_url: str, database: str = "prog_image") -> None:
        # Journaled, majority-acknowledged writes: an acknowledged upload survives a crash.
        self.db = mongo_client(mongo_url).get_database(
            database, write_concern=WriteConcern(w="majority", j=True))
        self.files = self.db["fs.files"]
        self.chunks = self.db["fs.chunks"]
        self.bucket = gridfs.GridFSBucket(self.db, chunk_size_bytes=_CHUNK_BYTES)
        # Cached variants can be rendered again: acknowledged by the primary without waiting for the
        # journal (which is written in order, so a files document never outlives its chunks).
        cache_db = self.db.with_options(write_concern=WriteConcern(w=1))
        self.cache_files, self.cache_chunks = cache_db["fs.files"], cache_db["fs.chunks"]
        # Deleted image ids, for a while: other processes drop what they hold in memory of them.
        self.deletions = self.db["deletions"]
        self._indexed = False

    def ensure_indexes(self) -> None:
        """Create the chunks collection and the indexes (idempotent). Done before the first write of each
        process, not at start: a process must start while MongoDB is down."""
        if not self.db.list_collection_names(filter={"name": "fs.chunks"}):
            # Image bytes are compressed already: WiredTiger's snappy would only spend the server's CPU
            # (bench/batch.py: most of mongod's CPU while a job stored 2 MB of variants per image).
            with contextlib.suppress(CollectionInvalid):  # another process made it first
                self.db.create_collection("fs.chunks", storageEngine={
                    "wiredTiger": {"configString": "block_compressor=none"}})
        self.files.create_index([("filename", ASCENDING)], unique=True, name="key_unique")
        self.files.create_index([("metadata.source", ASCENDING)], name="by_source")
        self.chunks.create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True,
                                 name="files_id_1_n_1")
        self.deletions.create_index([("at", ASCENDING)], expireAfterSeconds=DELETIONS_KEPT_S, name="expiry")
        self._indexed = True

    def ping(self) -> None:
        self.db.client.admin.command("ping")

    def find(self, key: str) -> StoredFile | None:
        doc = self.files.find_one({"filename": key})
        return _stored(doc) if doc else None

    def put(self, key: str, data: bytes, *, content_type: str, metadata: dict[str, Any] | None = None,
            cache: bool = False, etag: str | None = None) -> tuple[StoredFile, bool]:
        """Store data under key unless the key exists. Returns (file, created).

        cache=True is for variants, which can be rendered again: no journal wait, and no lookup first
        (the caller has just looked; the unique key still refuses a second copy)."""
        if not cache:
            existing = self.find(key)
            if existing:
                return existing, False
        return self.write(self.describe(key, data, content_type=content_type, metadata=metadata, etag=etag), data,
                          cache)

    @staticmethod
    def describe(key: str, data: bytes, *, content_type: str, metadata: dict[str, Any] | None = None,
                 etag: str | None = None) -> StoredFile:
        """The file that write() stores: known before it is written, so a variant can be answered first.
        etag: names these bytes for HTTP caches: a digest already at hand (an original's content id), else
        the new file's id. A stored file never changes, so its id is a strong validator, with no pass over
        the data (a BLAKE2b of a batch item's 2 MB of variants cost 2 ms)."""
        file_id = ObjectId()
        meta = {**(metadata or {}), "content_type": content_type, "etag": etag or str(file_id)}
        now = dt.datetime.now(dt.UTC)
        uploaded = now.replace(microsecond=now.microsecond // 1000 * 1000)  # what MongoDB keeps: milliseconds
        return StoredFile(key, file_id, len(data), content_type, meta["etag"], meta, uploaded)

    def write(self, stored: StoredFile, data: bytes, cache: bool) -> tuple[StoredFile, bool]:
        """Write a described file unless its key exists (then the existing one wins). Returns (file, created)."""
        return self.write_many([(stored, data)], cache)[0]

    def write_many(self, files: list[tuple[StoredFile, bytes]], cache: bool) -> list[tuple[StoredFile, bool]]:
        """Write described files, each unless its key exists (then the existing one wins), in two round trips
        for all of them: their chunks, then their files documents last, as the GridFS spec lays them out, so
        a key becomes visible only when complete. Written here rather than with GridFSBucket, whose every
        upload first queries both collections to check their indexes (ensure_indexes has made them).
        Returns (file, created) for each, in order."""
        if not files:
            return []
        if not self._indexed:  # the unique key is what refuses a second copy: it must exist first
            self.ensure_indexes()
        files_coll, chunks = (self.cache_files, self.cache_chunks) if cache else (self.files, self.chunks)
        ids = [stored.file_id for stored, _ in files]
        try:
            pieces = [{"files_id": stored.file_id, "n": n, "data": data[start:start + _CHUNK_BYTES]}
                      for stored, data in files for n, start in enumerate(range(0, len(data), _CHUNK_BYTES))]
            if pieces:
                chunks.insert_many(pieces)
            files_coll.insert_many([{"_id": stored.file_id, "length": len(data), "chunkSize": _CHUNK_BYTES,
                                     "uploadDate": stored.upload_date, "filename": stored.key,
                                     "metadata": stored.metadata} for stored, data in files], ordered=False)
        except BulkWriteError as exc:
            others = {error["index"] for error in exc.details["writeErrors"] if error["code"] == _DUPLICATE_KEY}
            if len(others) < len(exc.details["writeErrors"]):
                self.chunks.delete_many({"files_id": {"$in": ids}})  # not only duplicates: nothing is kept
                raise
            # Someone stored these keys first: drop our chunks of them and use theirs.
            self.chunks.delete_many({"files_id": {"$in": [ids[i] for i in others]}})
            winners = self.find_many([files[i][0].key for i in others])
            if len(winners) < len(others):  # deleted again since: nothing to point at
                raise
            return [(winners[stored.key], False) if i in others else (stored, True)
                    for i, (stored, _) in enumerate(files)]
        except BaseException:
            self.chunks.delete_many({"files_id": {"$in": ids}})
            raise
        return [(stored, True) for stored, _ in files]

    def find_many(self, keys: list[str]) -> dict[str, StoredFile]:
        """The files among keys that exist, by key: one round trip for several lookups."""
        return {doc["filename"]: _stored(doc) for doc in self.files.find({"filename": {"$in": keys}})}

    def find_with_data(self, keys: list[str], without_data: tuple[str, ...] = (), inline_max: int = _CHUNK_BYTES
                       ) -> dict[str, tuple[StoredFile, bytes | None]]:
        """The files among keys that exist, by key, each with its content when it is at most inline_max bytes
        (else None, as for the keys in without_data): lookups and reads in one round trip."""
        chunks = -(-inline_max // _CHUNK_BYTES)
        found = {}
        for doc in self.files.aggregate([
                {"$match": {"filename": {"$in": keys}}},
                # The join on files_id uses the chunks' index; the $expr only filters what it joined.
                {"$lookup": {"from": "fs.chunks", "localField": "_id", "foreignField": "files_id", "as": "chunks",
                             "let": {"wanted": {"$and": [{"$lte": ["$length", inline_max]},
                                                         {"$not": [{"$in": ["$filename", list(without_data)]}]}]}},
                             "pipeline": [{"$match": {"n": {"$lt": chunks}, "$expr": "$$wanted"}},
                                          {"$project": {"_id": 0, "n": 1, "data": 1}}]}}]):
            data = b"".join(chunk["data"] for chunk in sorted(doc.pop("chunks"), key=lambda chunk: chunk["n"]))
            found[doc["filename"]] = _stored(doc), data if len(data) == doc["length"] and data else None
        return found

    def read_small(self, stored: StoredFile, inline_max: int) -> bytes | None:
        """The file's content when it is at most inline_max bytes (else None: stream it)."""
        return self.read(stored) if stored.length <= inline_max else None

    def read(self, stored: StoredFile) -> bytes:
        data = b"".join(self.iter_chunks(stored))
        if len(data) != stored.length:
            if self.files.find_one({"_id": stored.file_id}, {"_id": 1}) is None:
                raise FileGone(f"{stored.key} was deleted")
            raise OSError(f"GridFS file {stored.key} is incomplete: {len(data)} of {stored.length} bytes")
        return data

    def read_many(self, files: list[StoredFile]) -> dict[str, bytes]:
        """Several files' contents by key, in one query; files deleted meanwhile are left out."""
        pieces: dict[ObjectId, list[bytes]] = {stored.file_id: [] for stored in files}
        for chunk in self.chunks.find({"files_id": {"$in": list(pieces)}}, {"_id": 0, "files_id": 1, "data": 1}
                                      ).sort([("files_id", ASCENDING), ("n", ASCENDING)]):
            pieces[chunk["files_id"]].append(chunk["data"])
        out = {}
        for stored in files:
            data = b"".join(pieces[stored.file_id])
            if len(data) == stored.length:
                out[stored.key] = data
            elif data:  # chunks there but not all of them: not a deletion
                raise OSError(f"GridFS file {stored.key} is incomplete: {len(data)} of {stored.length} bytes")
        return out

    def iter_chunks(self, stored: StoredFile) -> Iterator[bytes]:
        """Stream a file chunk by chunk, never holding it whole (one query; the files document is known)."""
        cursor = self.chunks.find({"files_id": stored.file_id}, {"data": 1, "_id": 0}).sort("n", ASCENDING)
        for chunk in cursor:
            yield chunk["data"]

    def list_originals(self, limit: int, after: str | None = None) -> list[StoredFile]:
        query: dict[str, Any] = {"metadata.kind": "original"}
        if after:
            query["filename"] = {"$gt": after}
        return [_stored(doc) for doc in self.files.find(query).sort("filename", ASCENDING).limit(limit)]

    def variants(self, image_id: str) -> list[StoredFile]:
        """An original's stored variants, by key."""
        return [_stored(doc) for doc in self.files.find({"metadata.source": image_id}).sort("filename", ASCENDING)]

    def delete_image(self, image_id: str) -> bool:
        """Delete an original and all its variants; False if there was no original.

        The original goes first, then every variant found: a render storing a variant meanwhile checks
        for the original after its write (see deployments.render.variants), so either this listing sees the
        variant or the render sees the original gone and removes it. A failure midway is finished by
        repeating the call. The deletion is logged for other processes' memory caches."""
        existed = self.delete(image_id)
        for doc in self.files.find({"metadata.source": image_id}, {"_id": 1}):
            self._delete_file(doc["_id"])
        self.deletions.insert_one({"image_id": image_id, "at": dt.datetime.now(dt.UTC)})
        return existed

    def deleted_since(self, since: dt.datetime) -> list[str]:
        """Image ids deleted at or after since (by any process)."""
        return [doc["image_id"] for doc in self.deletions.find({"at": {"$gte": since}}, {"image_id": 1})]

    def delete(self, key: str) -> bool:
        stored = self.find(key)
        if stored is None:
            return False
        self._delete_file(stored.file_id)
        return True

    def _delete_file(self, file_id: ObjectId) -> None:
        with contextlib.suppress(gridfs.errors.NoFile):  # another process deleted it first
            self.bucket.delete(file_id)

    def count(self, key: str) -> int:
        return self.files.count_documents({"filename": key})


def _stored(doc: dict[str, Any]) -> StoredFile:
    meta = doc.get("metadata") or {}
    return StoredFile(key=doc["filename"], file_id=doc["_id"], length=doc["length"],
                      content_type=meta.get("content_type", "application/octet-stream"),
                      etag=meta.get("etag") or meta.get("sha256", ""),  # named sha256 before 2026-12
                      metadata=meta, upload_date=doc["uploadDate"])
