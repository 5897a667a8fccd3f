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
from tests.broker import Broker

UPLOAD_LIMIT = 8_000_000  # small enough to test 413 cheaply
PREFETCH = 3  # the bridge's prefetch in tests

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
def amqp_url() -> Iterator[str]:
    """The real local RabbitMQ, started if it is not running (the CI script stops it again)."""
    from deployments.services import ensure_rabbitmq

    url = os.environ.get("PROG_IMAGE_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/"
    ensure_rabbitmq(url)
    yield url


@pytest.fixture(scope="session")
def settings(mongo_url: str, amqp_url: str) -> Iterator[Settings]:
    settings = Settings.from_env(mongo_url=mongo_url, mongo_db=f"prog_image_test_{os.getpid()}",
                                 http_port=free_port(), metrics_port=free_port(), amqp_url=amqp_url,
                                 transform_max_replicas=2, amqp_queue=f"prog_image.jobs.test{os.getpid()}",
                                 amqp_prefetch=PREFETCH, max_upload_bytes=UPLOAD_LIMIT,
                                 # Every variant stored at its first request, whichever of the two ingress
                                 # replicas answers it: the tests of storing need not ask twice. The default
                                 # (from the second request) is tested on its own (test_cache.py).
                                 variant_store_min_uses=1)
    yield settings
    delete_queues(settings)


def delete_queues(settings: Settings) -> None:
    import pika

    from deployments.batch import amqp

    with pika.BlockingConnection(pika.URLParameters(settings.amqp_url)) as connection:
        channel = connection.channel()
        for queue in (settings.amqp_queue, amqp.dead_queue(settings.amqp_queue)):
            channel.queue_delete(queue)
        channel.exchange_delete(amqp.dead_exchange(settings.amqp_queue))


@pytest.fixture(scope="session")
def store(settings: Settings) -> ImageStore:
    store = ImageStore(settings.mongo_url, settings.mongo_db)
    store.ensure_indexes()
    return store


@pytest.fixture(scope="session")
def service(settings: Settings) -> Iterator[str]:
    """The whole Serve application over real HTTP; yields its base URL."""

    from deployments import services

    services.start_ray(settings, num_cpus=2)
    services.start_serve(settings)
    yield f"http://127.0.0.1:{settings.http_port}"
    services.shutdown_ray()


@pytest.fixture
def app_copy(settings: Settings, service: str) -> Iterator:
    """Deploy small copies of the app (one ingress, no batch bridge) under their own route prefix, with
    the given settings changed; deleted after the test (two CPUs hold the main app and one copy)."""
    from ray import serve

    from deployments.app import build_app
    from tests.waiting import wait_until_served

    names = []

    def deploy(name: str, **changes: object) -> str:
        # Its route prefix must not shadow the main app's routes (a deleted copy's prefix outlives it a while).
        assert name not in {"jobs", "images", "presets", "static", "about", "sign", "docs", "healthz", "readyz",
                            "upload_file", "openapi.json", "metrics"}, name
        small = {"ingress_min_replicas": 1, "ingress_max_replicas": 1, "transform_num_cpus": 0.2, "amqp_url": "",
                 "shutdown_timeout_s": 2.0}  # deleted after the test: no need to wait for stragglers
        serve.run(build_app(settings.replace(**{**small, **changes})), name=name, route_prefix=f"/{name}")
        names.append(name)
        wait_until_served(f"{service}/{name}")
        return f"{service}/{name}"

    yield deploy
    for name in names:
        # Not blocking: the replicas stop within shutdown_timeout_s, but the HTTP proxy keeps the old
        # routes until its open client connections time out (30 s), which the next test need not wait for.
        serve.delete(name, _blocking=False)


@pytest.fixture(scope="session")
def client(service: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service, timeout=120) as client:
        yield client


@pytest.fixture(scope="session")
def corpus() -> Path:
    candidates = [Path(p) for p in (os.environ.get("PROG_IMAGE_CORPUS"),) if p]
    candidates += [Path(__file__).resolve().parents[2] / "shared" / "corpus", Path("/work/shared/corpus")]
    for path in candidates:
        if (path / "good").is_dir():
            return path.resolve()
    pytest.skip(f"no real-world corpus in {', '.join(map(str, candidates))} (set PROG_IMAGE_CORPUS); "
                "the generated fixtures still run")


@pytest.fixture
def broker(settings: Settings) -> Iterator[Broker]:
    """A producer on the service's job queue (see tests/broker.py)."""
    broker = Broker(settings)
    yield broker
    broker.close()


# Tests that need a real server (mongod, RabbitMQ, Ray Serve, a browser or ssh): marked `system` by the
# fixtures they use, so `pytest -m "not system"` is the quick lane of pure, in-process tests.
SYSTEM_FIXTURES = frozenset({"service", "client", "store", "broker", "app_copy", "mongo_url", "amqp_url", "settings",
                             "delete_queues", "browser", "page"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SYSTEM_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("system"):
            item.add_marker(pytest.mark.system)
