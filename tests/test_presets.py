"""Presets: named pipelines from the configuration or the API, keyed by what they expand to."""

from __future__ import annotations

import time

import httpx
import pytest

from deployments.config import Settings
from tests.images import encoded, opened, photo
from tests.test_api import error_code, upload
from transforms import parse
from transforms.pipeline import PipelineError, Preset


def test_a_preset_step_expands_in_place():
    presets = {"avatar": Preset("resize:w=64:h=64:fit=cover:g=smart", "webp", "70")}
    pipeline = parse("grayscale,preset:avatar", presets=presets)
    assert pipeline.canonical() == parse("grayscale,resize:h=64:w=64:fit=cover:g=smart", "webp", "70").canonical()
    assert parse("preset:avatar", "png", presets=presets).format == "PNG"  # the request's format wins
    with pytest.raises(PipelineError, match="unknown preset"):
        parse("preset:nope", presets=presets)


def test_configured_presets_are_checked_at_start():
    assert Settings(presets="a=mirror&format=png; b-2=thumbnail:size=9").preset_map["b-2"] == Preset(
        "thumbnail:size=9")
    for bad in ("a=sepia", "Bad=mirror", "nameonly", "a=mirror&format=tiff"):
        with pytest.raises(ValueError, match="PRESETS"):
            Settings(presets=bad)


@pytest.mark.usefixtures("service")
def test_presets_over_http(client):
    image_id = upload(client, encoded(photo(320, 240, seed=77), "PNG"))["image_id"]
    name = f"card{int(time.time() * 1000) % 10**6}"
    assert client.put(f"/presets/{name}", json={"ops": "resize:w=100:h=100:fit=cover", "format": "webp"}
                      ).status_code == 204
    assert client.get("/presets").json()[name] == {"ops": "resize:w=100:h=100:fit=cover", "format": "webp",
                                                   "quality": None, "fixed": False}
    first = client.get(f"/{image_id}/preset/{name}")
    assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
    assert opened(first.content).size == (100, 100)
    mixed = client.get(f"/{image_id}/process", params={"ops": f"preset:{name},grayscale"})
    assert opened(mixed.content).size == (100, 100) and opened(mixed.content).mode in ("L", "RGB")
    # Changing the preset never serves the old bytes: the key is what it expands to.
    assert client.put(f"/presets/{name}", json={"ops": "resize:w=50:h=40:fit=fill"}).status_code == 204
    time.sleep(1.2)  # every replica re-reads the presets within a second
    changed = client.get(f"/{image_id}/preset/{name}")
    assert opened(changed.content).size == (50, 40) and changed.headers["content-type"] == "image/png"
    assert error_code(client.put(f"/presets/{name}", json={"ops": "sepia"})) == "bad_pipeline"
    assert error_code(client.put("/presets/Not_OK", json={"ops": "mirror"})) == "bad_request"
    assert client.delete(f"/presets/{name}").status_code == 204
    time.sleep(1.2)
    gone = client.get(f"/{image_id}/preset/{name}")
    assert gone.status_code == 400 and error_code(gone) == "bad_pipeline"
    assert error_code(client.delete(f"/presets/{name}")) == "not_found"


def test_configured_presets_are_fixed_and_keys_guard_changes(app_copy, client):
    base = app_copy("fixedpresets", presets="thumb=thumbnail:size=64&format=png", api_keys="k1")
    image_id = upload(client, encoded(photo(200, 100, seed=78), "PNG"))["image_id"]
    thumb = httpx.get(f"{base}/{image_id}/preset/thumb", timeout=60)
    assert opened(thumb.content).size == (64, 32)
    assert httpx.get(f"{base}/presets").json()["thumb"]["fixed"] is True
    assert httpx.put(f"{base}/presets/other", json={"ops": "mirror"}).status_code == 401
    fixed = httpx.put(f"{base}/presets/thumb", json={"ops": "mirror"}, headers={"X-API-Key": "k1"})
    assert fixed.status_code == 409 and error_code(fixed) == "preset_fixed"


@pytest.mark.usefixtures("service")
def test_presets_in_batch_jobs(client, broker, store):
    image_id = upload(client, encoded(photo(160, 120, seed=79), "PNG"))["image_id"]
    name = f"batch{int(time.time() * 1000) % 10**6}"
    assert client.put(f"/presets/{name}", json={"ops": "resize:w=40:h=40:fit=cover", "format": "webp"}
                      ).status_code == 204
    operation = f"ops=preset:{name},grayscale"
    reply = broker.reply(broker.job([image_id], [operation], job_id=f"job-{name}"))
    assert reply["state"] == "done", reply
    result = reply["items"][0]["results"][operation]
    # stored under the key of what the preset expands to: the URL with the preset serves it from the store
    expanded = client.get(f"/{image_id}/process", params={"ops": "resize:w=40:h=40:fit=cover,grayscale",
                                                           "format": "webp"})
    assert expanded.headers["x-cache"] == "HIT" and result["variant_id"].endswith("format=webp")
    assert opened(expanded.content).size == (40, 40)
    unknown = client.post("/jobs", json={"items": [{"image_id": image_id}], "operations": ["ops=preset:nope"]})
    assert unknown.status_code == 400 and "unknown preset" in unknown.json()["error"]["message"]
