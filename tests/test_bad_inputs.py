"""Hostile and broken uploads over real HTTP: always a precise 4xx, nothing stored, nothing crashed.

These run after the happy-path tests (pytest orders files by name: test_api < test_bad_inputs)
and end with the health check that proves the replicas survived them all.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployments.errors import STATUS
from storage import content_id
from tests.conftest import UPLOAD_LIMIT
from tests.images import encoded, opened, photo
from tests.ray_checks import crashed_replicas
from tests.test_decode import BAD_INPUTS

TRIED = {"bad": 0, "5xx": 0}  # reported by the last test, for the closing note


def post(client: httpx.Client, data: bytes, name: str = "upload.jpg") -> httpx.Response:
    response = client.post("/upload_file", files={"image": (name, data, "image/jpeg")})
    TRIED["bad"] += 1
    TRIED["5xx"] += response.status_code >= 500
    return response


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_generated_bad_input_is_refused_and_not_stored(client, store, name):
    data, error = BAD_INPUTS[name]
    response = post(client, data)
    assert response.status_code == STATUS.get(error.code, 400), response.text
    assert response.json()["error"]["code"] == error.code
    assert response.json()["error"]["message"]
    assert store.count(content_id(data)) == 0  # nothing partial is stored


def test_oversized_upload_is_413_from_content_length(client):
    response = post(client, b"\0" * (UPLOAD_LIMIT + 1))
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_oversized_upload_is_413_while_streaming(client, service):
    """No Content-Length (chunked): the limit is enforced on the bytes as they arrive."""
    boundary = "b0undary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(3 * UPLOAD_LIMIT // (1 << 20)):
            yield b"\xff" * (1 << 20)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(f"{service}/upload_file", content=body(), timeout=60,
                          headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    TRIED["bad"] += 1
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


def test_upload_just_under_the_limit_is_accepted(client):
    side = 1400  # noise PNG of ~5.9 MB, under the 8 MB test limit
    data = encoded(np.random.default_rng(3).integers(0, 256, (side, side, 3), dtype=np.uint8), "PNG",
                   compress_level=1)
    assert len(data) < UPLOAD_LIMIT
    assert client.post("/upload_file", files={"image": ("n.png", data)}).status_code == 201


def test_corpus_bad_files_get_4xx(client, corpus: Path):
    for path in sorted((corpus / "bad").iterdir()):
        response = post(client, path.read_bytes(), path.name)
        assert 400 <= response.status_code < 500, (path.name, response.status_code, response.text)
        assert response.json()["error"]["message"], path.name


def test_corpus_good_files_upload_and_convert(client, corpus: Path):
    for path in sorted((corpus / "good").iterdir()):
        response = client.post("/upload_file", files={"image": (path.name, path.read_bytes())})
        assert response.status_code == 201, (path.name, response.text)
        record = response.json()
        if path.name.startswith("imgproxy_orientation-"):  # 5-8 are portrait once oriented
            portrait = int(path.stem[-1]) >= 5
            assert (record["width"], record["height"]) == ((100, 200) if portrait else (200, 100)), path.name
        for op in ("jpeg", "png", "grayscale", "mirror"):
            variant = client.get(f"/{record['image_id']}/{op}")
            assert variant.status_code == 200, (path.name, op, variant.text)
            image = opened(variant.content)  # decodable
            assert image.size == (record["width"], record["height"]), (path.name, op)


def test_corpus_cmyk_matches_its_rgb_twin(client, corpus: Path):
    ids = {}
    for name in ("pil_sample_cmyk.jpg", "pil_sample_rgb.jpg"):
        ids[name] = client.post("/upload_file", files={"image": (name, (corpus / "good" / name).read_bytes())}
                                ).json()["image_id"]
    cmyk, rgb = (np.asarray(opened(client.get(f"/{ids[n]}/png").content), dtype=int) for n in ids)
    assert np.abs(cmyk - rgb).mean() < 12  # same picture, right colours (inverted CMYK would be ~128)


_VALID = [encoded(photo(60, 40, seed=9), "JPEG"), encoded(photo(60, 40, seed=9), "PNG"),
          encoded(photo(60, 40, seed=9), "GIF"), encoded(photo(60, 40, seed=9), "WEBP")]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(
    st.binary(max_size=2048),
    st.tuples(st.sampled_from(_VALID), st.floats(0, 1)).map(lambda t: t[0][: int(len(t[0]) * t[1])]),
    st.tuples(st.sampled_from(_VALID), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)).map(
        lambda t: t[0][: t[1] % len(t[0])] + t[2] + t[0][t[1] % len(t[0]) + len(t[2]):]),
))
def test_property_any_bytes_get_201_or_4xx(client, data):
    response = post(client, data)
    assert response.status_code == 201 or 400 <= response.status_code < 500, response.text


def test_processing_timeout_is_503(client, settings, service):
    """A second copy of the app with a 1 ms budget: every uncached render overruns it."""
    from ray import serve

    from deployments.app import build_app

    image_id = client.post("/upload_file", files={"image": ("t.png", encoded(photo(800, 600, seed=11), "PNG"))}
                           ).json()["image_id"]
    # Small enough to fit beside the main app on two CPUs.
    tight = settings.replace(request_timeout_s=0.001, ingress_min_replicas=1, ingress_max_replicas=1,
                           transform_num_cpus=0.2)
    serve.run(build_app(tight), name="tight", route_prefix="/tight")
    try:
        response = httpx.get(f"{service}/tight/{image_id}/grayscale", timeout=60)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "timeout" and "0.001 s" in response.json()["error"]["message"]
        assert response.headers["retry-after"]
    finally:
        serve.delete("tight")


def test_zz_service_healthy_and_no_replica_crashed_after_bad_inputs(client):
    health = client.get("/healthz")
    assert health.status_code == 200, health.text
    assert crashed_replicas() == []
    from ray import serve

    from deployments.services import APP_NAME

    status = serve.status().applications[APP_NAME]
    assert status.status == "RUNNING"
    assert all(d.status == "HEALTHY" for d in status.deployments.values())
    print(f"\nbad inputs tried over HTTP: {TRIED['bad']}, answered 5xx: {TRIED['5xx']}")
    assert TRIED["5xx"] == 0
