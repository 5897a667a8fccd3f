"""The HTTP cache in front (deployments/nginx.conf, compose.yaml's "cache"): a real nginx before the real
service. Hot variants come from it; JSON never does; a DELETE is final there within 2 s."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.images import encoded, photo
from tests.nginx_front import nginx_front

pytestmark = pytest.mark.system
KEPT_S = 2  # proxy_cache_valid 1s: nginx counts whole seconds, so an answer is kept 1 to 2 s


@pytest.fixture(scope="module")
def edge(service: str) -> Iterator[httpx.Client]:
    with nginx_front(service) as base, httpx.Client(base_url=base, timeout=60) as client:
        yield client


def test_hot_variants_come_from_the_cache_and_are_checked_again_within_two_seconds(edge, client):
    answer = edge.post("/upload_file", files={"image": ("a.jpg", encoded(photo(120, 90, seed=81), "JPEG"))})
    assert answer.status_code == 201  # uploads stream through it
    image_id = answer.json()["image_id"]
    first, second = edge.get(f"/{image_id}/png"), edge.get(f"/{image_id}/png")
    assert first.headers["X-Edge-Cache"] == "MISS" and second.headers["X-Edge-Cache"] == "HIT"
    assert first.content == second.content == client.get(f"/{image_id}/png").content
    time.sleep(KEPT_S + 0.5)
    again = edge.get(f"/{image_id}/png")
    assert again.status_code == 200 and again.headers["X-Edge-Cache"] == "REVALIDATED"  # a 304 behind it
    assert again.content == first.content


def test_json_is_never_kept(edge, client):
    image_id = client.post("/upload_file", files={"image": ("a.png", encoded(photo(60, 40, seed=82), "PNG"))}
                           ).json()["image_id"]
    for _ in range(3):
        answer = edge.get(f"/{image_id}")
        assert answer.status_code == 200 and answer.headers["X-Edge-Cache"] == "MISS"


def test_a_delete_is_final_at_the_cache_within_two_seconds(edge, client):
    image_id = client.post("/upload_file", files={"image": ("a.png", encoded(photo(60, 40, seed=83), "PNG"))}
                           ).json()["image_id"]
    assert edge.get(f"/{image_id}/mirror").status_code == 200
    assert edge.get(f"/{image_id}/mirror").headers["X-Edge-Cache"] == "HIT"
    assert edge.delete(f"/{image_id}").status_code == 204
    time.sleep(KEPT_S + 0.5)
    gone = edge.get(f"/{image_id}/mirror")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert edge.get(f"/{image_id}/mirror").status_code == 404  # and stays gone
