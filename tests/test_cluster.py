"""A real two-node Ray cluster on this machine: placement by resource, and losing a node."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from deployments.services import stop_orphaned_haproxy
from storage.embedded_mongod import free_port
from tests.images import encoded, photo

pytestmark = pytest.mark.slow
RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def run(*args: str, timeout: float = 180) -> str:
    out = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def driver(*args: str) -> str:
    return run(sys.executable, "-m", "tests.cluster_driver", *args)


def placement_of(address: str) -> dict:
    """The driver's JSON line (Ray may print warnings after it, e.g. about lagging heartbeats)."""
    lines = driver("placement", address).strip().splitlines()
    return json.loads(next(line for line in reversed(lines) if line.startswith("{")))


def raylet_with_port(port: int) -> psutil.Process | None:
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "raylet" in cmdline and f"--node_manager_port={port}" in cmdline:
            return proc
    return None


@pytest.fixture
def two_nodes(tmp_path):
    gcs_port, head_raylet, worker_raylet = free_port(), free_port(), free_port()
    address = f"127.0.0.1:{gcs_port}"
    resources = json.dumps({"prog_image_transform": 2})
    run(RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs_port}", "--num-cpus=2",
        f"--node-manager-port={head_raylet}", f"--resources={resources}", "--disable-usage-stats",
        "--include-dashboard=false")
    try:
        run(RAY, "start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
            f"--node-manager-port={worker_raylet}", f"--resources={resources}", "--disable-usage-stats")
        yield address, worker_raylet
    finally:
        # Only this cluster's processes: the suite's own Ray keeps running.
        for port in (worker_raylet, head_raylet):
            if (raylet := raylet_with_port(port)) is not None:
                for child in raylet.children(recursive=True):
                    child.kill()
                raylet.kill()
        for proc in psutil.process_iter(["cmdline"]):  # GCS, monitor, dashboard, log monitors, client server
            cmdline = " ".join(proc.info["cmdline"] or [])
            if "ray" in cmdline and re.search(rf"(:|port=){gcs_port}\b", cmdline):
                proc.kill()
        stop_orphaned_haproxy()


def test_replicas_spread_by_resource_and_survive_losing_a_node(two_nodes, mongo_url):
    address, worker_raylet = two_nodes
    port = free_port()
    driver("deploy", address, json.dumps({
        "mongo_url": mongo_url, "mongo_db": "prog_image_cluster", "http_port": port, "amqp_url": "",
        "ray_address": address, "transform_resource": "prog_image_transform",
        "transform_min_replicas": 2, "transform_max_replicas": 2, "transform_num_cpus": 0.5,
        "ingress_num_cpus": 0.1}))
    base = f"http://127.0.0.1:{port}"
    ids = []
    for i in range(6):
        response = httpx.post(f"{base}/upload_file", files={"image": ("c.png", encoded(photo(200, 150, seed=1400 + i),
                                                                                          "PNG"))}, timeout=60)
        assert response.status_code == 201
        ids.append(response.json()["image_id"])
    assert all(httpx.get(f"{base}/{i}/grayscale", timeout=60).status_code == 200 for i in ids[:3])

    placement = placement_of(address)
    assert len(placement["nodes"]) == 2
    assert placement["replica_nodes"] == sorted(placement["nodes"])  # one transform replica on each node

    raylet = raylet_with_port(worker_raylet)
    assert raylet is not None
    for child in raylet.children(recursive=True):
        child.kill()
    raylet.send_signal(signal.SIGKILL)  # the second machine disappears

    deadline = time.monotonic() + 120
    answered = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            answered += httpx.get(f"{base}/{ids[3 + answered % 3]}/mirror", timeout=30).status_code == 200
        placement = placement_of(address)
        if answered >= 3 and placement["states"].get("RUNNING") == 2 and len(placement["nodes"]) == 1:
            break
        time.sleep(1)
    assert answered >= 3, "the service stopped answering after losing a node"
    assert placement["states"].get("RUNNING") == 2 and len(placement["nodes"]) == 1, placement
    assert placement["replica_nodes"] == placement["nodes"]  # both replicas now on the surviving head


