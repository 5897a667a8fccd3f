"""API keys, signed URLs and CORS, on a copy of the app configured with them."""

from __future__ import annotations

import time

import httpx
import pytest
from ray import serve

from deployments.app import build_app
from deployments.security import sign
from tests.images import encoded, photo
from tests.waiting import wait_until_served

KEYS = "new-key,old-key"


@pytest.fixture(scope="module")
def secure(settings, service):
    serve.run(build_app(settings.replace(api_keys="k1,k2", signing_keys=KEYS, cors_origins="https://app.example",
                                         ingress_replicas=1, ingress_num_cpus=0.1, transform_num_cpus=0.2)),
              name="secure", route_prefix="/secure")
    base = f"{service}/secure"
    wait_until_served(base)
    yield base
    serve.delete("secure")


def test_api_key_guards_upload_and_delete(secure):
    data = encoded(photo(30, 20, seed=51), "PNG")
    for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer nope"}):
        response = httpx.post(f"{secure}/upload_file", files={"image": ("a.png", data)}, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    ok = httpx.post(f"{secure}/upload_file", files={"image": ("a.png", data)}, headers={"X-API-Key": "k2"})
    assert ok.status_code == 201
    image_id = ok.json()["image_id"]
    assert httpx.delete(f"{secure}/{image_id}").status_code == 401
    assert httpx.delete(f"{secure}/{image_id}", headers={"Authorization": "Bearer k1"}).status_code == 204


def test_signed_urls(secure):
    data = encoded(photo(30, 20, seed=52), "PNG")
    image_id = httpx.post(f"{secure}/upload_file", files={"image": ("a.png", data)},
                          headers={"X-API-Key": "k1"}).json()["image_id"]
    path = f"/secure/{image_id}/process"
    params = {"ops": "mirror", "format": "webp"}
    base = secure.removesuffix("/secure")
    assert httpx.get(f"{base}{sign('new-key', path, params)}").status_code == 200
    assert httpx.get(f"{base}{sign('old-key', path, params)}").status_code == 200  # rotated-out key still verifies
    unsigned = httpx.get(f"{secure}/{image_id}/process", params=params)
    assert unsigned.status_code == 403 and unsigned.json()["error"]["code"] == "signature_required"
    tampered = sign("new-key", path, params).replace("ops=mirror", "ops=flip")
    assert httpx.get(f"{base}{tampered}").json()["error"]["code"] == "bad_signature"
    assert httpx.get(f"{base}{sign('stranger', path, params)}").status_code == 403
    expired = sign("new-key", path, params, ttl_s=-10)
    response = httpx.get(f"{base}{expired}")
    assert response.status_code == 403 and response.json()["error"]["code"] == "signature_expired"
    seed = httpx.get(f"{base}{sign('new-key', f'/secure/{image_id}/png', {}, now=time.time())}")
    assert seed.status_code == 200 and seed.headers["content-type"] == "image/png"


def test_cors(secure):
    response = httpx.options(f"{secure}/upload_file", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.options(f"{secure}/upload_file", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in other.headers


def test_auto_negotiates_format(client):
    image_id = client.post("/upload_file", files={"image": ("a.jpg", encoded(photo(40, 30, seed=53), "JPEG"))}
                           ).json()["image_id"]
    for accept, media in (("image/avif,image/webp,*/*", "image/avif"), ("image/webp,*/*", "image/webp"),
                          ("*/*", "image/jpeg")):
        response = client.get(f"/{image_id}/auto", headers={"Accept": accept})
        assert response.status_code == 200 and response.headers["content-type"] == media, accept
        assert response.headers["vary"] == "Accept"
