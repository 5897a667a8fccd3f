"""A transform replica's peak RSS growth while it renders one big image, per route.

    .venv/bin/python -m bench.memory [WIDTHxHEIGHT]      (default 8660x5773, 50 MP)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx

from bench.run import replica_memory
from deployments import services
from deployments.config import Settings
from storage.embedded_mongod import EmbeddedMongod, free_port


def main() -> None:
    width, height = (int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "8660x5773").split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        mongod = EmbeddedMongod(Path(tmp) / "mongo").start()
        settings = Settings.from_env(mongo_url=mongod.url, http_port=free_port(), amqp_url="",
                                     max_upload_bytes=200_000_000, request_timeout_s=120)
        try:
            services.start_serve(settings)
            with httpx.Client(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=300) as client:
                replica_memory(client, "", (width, height))
        finally:
            services.shutdown_ray()
            mongod.stop()


if __name__ == "__main__":
    main()
