"""Batch throughput over RabbitMQ against HTTP, for the same operation and inputs.

    .venv/bin/python -m bench.batch

Starts its own mongod and local Ray with the app and bridge (the local RabbitMQ, a private
queue), uploads 1 MP JPEGs, then times one batch job per operation (png, grayscale) from publish
to reply, and the same conversions of fresh uploads over HTTP at concurrency 4.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pika

from bench.run import load, photo_like, variants
from deployments import amqp, services
from deployments.config import Settings
from storage.embedded_mongod import EmbeddedMongod, free_port

COUNT = 40


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mongod = EmbeddedMongod(Path(tmp) / "mongo").start()
        queue = f"prog_image.jobs.bench{uuid.uuid4().hex[:8]}"
        settings = Settings.from_env(mongo_url=mongod.url, http_port=free_port(), amqp_queue=queue)
        services.ensure_rabbitmq(settings.amqp_url)
        try:
            services.start_serve(settings)
            base = f"http://127.0.0.1:{settings.http_port}"
            picture = photo_like(1152, 864)
            with httpx.Client(base_url=base, timeout=120) as client:
                connection = pika.BlockingConnection(pika.URLParameters(settings.amqp_url))
                channel = connection.channel()
                amqp.declare(channel, queue)
                replies = channel.queue_declare("", exclusive=True).method.queue
                for op in ("png", "grayscale"):
                    ids = [client.post("/upload_file", files={"image": ("b.jpg", f)}).json()["image_id"]
                           for f in variants(picture, "JPEG", COUNT)]
                    started = time.perf_counter()
                    channel.basic_publish("", queue, json.dumps({"items": [{"image_id": i} for i in ids],
                                                                 "operations": [op]}),
                                          pika.BasicProperties(content_type="application/json", reply_to=replies))
                    for _method, _props, body in channel.consume(replies):
                        assert json.loads(body)["state"] == "done"
                        break
                    channel.cancel()
                    batch = COUNT / (time.perf_counter() - started)
                    fresh = [client.post("/upload_file", files={"image": ("b.jpg", f)}).json()["image_id"]
                             for f in variants(picture, "JPEG", COUNT)]
                    http = load(lambda i, fresh=fresh, op=op: f"/{fresh[i]}/{op}", COUNT, 4, base)
                    print(f"1 MP JPEG -> {op}: batch {batch:.1f} images/s, HTTP (c4, uncached) "
                          f"{http['rps']:.1f} images/s", flush=True)
                channel.queue_delete(queue)
                channel.queue_delete(amqp.dead_queue(queue))
                channel.exchange_delete(amqp.dead_exchange(queue))
                connection.close()
        finally:
            services.shutdown_ray()
            mongod.stop()


if __name__ == "__main__":
    main()