def replicas(address: str) -> dict[str, int]:
    lines = driver("replicas", address).strip().splitlines()
    return json.loads(next(line for line in reversed(lines) if line.startswith("{")))


def test_renders_and_job_items_run_on_both_nodes_and_replicas_follow_the_load(two_nodes, mongo_url, amqp_url):
    """Render capacity grows with the cluster: under load the transform deployment scales up across both
    nodes and both render (X-Rendered-By names the node), a batch job's items run on both, and the
    replicas go back down when the load stops."""
    import pika

    from deployments.batch import amqp

    address, _ = two_nodes
    port, queue = free_port(), f"prog_image.jobs.cluster{os.getpid()}"
    driver("deploy", address, json.dumps({
        "mongo_url": mongo_url, "mongo_db": "prog_image_cluster_load", "http_port": port, "amqp_url": amqp_url,
        "amqp_queue": queue, "ray_address": address, "transform_resource": "prog_image_transform",
        "transform_min_replicas": 1, "transform_max_replicas": 2, "transform_target_ongoing": 1,
        "transform_num_cpus": 0.5, "transform_max_per_node": 1,
        "ingress_min_replicas": 1, "ingress_max_replicas": 1, "ingress_num_cpus": 0.1,
        "ingress_render_max_pixels": 0, "scale_up_delay_s": 1, "scale_down_delay_s": 5}))
    base = f"http://127.0.0.1:{port}"
    ids = [httpx.post(f"{base}/upload_file", files={"image": ("c.png", encoded(photo(600, 450, seed=1500 + i), "PNG"))},
                      timeout=60).json()["image_id"] for i in range(40)]
    assert replicas(address)["Transformer"] == 1

    # Sustained load, every request a new variant (a blur radius of its own), until both nodes render.
    nodes: set[str] = set()
    loaded = threading.Event()

    def load(worker: int) -> None:
        for n in range(10_000):
            if loaded.is_set():
                return
            radius = f"{worker}.{n:04d}"[:6]
            answer = httpx.get(f"{base}/{ids[n % len(ids)]}/process?ops=blur:r={radius}&format=png", timeout=60)
            assert answer.status_code == 200, answer.text
            nodes.add(answer.headers["x-rendered-by"])

    peak, deadline = 1, time.monotonic() + 120
    with ThreadPoolExecutor(6) as pool:
        running = [pool.submit(load, worker) for worker in range(1, 7)]
        while not (peak == 2 and len(nodes) == 2) and time.monotonic() < deadline:
            time.sleep(2)
            peak = max(peak, replicas(address)["Transformer"])
        loaded.set()
        for future in running:
            future.result()
    assert peak == 2, "the transform deployment did not scale up under load"
    assert len(nodes) == 2 and all(n.startswith("transform@") for n in nodes), nodes

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        amqp.declare(channel, queue)
        reply_to = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_publish("", queue, json.dumps({"items": [{"image_id": i} for i in ids],
                                                     "operations": ["ops=resize:w=300&format=webp", "ops=blur:r=2"]}),
                              pika.BasicProperties(content_type="application/json", reply_to=reply_to))
        for _method, _props, body in channel.consume(reply_to, inactivity_timeout=180):
            assert body is not None, "no reply to the job"
            result = json.loads(body)
            break
        channel.cancel()
        for name in (queue, amqp.dead_queue(queue)):
            channel.queue_delete(name)
    finally:
        connection.close()
    assert result["state"] == "done", result
    job_nodes = {r["rendered_by"] for item in result["items"] for r in item["results"].values()}
    assert len(job_nodes) == 2, job_nodes

    deadline = time.monotonic() + 90
    while replicas(address)["Transformer"] > 1:
        assert time.monotonic() < deadline, "the transform deployment did not scale back down"
        time.sleep(2)
