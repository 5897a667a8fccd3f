"""MongoDB round trips of a batch job, counted by a pymongo command listener on the real server."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter

import pika
from pymongo import monitoring

from deployments.batch.bridge import JobRunner
from deployments.config import Settings
from deployments.render.service import RenderService
from storage import ImageStore, content_id
from storage.jobs import JobStore
from tests.images import encoded, photo
from tests.memory_store import local_transformer

IMAGES, OPERATIONS = 10, ["jpeg", "png", "grayscale", "mirror"]


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.counting = False
        self.seen: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.counting:
            self.seen[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_a_job_needs_fewer_than_three_round_trips_per_image_operation(mongo_url):
    commands = Commands()
    monitoring.register(commands)  # for clients made from here on: a URL of its own makes a new one
    url = mongo_url + ("&" if "?" in mongo_url else "?") + "appname=round-trips"
    # One replica taking one call at a time: calls of several items, as a large job's on a larger cluster.
    settings = Settings(mongo_url=url, mongo_db=f"round_trips_{os.getpid()}", amqp_url="", transform_min_replicas=1,
                        transform_max_replicas=1, transform_max_ongoing=1)
    store = ImageStore(url, settings.mongo_db)
    store.ensure_indexes()
    ids = []
    for seed in range(IMAGES):
        data = encoded(photo(640, 480, seed=700 + seed), "JPEG", quality=90)
        store.put(content_id(data), data, content_type="image/jpeg",
                  metadata={"kind": "original", "format": "JPEG", "width": 640, "height": 480})
        ids.append(content_id(data))
    message = {"job_id": "round-trips", "items": [{"image_id": i} for i in ids], "operations": OPERATIONS}

    async def main() -> dict:
        runner = JobRunner(local_transformer(RenderService(settings, store, "test")), settings,
                           asyncio.get_running_loop(), store, JobStore(store), lambda: 1)
        properties = pika.BasicProperties(content_type="application/json")
        commands.counting = True
        try:
            return await asyncio.to_thread(runner.run, properties, json.dumps(message).encode())
        finally:
            commands.counting = False

    result = asyncio.run(main())
    assert result["state"] == "done" and result["progress"]["done"] == IMAGES * len(OPERATIONS)
    assert len(store.variants(ids[0])) == len(OPERATIONS)
    per_operation = sum(commands.seen.values()) / (IMAGES * len(OPERATIONS))
    print(f"\n{sum(commands.seen.values())} MongoDB round trips for {IMAGES} images x {len(OPERATIONS)} operations: "
          f"{per_operation:.2f} per image-operation {dict(commands.seen)}")
    assert per_operation < 3
