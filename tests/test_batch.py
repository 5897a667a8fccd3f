"""Batch jobs over the real RabbitMQ, with the real Serve app and mongod."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storage.keys import variant_key
from tests.conftest import PREFETCH
from tests.images import encoded, opened, photo

pytestmark = pytest.mark.usefixtures("service")


def upload_many(client, count: int, size: tuple[int, int] = (64, 48), seed: int = 0, fmt: str = "PNG") -> list[str]:
    ids = []
    for i in range(count):
        data = encoded(photo(*size, seed=seed + i), fmt)
        response = client.post("/upload_file", files={"image": (f"{i}.png", data)})
        assert response.status_code == 201
        ids.append(response.json()["image_id"])
    return ids


def test_job_of_100_images_times_2_operations(client, store, broker):
    ids = upload_many(client, 100, seed=1000)
    started = time.perf_counter()
    correlation_id = broker.job(ids, ["png", "grayscale"], job_id="hundred")
    reply = broker.reply(correlation_id)
    elapsed = time.perf_counter() - started
    print(f"\nbatch: 100 images x 2 operations in {elapsed:.1f} s ({200 / elapsed:.1f} variants/s)")
    assert reply.get("job_id") == "hundred" and reply["state"] == "done", reply
    assert reply["progress"] == {"total": 200, "done": 200, "failed": 0}
    for image_id in ids:
        for op in ("png", "grayscale"):
            assert store.count(variant_key(image_id, op)) == 1
    for item in reply["items"][:5]:  # pixels of a sample, against Pillow
        original = np.asarray(opened(store.read(store.find(item["image_id"]))))
        gray = store.read(store.find(item["results"]["grayscale"]["variant_id"]))
        assert np.array_equal(np.asarray(opened(gray)), np.asarray(Image.fromarray(original).convert("L")))
        assert item["results"]["png"]["url"].endswith(f"/{item['image_id']}/png")
    job = client.get("/jobs/hundred").json()
    assert job["state"] == "done" and job["progress"]["done"] == 200
    # A variant stored by the batch is served as stored, not recomputed.
    stored = store.find(variant_key(ids[0], "grayscale"))
    response = client.get(f"/{ids[0]}/grayscale")
    assert response.headers["etag"] == f'"{stored.etag}"' and response.content == store.read(stored)


def test_single_image_message_is_stored_then_converted(client, store, broker):
    data = encoded(photo(80, 60, seed=77), "JPEG")
    correlation_id = broker.publish(data, "image/jpeg", {"x-operations": "png,mirror"})
    reply = broker.reply(correlation_id)
    assert reply["state"] == "done"
    image_id = reply["items"][0]["image_id"]
    upload = client.post("/upload_file", files={"image": ("same.jpg", data)}).json()
    assert upload["image_id"] == image_id  # the same content-addressed id as HTTP
    assert set(reply["items"][0]["results"]) == {"png", "mirror"}
    assert store.count(variant_key(image_id, "mirror")) == 1


def test_poison_messages_are_dead_lettered_with_a_reason(client, broker, settings):
    known = upload_many(client, 1, seed=500)[0]
    poison = [
        (b"{not json", "application/json", {}, "not JSON"),
        (json.dumps({"operations": ["png"]}).encode(), "application/json", {}, "items"),
        (json.dumps({"items": [{"image_id": "0" * 64}], "operations": ["png"]}).encode(), "application/json", {},
         "unknown image id"),
        (json.dumps({"items": [{"image_id": known}], "operations": ["sepia"]}).encode(), "application/json", {},
         "operations"),
        (json.dumps({"items": [{"image_id": known}], "operations": ["ops=blur:r=0"]}).encode(), "application/json",
         {}, "blur: r must be between"),
        (b"this is not an image", "image/png", {"x-operations": "png"}, "unsupported_format"),
        (encoded(photo(10, 10), "PNG"), "image/png", {}, "x-operations"),
        (b"<xml/>", "text/xml", {}, "content_type"),
    ]
    ids = [broker.publish(body, ctype, headers) for body, ctype, headers, _ in poison]
    dead = broker.dead_letters(len(poison))
    assert len(dead) == len(poison)
    by_body = {body: props for props, body in dead}
    for body, _, _, reason in poison:
        error = by_body[body].headers["x-error"]
        assert reason in error, (reason, error)
    for correlation_id in ids:  # the producer hears about the rejection too
        assert broker.reply(correlation_id, 30)["state"] == "rejected"
    # ...and the bridge keeps consuming.
    assert broker.reply(broker.job([known], ["grayscale"]))["state"] == "done"


def test_redelivery_duplicates_nothing(client, store, broker):
    ids = upload_many(client, 5, seed=600)
    first = broker.reply(broker.job(ids, ["png", "mirror"], job_id="again"))
    files_before = store.files.count_documents({})
    second = broker.reply(broker.job(ids, ["png", "mirror"], job_id="again"))
    assert store.files.count_documents({}) == files_before
    assert [i["results"] for i in first["items"]] == [i["results"] for i in second["items"]]
    for image_id in ids:
        assert store.count(variant_key(image_id, "png")) == 1 and store.count(variant_key(image_id, "mirror")) == 1
    assert store.db["jobs"].count_documents({"_id": "again"}) == 1


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def _bridge_connections(settings) -> list[str]:
    """Broker-side pids of the bridge's connections, found by its connection name."""
    out = _rabbitmqctl("list_connections", "pid", "client_properties")
    name = f"prog-image-bridge:{settings.amqp_queue}"
    return [line.split("\t")[0] for line in out.splitlines() if name in line]


