"""API keys, signed URLs and CORS, on a copy of the app configured with them."""

from __future__ import annotations

import time

import httpx
import pytest
from ray import serve

from deployments.app import build_app
from deployments.http.security import sign
from tests.images import encoded, photo
from tests.waiting import wait_until_served

KEYS = "new-key,old-key"


@pytest.fixture(scope="module")
def secure(settings, service):
    serve.run(build_app(settings.replace(api_keys="k1,k2", signing_keys=KEYS, cors_origins="https://app.example",
                                         ingress_min_replicas=1, ingress_max_replicas=1, transform_num_cpus=0.2,
                                         shutdown_timeout_s=2.0)),
              name="secure", route_prefix="/secure")
    base = f"{service}/secure"
    wait_until_served(base)
    yield base
    serve.delete("secure", _blocking=False)  # see app_copy in conftest.py


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


@pytest.mark.parametrize(("exp", "sig"), [
    ("\u00b2", "0" * 64),  # '²'.isdigit() is True, int('²') fails
    ("9" * 5000, "0" * 64),  # int() refuses more than 4300 digits
    ("-1", "0" * 64), ("1e9", "0" * 64), ("\u0663\u0662", "0" * 64),
    (str(int(time.time()) + 60), "\u00e9"), (str(int(time.time()) + 60), "ab" * 40), (str(int(time.time()) + 60), " "),
])
def test_malformed_expiry_or_signature_is_403_never_500(secure, exp, sig):
    image_id = httpx.post(f"{secure}/upload_file", files={"image": ("a.png", encoded(photo(30, 20, seed=54), "PNG"))},
                          headers={"X-API-Key": "k1"}).json()["image_id"]
    response = httpx.get(f"{secure}/{image_id}/png", params={"exp": exp, "sig": sig})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] in ("bad_signature", "signature_required")


def test_a_key_is_only_a_key_in_x_api_key_or_after_bearer(secure):
    data = encoded(photo(30, 20, seed=55), "PNG")
    for headers in ({"Authorization": "k1"}, {"Authorization": "Basic k1"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer k1 k2"}):
        response = httpx.post(f"{secure}/upload_file", files={"image": ("a.png", data)}, headers=headers)
        assert response.status_code == 401, (headers, response.text)
    assert httpx.post(f"{secure}/upload_file", files={"image": ("a.png", data)},
                      headers={"Authorization": "bearer k2"}).status_code == 201


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
