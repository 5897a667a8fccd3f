"""Real services for the suite: an embedded mongod and one Ray Serve app on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deployments.config import Settings
from storage import ImageStore
from storage.embedded_mongod import EmbeddedMongod, free_port

UPLOAD_LIMIT = 8_000_000  # small enough to test 413 cheaply

os.environ.setdefault("RAY_ACCEPT_CLOUD_SERVICE_USAGE_STATS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("PROG_IMAGE_MONGO_URL")
    if configured:
        yield configured
        return
    mongod = EmbeddedMongod(tmp_path_factory.mktemp("mongo")).start()
    yield mongod.url
    mongod.stop()


@pytest.fixture(scope="session")
def settings(mongo_url: str) -> Settings:
    return Settings.from_env(mongo_url=mongo_url, mongo_db=f"prog_image_test_{os.getpid()}",
                             http_port=free_port(), amqp_url="", transform_max_replicas=2,
                             max_upload_bytes=UPLOAD_LIMIT)


@pytest.fixture(scope="session")
def store(settings: Settings) -> ImageStore:
    store = ImageStore(settings.mongo_url, settings.mongo_db)
    store.ensure_indexes()
    return store


@pytest.fixture(scope="session")
def service(settings: Settings) -> Iterator[str]:
    """The whole Serve application over real HTTP; yields its base URL."""
    import ray

    from deployments import services

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    services.start_serve(settings)
    yield f"http://127.0.0.1:{settings.http_port}"
    ray.shutdown()


@pytest.fixture(scope="session")
def client(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = Path(os.environ.get("PROG_IMAGE_CORPUS", Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus"))
    if not (path / "good").is_dir():
        pytest.skip(f"no real-world corpus at {path.resolve()} (set PROG_IMAGE_CORPUS); generated fixtures still run")
    return path.resolve()