def test_connection_loss_mid_job_loses_nothing(client, store, broker, settings):
    ids = upload_many(client, 48, size=(1600, 1200), seed=700, fmt="JPEG")  # seconds of work: closed mid-job
    [before] = _bridge_connections(settings)
    correlation_id = broker.job(ids, ["png", "grayscale", "mirror"], job_id="interrupted")
    deadline = time.monotonic() + 30
    while (job := client.get("/jobs/interrupted").json()).get("state") != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job["state"] == "running"  # in flight
    _rabbitmqctl("close_connection", before, "test: broker closes the bridge's connection")
    assert client.get("/jobs/interrupted").json()["progress"]["done"] < 144  # closed mid-job
    reply = broker.reply(correlation_id)
    assert reply["state"] == "done" and reply["progress"]["done"] == 144
    for image_id in ids:
        for op in ("png", "grayscale", "mirror"):
            assert store.count(variant_key(image_id, op)) == 1
    deadline = time.monotonic() + 30
    while not (after := _bridge_connections(settings)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert after and after != [before]  # it reconnected by itself


def test_prefetch_bounds_unacked_messages(client, broker, settings):
    # Jobs big enough to keep the bridge busy for several of rabbitmqctl's samples (about 1 s each).
    ids = upload_many(client, 4 * PREFETCH, size=(1600, 1200), seed=800)
    peak = 0
    done = threading.Event()
    sampled = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            for line in _rabbitmqctl("list_queues", "name", "messages_unacknowledged").splitlines():
                name, _, unacked = line.partition("\t")
                if name == settings.amqp_queue:
                    peak = max(peak, int(unacked))
            sampled.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert sampled.wait(60)  # rabbitmqctl has answered once: the next samples come while the jobs run
        correlation_ids = [broker.job([image_id], ["png", "grayscale", "mirror", "jpeg"]) for image_id in ids]
        for correlation_id in correlation_ids:
            assert broker.reply(correlation_id)["state"] == "done"
    finally:
        done.set()
        watcher.join()
    assert 1 <= peak <= PREFETCH


def test_cli_submit_wait(client, store, settings, tmp_path: Path):
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(encoded(photo(40, 30, seed=900 + i), "PNG"))
    env = {"PROG_IMAGE_AMQP_URL": settings.amqp_url, "PROG_IMAGE_AMQP_QUEUE": settings.amqp_queue,
           "PATH": str(Path(sys.executable).parent)}
    out = subprocess.run([sys.executable, "-m", "deployments.cli", "batch", "submit", str(tmp_path),
                          "--ops", "png,grayscale", "--wait", "--timeout", "120"],
                         capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("done") == 3 and "source" in out.stdout.splitlines()[0]
    assert "100%" in out.stderr  # the progress bar ran to the end


def test_readyz_sees_mongodb_and_the_connected_bridge(client):
    response = client.get("/readyz")
    assert response.status_code == 200 and response.json()["checks"] == {"mongodb": "ok", "rabbitmq": "ok"}


class _FlakyRunner:
    """Fails like a briefly unreachable MongoDB, `failures` times, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def run(self, properties, body):
        from pymongo.errors import AutoReconnect

        self.calls += 1
        if self.calls <= self.failures:
            raise AutoReconnect("connection refused")
        return {"state": "done"}


def _bridge_with(runner, retries: int = 3):
    from deployments.batch.bridge import Bridge

    bridge = object.__new__(Bridge.func_or_class)  # the retry policy alone, without a broker connection
    bridge.runner, bridge.stopping = runner, threading.Event()
    bridge.settings = type("S", (), {"job_retries": retries})()
    bridge.stats = {"retried": 0}
    return bridge


def test_transient_failures_are_retried_with_backoff_then_given_up():
    from pymongo.errors import AutoReconnect

    runner = _FlakyRunner(failures=2)
    bridge = _bridge_with(runner)
    started = time.monotonic()
    assert bridge._run_with_retries(None, b"") == {"state": "done"}
    assert runner.calls == 3 and bridge.stats["retried"] == 2
    assert time.monotonic() - started >= 1.0 + 2.0  # backoff: 1 s, then 2 s
    with pytest.raises(AutoReconnect):  # still failing after the last attempt: the caller requeues it
        _bridge_with(_FlakyRunner(failures=5), retries=2)._run_with_retries(None, b"")


def test_pipelines_as_job_operations(client, store, broker):
    """An operation may be a pipeline, spelled as the query of GET /{id}/process: stored under that URL's key."""
    ids = upload_many(client, 2, size=(120, 80), seed=900)
    pipeline = "ops=blur:r=1.5,resize:w=60:h=60:fit=cover:g=smart&format=webp"
    reply = broker.reply(broker.job(ids, ["mirror", pipeline], job_id="pipelines"))
    assert reply["state"] == "done" and reply["progress"] == {"total": 4, "done": 4, "failed": 0}, reply
    for item in reply["items"]:
        result = item["results"][pipeline]  # keyed by the operation as given, dots and all
        assert result["url"].endswith(f"/{item['image_id']}/process?{pipeline}")
        served = client.get(result["url"].split(":" + str(client.base_url.port), 1)[1])
        assert served.headers["x-cache"] == "HIT" and served.headers["content-type"] == "image/webp"
        assert opened(served.content).size == (60, 60)
    assert client.get("/jobs/pipelines").json()["items"][0]["results"][pipeline]["status"] == "ok"


def test_a_job_keeps_as_many_calls_in_flight_as_the_running_transform_replicas_take(client, settings):
    """The bridge counts the running transform replicas through the Serve controller (see JobRunner.window;
    tests/test_job_runner.py checks that the window bounds the calls)."""
    from ray import serve

    from deployments.services import APP_NAME

    running = serve.status().applications[APP_NAME].deployments["Transformer"].replica_states["RUNNING"]
    status = serve.get_deployment_handle("Bridge", app_name=APP_NAME).status.remote().result()
    assert status["transform_replicas"] == running >= settings.transform_min_replicas, status
    assert status["window"] == running * settings.transform_max_ongoing, status
