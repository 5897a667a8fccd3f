"""A real nginx with the shipped deployments/nginx.conf in front of a running service, on this host."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

CONFIG = Path(__file__).resolve().parents[1] / "deployments" / "nginx.conf"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def nginx_front(service: str) -> Iterator[str]:
    """Start nginx before the service at base URL `service`; yields nginx's base URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise RuntimeError("nginx is not installed (apt-get install -y nginx; .ci/run does it)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nginx-front-") as tmp:
        root = Path(tmp)
        # The shipped file, with this host's addresses and paths in place of the compose network's.
        text = CONFIG.read_text()
        for shipped, here in (("user nginx;", "user root;"),
                              ("server ray-head:8000;", f"server {urlsplit(service).netloc};"),
                              ("listen 8080;", f"listen 127.0.0.1:{port};"),
                              ("/var/cache/nginx/prog-image", str(root / "cache")),
                              ("pid /tmp/prog-image-nginx.pid;", f"pid {root / 'nginx.pid'};")):
            if shipped not in text:
                raise ValueError(f"{CONFIG} no longer has {shipped!r}")
            text = text.replace(shipped, here)
        (root / "nginx.conf").write_text(text)
        process = subprocess.Popen([nginx, "-p", str(root), "-c", str(root / "nginx.conf"),
                                    "-e", str(root / "error.log"), "-g", "daemon off;"])
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=10).close()
                    break
                except OSError:
                    time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(10)
