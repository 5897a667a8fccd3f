"""Backpressure and fault tolerance on the running cluster, each on its own small copy of the app."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from ray import serve

from tests.images import encoded, photo, pixels_of


def upload(client, data: bytes) -> str:
    response = client.post("/upload_file", files={"image": ("s.png", data)})
    assert response.status_code == 201
    return response.json()["image_id"]


@pytest.fixture
def small_app(app_copy):
    """A copy of the app whose renders all go to the transform deployment unless a test says otherwise."""
    return lambda name, **bounds: app_copy(name, **{"ingress_render_max_pixels": 0, **bounds})


def test_saturation_answers_503_fast_and_serves_the_rest(client, small_app):
    base = small_app("sat", transform_min_replicas=1, transform_max_replicas=1, transform_max_ongoing=1,
                     transform_max_queued=2)
    ids = [upload(client, encoded(photo(1600, 1200, seed=1200 + i), "PNG")) for i in range(12)]

    def get(image_id: str) -> tuple[int, float, dict]:
        started = time.perf_counter()
        response = httpx.get(f"{base}/{image_id}/png", timeout=120)
        return response.status_code, time.perf_counter() - started, dict(response.headers)

    with ThreadPoolExecutor(len(ids)) as pool:
        results = list(pool.map(get, ids))
    ok = [r for r in results if r[0] == 200]
    rejected = [r for r in results if r[0] == 503]
    assert len(ok) + len(rejected) == len(ids), [r[0] for r in results]
    assert len(ok) >= 3 and len(rejected) >= 1  # 1 running + 2 queued fit; the excess does not
    assert all(seconds < 1.0 for _, seconds, _ in rejected), [round(s, 2) for _, s, _ in rejected]
    assert all(headers.get("retry-after") for _, _, headers in rejected)


def test_killed_transform_replica_is_replaced_and_requests_survive(client, small_app):
    base = small_app("kill", transform_min_replicas=2, transform_max_replicas=2)
    ids = [upload(client, encoded(photo(400, 300, seed=1300 + i), "PNG")) for i in range(50)]
    paths = [f"/{image_id}/{op}" for image_id in ids for op in ("jpeg", "png", "grayscale", "mirror")]
    handle = serve.get_deployment_handle("Transformer", app_name="kill")
    victim = handle.memory.remote().result()["pid"]
    done = 0
    lock = threading.Lock()
    killed_at: list[float] = []

    def get(path: str) -> int:
        nonlocal done
        status = httpx.get(base + path, timeout=120).status_code
        with lock:
            done += 1
            if done == 40:
                os.kill(victim, signal.SIGKILL)  # mid-load: requests are in flight on it
                killed_at.append(time.monotonic())
        return status

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(get, paths))
    assert killed_at, "the replica was never killed"
    succeeded = sum(s == 200 for s in statuses)
    assert succeeded >= 0.99 * len(paths), f"{succeeded}/{len(paths)}: {sorted(set(statuses))}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        states = serve.status().applications["kill"].deployments["Transformer"].replica_states
        pids = {handle.memory.remote().result()["pid"] for _ in range(6)}
        if states.get("RUNNING") == 2 and victim not in pids and len(pids) == 2:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"replica not replaced: {states}")
    print(f"\nreplica killed under load: {succeeded}/{len(paths)} requests succeeded; "
          f"replaced within {time.monotonic() - killed_at[0]:.1f} s of the kill")


def test_placement_small_originals_render_in_the_ingress_the_rest_on_transforms(client, small_app):
    """The one placement rule: by the original's size, never by how busy the slots are."""
    base = small_app("local", transform_min_replicas=1, transform_max_replicas=1, ingress_render_max_pixels=200_000,
                     ingress_render_slots=1)
    small, large = photo(50, 40, seed=1400), photo(500, 500, seed=1401)  # 2,000 and 250,000 pixels
    for picture, where in ((small, "ingress@"), (large, "transform@")):
        data = encoded(picture, "PNG")
        response = httpx.get(f"{base}/{upload(client, data)}/mirror", timeout=60)
        assert response.status_code == 200 and response.headers["x-rendered-by"].startswith(where)
        assert np.array_equal(pixels_of(response.content), picture[:, ::-1])
        again = httpx.get(str(response.url), timeout=60)
        assert again.headers["x-cache"] == "HIT" and "x-rendered-by" not in again.headers
    # One render slot, eight small originals at once: they wait their turn in the ingress, none handed over.
    ids = [upload(client, encoded(photo(400, 400, seed=1420 + i), "PNG")) for i in range(8)]
    with ThreadPoolExecutor(len(ids)) as pool:
        responses = list(pool.map(lambda i: httpx.get(f"{base}/{i}/png", timeout=60), ids))
    assert all(r.status_code == 200 for r in responses)
    assert {r.headers["x-rendered-by"].split("@")[0] for r in responses} == {"ingress"}
