"""The render service's batch items and the job runner, on in-memory stores: no Ray, MongoDB or RabbitMQ."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pika
import pytest

from deployments.batch.bridge import JobRunner
from deployments.config import Settings
from deployments.render.service import RenderService
from deployments.render.variants import job_request
from storage import content_id
from tests.images import encoded, photo, pixels_of
from tests.memory_store import MemoryJobs, MemoryStore, local_transformer
from transforms import run

SETTINGS = Settings(mongo_url="mongodb://unused", amqp_url="", http_port=8000, render_memory_mb=256)
SEED = ["jpeg", "png", "grayscale", "mirror"]


@pytest.fixture
def memory() -> MemoryStore:
    return MemoryStore()


def original(memory: MemoryStore, seed: int, size: tuple[int, int] = (320, 240)) -> str:
    data = encoded(photo(*size, seed=seed), "JPEG", quality=90)
    memory.put(content_id(data), data, content_type="image/jpeg",
               metadata={"kind": "original", "format": "JPEG", "width": size[0], "height": size[1]})
    return content_id(data)


def test_batch_items_render_every_operation_from_one_read_and_are_stored_in_bulk(memory):
    service = RenderService(SETTINGS, memory, "test")
    ids = [original(memory, 1), original(memory, 2)]
    memory.calls.clear()
    outcomes = service.render_items(ids, SEED, float("inf"))
    assert [[o["status"] for o in item] for item in outcomes] == [["ok"] * 4] * 2
    # One lookup, one read, one write per original (while the next renders), one orphan check.
    assert memory.calls == {"find_many": 2, "read_many": 1, "write_many": 2}
    for image_id, item in zip(ids, outcomes, strict=True):
        for op, outcome in zip(SEED, item, strict=True):
            wanted = job_request(SETTINGS, image_id, op)
            assert outcome["variant_id"] == wanted.key and outcome["rendered_by"] == "test"
            alone = run(memory.data[image_id], wanted.pipeline, limits=SETTINGS.limits, options=wanted.options).data
            assert memory.data[wanted.key] == alone  # the very bytes the same URL renders over HTTP
    # Again: everything is found stored; nothing is read, rendered or written.
    memory.calls.clear()
    assert service.render_items(ids, SEED, float("inf")) == outcomes
    assert memory.calls == {"find_many": 1}


def test_a_batch_item_fails_alone_what_cannot_apply(memory):
    service = RenderService(SETTINGS, memory, "test")
    image_id = original(memory, 2, (100, 80))
    ops = ["ops=crop:x=90:y=0:w=50:h=10", "mirror"]
    [crop, mirror], [gone, _] = service.render_items([image_id, "0" * 64], ops, float("inf"))
    assert crop["status"] == "failed" and crop["error"].startswith("bad_pipeline")
    assert mirror["status"] == "ok" and memory.find(mirror["variant_id"]) is not None
    assert gone["status"] == "failed" and gone["error"].startswith("not_found")


def test_a_variant_of_an_original_deleted_meanwhile_is_not_kept(memory):
    service = RenderService(SETTINGS, memory, "test")
    image_id = original(memory, 3)
    stored = memory.describe(f"{image_id}/png", b"bytes", content_type="image/png",
                             metadata={"kind": "variant", "source": image_id})
    memory.delete(image_id)
    service.keep(stored, b"bytes")
    assert memory.find(stored.key) is None


def run_job(memory: MemoryStore, jobs: MemoryJobs, message: dict, transformer=None, replicas=lambda: 2) -> dict:
    transformer = transformer or local_transformer(RenderService(SETTINGS, memory, "test"))

    async def main() -> dict:
        runner = JobRunner(transformer, SETTINGS, asyncio.get_running_loop(), memory, jobs, replicas)
        properties = pika.BasicProperties(content_type="application/json")
        return await asyncio.to_thread(runner.run, properties, json.dumps(message).encode())

    return asyncio.run(main())


def test_a_job_stores_every_result_writes_progress_in_bulk_and_a_redelivery_stores_nothing_twice(memory):
    jobs = MemoryJobs()
    ids = [original(memory, 10 + i) for i in range(6)]
    memory.calls.clear()
    message = {"job_id": "j1", "items": [{"image_id": i} for i in ids], "operations": SEED}
    result = run_job(memory, jobs, message)
    assert result["state"] == "done" and result["progress"] == {"total": 24, "done": 24, "failed": 0}
    item = result["items"][0]["results"]["mirror"]
    assert item["url"].endswith(f"/{ids[0]}/mirror")
    mirrored, source = pixels_of(memory.data[item["variant_id"]]).astype(int), pixels_of(memory.data[ids[0]])
    assert np.abs(mirrored - source[:, ::-1]).mean() < 8 < 20 < np.abs(mirrored - source).mean()  # re-encoded
    # The job's originals in one query; then per call of up to 8 items a lookup and an orphan check.
    assert memory.calls["find_many"] <= 1 + 2 * 6 and memory.calls["write_many"] == 6
    assert jobs.calls["record_many"] <= 7  # at most once per call and every 0.25 s, and once at the end
    writes = memory.calls["write_many"]
    assert run_job(memory, jobs, message) == result  # redelivered after it finished: the same answer
    assert memory.calls["write_many"] == writes


def test_a_job_naming_an_unknown_image_is_refused_before_any_work(memory):
    from deployments.batch.messages import InvalidJob

    with pytest.raises(InvalidJob, match="unknown image"):
        run_job(memory, MemoryJobs(), {"items": [{"image_id": "a" * 64}], "operations": ["png"]})
    assert memory.calls["write_many"] == 0


def test_renders_after_the_first_read_the_original_from_memory_until_it_is_forgotten(memory):
    """An ingress keeps originals it took or read: a page's several sizes of one image read GridFS once."""
    from deployments.render.memory_cache import MemoryCache
    from deployments.render.variants import named_request

    originals = MemoryCache(1 << 20, 60, 1 << 20)
    service = RenderService(SETTINGS, memory, "test", originals=originals)
    image_id = original(memory, 5)
    stored = memory.find(image_id)
    memory.calls.clear()
    drawn = {op: service.draw(named_request(SETTINGS, image_id, op), stored)[1] for op in SEED}
    assert memory.calls["read"] == 1
    for op, data in drawn.items():  # the same bytes as from GridFS
        assert data == run(memory.data[image_id], named_request(SETTINGS, image_id, op).pipeline,
                           limits=SETTINGS.limits, options=SETTINGS.encode_options).data
    originals.drop_image(image_id)  # deleted (here, or seen in the deletion log)
    service.draw(named_request(SETTINGS, image_id, "mirror"), stored)
    assert memory.calls["read"] == 2


