"""The GridFS store on the real mongod: files are standard GridFS, one per key, whatever the races."""

from __future__ import annotations

import os
import threading

import gridfs

from storage import ImageStore


def test_files_are_standard_gridfs_and_stored_once(store: ImageStore):
    data = os.urandom(2 * 1024 * 1024 + 123)  # three chunks, the last one short
    for cache in (False, True):
        key = f"storage-test-{cache}"
        stored, created = store.put(key, data, content_type="image/png", metadata={"kind": "test"}, cache=cache)
        assert created and stored.length == len(data) and stored.key == key
        # Any GridFS client reads it: the layout is the GridFS spec's.
        assert gridfs.GridFSBucket(store.db).open_download_stream_by_name(key).read() == data
        found = store.find(key)
        assert found.file_id == stored.file_id and found.etag == stored.etag and store.read(found) == data
        again, created = store.put(key, b"other bytes", content_type="image/png", cache=cache)
        assert not created and again.file_id == stored.file_id and store.count(key) == 1
    empty, _ = store.put("storage-test-empty", b"", content_type="image/png")
    assert store.read(empty) == b""


def test_racing_writers_of_one_key_leave_one_file_and_no_orphan_chunks(settings):
    # A database of its own: the session's database also takes the service's background variant
    # stores, whose chunks briefly precede their file document.
    store = ImageStore(settings.mongo_url, f"{settings.mongo_db}_race")
    store.ensure_indexes()
    key = "storage-test-race"
    results = []
    barrier = threading.Barrier(6)

    def write(i: int) -> None:
        barrier.wait()
        results.append(store.put(key, bytes([i]) * 300_000, content_type="image/png", cache=True))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.count(key) == 1 and sum(created for _, created in results) == 1
    winner = store.find(key)
    assert {stored.file_id for stored, _ in results} == {winner.file_id}
    file_ids = {doc["_id"] for doc in store.files.find({}, {"_id": 1})}
    assert set(store.chunks.distinct("files_id")) <= file_ids  # the losers' chunks are gone


def test_a_described_file_is_what_write_stores(store: ImageStore):
    """A variant is answered from its description before it is written: the two must agree."""
    data = os.urandom(5000)
    described = store.describe("storage-test-described", data, content_type="image/webp", metadata={"kind": "t"})
    assert store.find("storage-test-described") is None  # describing writes nothing
    written, created = store.write(described, data, cache=True)
    assert created and written == described
    assert store.find("storage-test-described") == described  # same id, date (ms), hash and metadata
    assert store.find_many(["storage-test-described", "storage-test-none"]) == {"storage-test-described": described}
    assert store.read_small(described, 4999) is None and store.read_small(described, 5000) == data


def test_find_with_data_reads_small_files_in_the_lookup(store: ImageStore):
    """The lookup and the reads of a render in one round trip: small files come with their bytes, large ones
    (several chunks beyond the limit) and those asked without data come without."""
    small, large = os.urandom(3000), os.urandom(2 * 1024 * 1024 + 7)  # one chunk, and three
    for key, data in (("storage-test-small", small), ("storage-test-large", large), ("storage-test-held", small)):
        store.write(store.describe(key, data, content_type="image/png"), data, cache=True)
    found = store.find_with_data(["storage-test-small", "storage-test-large", "storage-test-held", "storage-test-no"],
                                 without_data=("storage-test-held",), inline_max=4 * 1024 * 1024)
    assert set(found) == {"storage-test-small", "storage-test-large", "storage-test-held"}
    assert found["storage-test-small"] == (store.find("storage-test-small"), small)
    assert found["storage-test-large"][1] == large  # three chunks, in order
    assert found["storage-test-held"][1] is None
    assert store.find_with_data(["storage-test-large"], inline_max=1024 * 1024)["storage-test-large"][1] is None
