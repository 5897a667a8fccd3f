"""Batch throughput over RabbitMQ against HTTP, for the same operation and inputs.

    .venv/bin/python -m bench.batch

Starts its own mongod and local Ray with the app and bridge (the local RabbitMQ, a private
queue), uploads 1 MP JPEGs, then in interleaved rounds times the four seed operations of fresh
uploads over HTTP at concurrency 4, and one batch job of the same from publish to reply.
Appends to bench/figures/batch.txt.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pika

from bench.cpu_split import snapshot, split
from bench.run import load, upload_all, variants
from deployments import services
from deployments.batch import amqp
from deployments.config import Settings
from storage.embedded_mongod import EmbeddedMongod, free_port
from tests.images import photo_like

COUNT = 200  # images per round and mode: a batch job of COUNT images, and COUNT others over HTTP
ROUNDS = 3
OPERATIONS = ["jpeg", "png", "grayscale", "mirror"]
FIGURES = Path(__file__).parent / "figures" / "batch.txt"


def busy_cpu_s() -> float:
    """CPU seconds the machine has spent on anything but idling (all processes: the service, mongod,
    RabbitMQ, the client): what a mode costs, whatever the neighbours on this host take meanwhile."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in stat.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    lines = [f"# bench/batch.py, {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores",
             f"1 MP JPEGs x {len(OPERATIONS)} operations ({', '.join(OPERATIONS)}), uncached, {ROUNDS} interleaved "
             f"rounds, each a batch job of {COUNT} images and {COUNT} other images over HTTP; HTTP stores a variant "
             f"from its request number {Settings.from_env().variant_store_min_uses} in a replica "
             "(PROG_IMAGE_VARIANT_STORE_MIN_USES; 1: every one, as batch does)"]
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
                ids, _ = upload_all(client, variants(picture, "JPEG", 2 * COUNT * ROUNDS))
                per_round = COUNT
                rates: dict[str, list[float]] = {"batch": [], "http": []}
                cpu_ms: dict[str, list[float]] = {"batch": [], "http": []}
                for r in range(ROUNDS):
                    fresh = ids[2 * r * per_round:(2 * r + 1) * per_round]
                    paths = [f"/{image_id}/{op}" for image_id in fresh for op in OPERATIONS]
                    cpu, procs = busy_cpu_s(), snapshot()
                    http = load(lambda i, paths=paths: paths[i], len(paths), 4, base)
                    cpu_ms["http"].append(1000 * (busy_cpu_s() - cpu) / len(paths))
                    assert not http["errors"], http
                    print(f"  HTTP CPU ms per image-operation: {split(procs, snapshot(), len(paths))}", flush=True)
                    rates["http"].append(http["rps"])
                    items = ids[(2 * r + 1) * per_round:(2 * r + 2) * per_round]
                    started, cpu, procs = time.perf_counter(), busy_cpu_s(), snapshot()
                    channel.basic_publish("", queue, json.dumps({"items": [{"image_id": i} for i in items],
                                                                 "operations": OPERATIONS}),
                                          pika.BasicProperties(content_type="application/json", reply_to=replies))
                    for _method, _props, body in channel.consume(replies):
                        assert json.loads(body)["state"] == "done", body[:300]
                        break
                    channel.cancel()
                    rates["batch"].append(len(items) * len(OPERATIONS) / (time.perf_counter() - started))
                    cpu_ms["batch"].append(1000 * (busy_cpu_s() - cpu) / (len(items) * len(OPERATIONS)))
                    spent = split(procs, snapshot(), len(items) * len(OPERATIONS))
                    print(f"  batch CPU ms per image-operation: {spent}", flush=True)
                    print(f"round {r + 1}: HTTP (c4) {rates['http'][-1]:.1f}/s {cpu_ms['http'][-1]:.1f} ms CPU, "
                          f"batch {rates['batch'][-1]:.1f}/s {cpu_ms['batch'][-1]:.1f} ms CPU", flush=True)
                rate, cost = ({m: statistics.median(v[m]) for m in v} for v in (rates, cpu_ms))
                lines += ["mode                 rate (median)   machine CPU per image-operation (median)",
                          f"HTTP, concurrency 4: {rate['http']:6.1f}/s        {cost['http']:5.1f} ms",
                          f"batch job:           {rate['batch']:6.1f}/s        {cost['batch']:5.1f} ms",
                          f"batch / HTTP:        {rate['batch'] / rate['http']:6.2f}x         "
                          f"{cost['http'] / cost['batch']:5.2f}x less CPU",
                          f"rounds, HTTP: {[round(r) for r in rates['http']]}",
                          f"rounds, batch: {[round(r) for r in rates['batch']]}",
                          f"load average after: {os.getloadavg()[0]:.2f}"]
                channel.queue_delete(queue)
                channel.queue_delete(amqp.dead_queue(queue))
                channel.exchange_delete(amqp.dead_exchange(queue))
                connection.close()
        finally:
            services.shutdown_ray()
            mongod.stop()
    print("\n".join(lines))
    with FIGURES.open("a") as figures:
        figures.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
