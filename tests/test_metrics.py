"""Prometheus metrics on Ray's metrics endpoint, with the right labels."""

from __future__ import annotations

import re
import time

import httpx

from tests.images import encoded, photo


def test_metrics_endpoint_shows_counters_with_labels(client, settings):
    image_id = client.post("/upload_file", files={"image": ("m.png", encoded(photo(30, 20, seed=61), "PNG"))}
                           ).json()["image_id"]
    client.get(f"/{image_id}/grayscale")
    client.get(f"/{image_id}/grayscale")
    wanted = [
        r'ray_prog_image_http_requests_total\{[^}]*method="GET"[^}]*route="/\{image_id\}/\{operation\}"'
        r'[^}]*status="200"',
        r'ray_prog_image_http_requests_total\{[^}]*route="/upload_file"[^}]*status="201"',
        r'ray_prog_image_variant_cache_total\{[^}]*result="hit"',
        r'ray_prog_image_variant_cache_total\{[^}]*result="miss"',
        r'ray_prog_image_http_request_seconds_bucket\{[^}]*route="/\{image_id\}/\{operation\}"',
        r'ray_prog_image_http_bytes_total\{[^}]*direction="out"',
    ]
    deadline = time.monotonic() + 60  # Ray exports each replica's metrics every few seconds
    missing = wanted
    while missing and time.monotonic() < deadline:  # as Prometheus would see them over its scrapes
        text = httpx.get(f"http://127.0.0.1:{settings.metrics_port}/metrics", timeout=10).text
        missing = [pattern for pattern in missing if not re.search(pattern, text)]
        time.sleep(1)
    assert not missing, missing
