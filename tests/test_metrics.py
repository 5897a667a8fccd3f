"""Prometheus metrics on Ray's metrics endpoint, with the right labels."""

from __future__ import annotations

import re
import threading
import time

import httpx

from deployments.metrics import SummedCounter
from tests.images import encoded, photo

_VARIANT_ROUTE = r'route="/\{image_id\}/\{operation\}"'


def test_metrics_endpoint_shows_counters_with_labels(client, settings, broker):
    image_id = client.post("/upload_file", files={"image": ("m.png", encoded(photo(30, 20, seed=61), "PNG"))}
                           ).json()["image_id"]
    assert client.get(f"/{image_id}/grayscale").status_code == 200  # rendered: a miss
    assert client.get(f"/{image_id}/grayscale").status_code == 200  # stored: a hit
    assert client.get(f"/{image_id}/process", params={"ops": "mirror,blur:r=1"}).status_code == 200
    assert client.get(f"/{'0' * 64}/grayscale").status_code == 404
    assert client.get(f"/{image_id}/process", params={"ops": "sepia"}).status_code == 400
    assert client.get("/no/such/route/here").status_code == 404
    assert broker.reply(broker.job([image_id], ["mirror"]))["state"] == "done"
    broker.publish(b"{not json")  # dead-lettered
    assert broker.dead_letters(1)

    wanted = [
        rf'ray_prog_image_http_requests_total\{{[^}}]*method="GET"[^}}]*{_VARIANT_ROUTE}[^}}]*status="200"',
        rf'ray_prog_image_http_requests_total\{{[^}}]*method="GET"[^}}]*{_VARIANT_ROUTE}[^}}]*status="404"',
        r'ray_prog_image_http_requests_total\{[^}]*route="/\{image_id\}/process"[^}]*status="400"',
        r'ray_prog_image_http_requests_total\{[^}]*route="unmatched"[^}]*status="404"',
        r'ray_prog_image_http_requests_total\{[^}]*route="/upload_file"[^}]*status="201"',
        r'ray_prog_image_variant_cache_total\{[^}]*result="hit"',
        r'ray_prog_image_variant_cache_total\{[^}]*result="miss"',
        rf'ray_prog_image_http_request_seconds_bucket\{{[^}}]*{_VARIANT_ROUTE}',
        r'ray_prog_image_render_seconds_bucket\{[^}]*operation="grayscale"',
        r'ray_prog_image_render_seconds_bucket\{[^}]*operation="process"',
        *(rf'ray_prog_image_stage_seconds_bucket\{{[^}}]*stage="{stage}"'
          for stage in ("decode", "grayscale", "mirror", "blur", "encode")),
        r'ray_prog_image_http_bytes_total\{[^}]*direction="in"',
        r'ray_prog_image_http_bytes_total\{[^}]*direction="out"',
        r'ray_prog_image_batch_jobs_total\{[^}]*outcome="processed"',
        r'ray_prog_image_batch_jobs_total\{[^}]*outcome="dead_lettered"',
    ]
    deadline = time.monotonic() + 60  # Ray exports each replica's metrics every few seconds
    missing = wanted
    while missing and time.monotonic() < deadline:  # as Prometheus would see them over its scrapes
        text = httpx.get(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=10).text
        missing = [pattern for pattern in missing if not re.search(pattern, text)]
        time.sleep(1)
    assert not missing, missing


class _RecordingCounter:
    def __init__(self) -> None:
        self.records: list[tuple[float, dict[str, str]]] = []

    def inc(self, value: float, tags: dict[str, str]) -> None:
        self.records.append((value, tags))


def test_summed_counter_records_one_sum_per_label_set_when_flushed() -> None:
    ray_counter = _RecordingCounter()
    counter = SummedCounter(ray_counter)
    for _ in range(3):
        counter.inc(tags={"route": "/a", "status": "200"})
    counter.inc(5, tags={"route": "/b", "status": "404"})
    counter.inc(0, tags={"route": "/c", "status": "200"})
    assert ray_counter.records == []  # nothing recorded per increment
    counter.flush()
    assert sorted(ray_counter.records, key=lambda r: r[0]) == [
        (3.0, {"route": "/a", "status": "200"}), (5.0, {"route": "/b", "status": "404"})]  # no zero increment
    counter.flush()
    assert len(ray_counter.records) == 2  # each increment is recorded once


def test_summed_counter_loses_no_increment_from_many_threads() -> None:
    ray_counter = _RecordingCounter()
    counter = SummedCounter(ray_counter)

    def count() -> None:
        for _ in range(10_000):
            counter.inc(tags={"result": "hit"})

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(20):
        counter.flush()  # flushes meanwhile must not drop or double anything
    for thread in threads:
        thread.join()
    counter.flush()
    assert sum(value for value, _ in ray_counter.records) == 40_000