def test_a_job_keeps_as_many_calls_in_flight_as_the_running_replicas_take(memory, monkeypatch):
    """No call waits in the router (where it would probe the replicas' queues): the window is the running
    transform replicas times what each takes at once, counted again as the job goes on."""
    import threading

    import deployments.batch.bridge

    monkeypatch.setattr(deployments.batch.bridge, "WINDOW_CHECK_S", 0.0)
    service = RenderService(SETTINGS, memory, "test")
    ids = [original(memory, 40 + i, (64, 48)) for i in range(96)]
    running, peaks, lock = 0, [], threading.Lock()
    counts = iter([1] + [3] * 100)  # one replica at first; then three

    def render_items(*args):
        nonlocal running
        with lock:
            running += 1
            peaks.append(running)
        try:
            threading.Event().wait(0.02)
            return service.render_items(*args)
        finally:
            with lock:
                running -= 1
                peaks.append(-1)  # a call ended

    with ThreadPoolExecutor(16) as replicas:  # as many as could ever be asked for: the window is what bounds
        transformer = SimpleNamespace(render_items=SimpleNamespace(
            remote=lambda *args: asyncio.get_running_loop().run_in_executor(replicas, render_items, *args)))
        message = {"items": [{"image_id": i} for i in ids], "operations": ["png"]}
        result = run_job(memory, MemoryJobs(), message, transformer, lambda: next(counts))
    assert result["state"] == "done" and result["progress"]["done"] == 96
    per_replica = SETTINGS.transform_max_ongoing
    assert peaks[:per_replica + 1] == [*range(1, per_replica + 1), -1]  # one replica's worth, until one ends
    assert max(peaks) == 3 * per_replica  # then three replicas' worth, and never more


def test_a_replica_count_that_cannot_be_had_means_the_minimum(memory):
    def broken() -> int:
        raise RuntimeError("controller away")

    loop = asyncio.new_event_loop()
    try:
        runner = JobRunner(local_transformer(None), SETTINGS, loop, memory, MemoryJobs(), broken)
        assert runner.window() == SETTINGS.transform_min_replicas * SETTINGS.transform_max_ongoing
        assert runner.counted is None
    finally:
        loop.close()
