"""One Ray node against two on the same machine: the same app, the same load.

    .venv/bin/python -m bench.cluster     (stops every Ray on the machine when done: run it alone)

Starts its own mongod and a Ray head (then a second node joining it) with `ray start`, deploys the
app with two transform replicas, and measures uncached 1 MP JPEG grayscale requests at
concurrency 4. Both nodes share this machine's cores, so expect no gain: this measures the cost
of spreading, not more hardware.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.run import load, variants
from deployments.services import stop_orphaned_haproxy
from storage.embedded_mongod import EmbeddedMongod, free_port
from tests.images import photo_like

RAY = str(Path(sys.executable).parent / "ray")
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
       "RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


def ray(*args: str) -> None:
    subprocess.run([RAY, *args], check=True, env=ENV, capture_output=True, timeout=180)


def measure(nodes: int, mongo_url: str) -> dict[str, float]:
    gcs = free_port()
    address = f"127.0.0.1:{gcs}"
    resources = json.dumps({"prog_image_transform": 2})
    ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}", "--num-cpus=2",
        f"--resources={resources}", "--disable-usage-stats")
    try:
        if nodes == 2:
            ray("start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                f"--resources={resources}", "--disable-usage-stats")
        port = free_port()
        subprocess.run([sys.executable, "-m", "tests.cluster_driver", "deploy", address, json.dumps({
            "mongo_url": mongo_url, "mongo_db": f"cluster_bench_{nodes}", "http_port": port, "amqp_url": "",
            "ray_address": address, "transform_resource": "prog_image_transform", "transform_min_replicas": 2,
            "transform_max_replicas": 2, "transform_num_cpus": 0.5, "ingress_num_cpus": 0.1})],
            check=True, env=ENV, capture_output=True, timeout=300)
        base = f"http://127.0.0.1:{port}"
        files = variants(photo_like(1152, 864), "JPEG", 81)
        with httpx.Client(base_url=base, timeout=120) as client:
            ids = [client.post("/upload_file", files={"image": ("b.jpg", f)}).json()["image_id"] for f in files]
            client.get(f"/{ids[0]}/grayscale").raise_for_status()  # warm
            result = load(lambda i: f"/{ids[1 + i]}/grayscale", 80, 4, base)
        print(f"{nodes} node(s): {result['rps']:.1f} req/s, p50 {result['p50_ms']:.0f} ms, "
              f"p99 {result['p99_ms']:.0f} ms, errors {result['errors']}", flush=True)
        return result
    finally:
        ray("stop", "--force")
        stop_orphaned_haproxy()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mongod = EmbeddedMongod(Path(tmp) / "mongo").start()
        try:
            results = {n: measure(n, mongod.url) for n in (1, 2)}
        finally:
            mongod.stop()
    print(f"two nodes / one node: {results[2]['rps'] / results[1]['rps']:.2f}x (same 2 cores)")


if __name__ == "__main__":
    main()
