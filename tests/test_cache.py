"""Variant cache and HTTP caching over real HTTP."""

from __future__ import annotations

import concurrent.futures
import time

import numpy as np

from storage.keys import variant_key
from tests.images import encoded, photo, pixels_of
from tests.waiting import stored_soon


def upload(client, data: bytes) -> str:
    response = client.post("/upload_file", files={"image": ("c.png", data)})
    assert response.status_code == 201
    return response.json()["image_id"]


def test_second_get_is_served_from_the_stored_variant(client, store):
    image_id = upload(client, encoded(photo(300, 200, seed=31), "PNG"))
    first = client.get(f"/{image_id}/grayscale")
    assert first.headers["x-cache"] == "MISS"
    stored = stored_soon(store, variant_key(image_id, "grayscale"))  # answered first, stored just after
    assert stored.metadata["operation"] == "grayscale" and stored.etag == first.headers["etag"].strip('"')
    second = client.get(f"/{image_id}/grayscale")
    assert second.headers["x-cache"] == "HIT" and second.content == first.content
    assert store.find(variant_key(image_id, "grayscale")).file_id == stored.file_id  # not re-rendered or re-stored
    assert store.count(variant_key(image_id, "grayscale")) == 1


def test_by_default_a_variant_is_stored_from_its_second_request(client, store, app_copy):
    """A variant is a cache: a one-off costs no write; asked for again, it is stored, under the ETag it was
    first answered with (one ingress replica here, so the second request finds it in that one's memory)."""
    import httpx

    from deployments.config import Settings

    base = app_copy("storepolicy", variant_store_min_uses=Settings().variant_store_min_uses)
    picture = photo(160, 120, seed=38)
    image_id = upload(client, encoded(picture, "PNG"))
    key = variant_key(image_id, "mirror")
    first = httpx.get(f"{base}/{image_id}/mirror", timeout=60)
    assert first.status_code == 200 and first.headers["x-cache"] == "MISS"
    assert np.array_equal(pixels_of(first.content), picture[:, ::-1])
    time.sleep(1)
    assert store.find(key) is None  # asked for once: not stored
    second = httpx.get(f"{base}/{image_id}/mirror", timeout=60)
    assert second.headers["x-cache"] == "HIT" and second.content == first.content
    stored = stored_soon(store, key)
    assert stored.etag == first.headers["etag"].strip('"') == second.headers["etag"].strip('"')
    assert client.get(f"/{image_id}/mirror").headers["etag"] == first.headers["etag"]  # any replica: one ETag


def test_concurrent_first_requests_store_one_variant(client, store):
    image_id = upload(client, encoded(photo(900, 700, seed=32), "PNG"))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: client.get(f"/{image_id}/mirror"), range(8)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    stored_soon(store, variant_key(image_id, "mirror"))
    assert store.count(variant_key(image_id, "mirror")) == 1


def test_etag_304_cache_control_and_head(client):
    image_id = upload(client, encoded(photo(120, 80, seed=33), "PNG"))
    for attempt in ("miss", "hit"):
        response = client.get(f"/{image_id}/png")
        etag = response.headers["etag"]
        assert etag.startswith('"') and not etag.startswith('W/'), attempt  # strong
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        not_modified = client.get(f"/{image_id}/png", headers={"If-None-Match": etag})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.headers["etag"] == etag
        assert client.get(f"/{image_id}/png", headers={"If-None-Match": '"other"'}).status_code == 200
    head = client.head(f"/{image_id}/png")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(response.content)
    assert head.headers["content-type"] == "image/png" and head.headers["etag"] == etag
    fresh_id = upload(client, encoded(photo(60, 40, seed=34), "PNG"))
    head_miss = client.head(f"/{fresh_id}/mirror")  # HEAD of a variant not yet rendered
    assert head_miss.status_code == 200 and int(head_miss.headers["content-length"]) > 0


def test_compression_override_is_its_own_lossless_variant(client, store):
    pixels = photo(200, 150, seed=35)
    image_id = upload(client, encoded(pixels, "PNG"))
    fast = client.get(f"/{image_id}/png")
    small = client.get(f"/{image_id}/png?compression=small")
    assert np.array_equal(pixels_of(fast.content), pixels) and np.array_equal(pixels_of(small.content), pixels)
    assert fast.headers["etag"] != small.headers["etag"]
    assert stored_soon(store, variant_key(image_id, "png", "compression=small")).etag != \
        stored_soon(store, variant_key(image_id, "png")).etag
    bad = client.get(f"/{image_id}/png?compression=tiny")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_parameter"


def test_a_variant_stored_after_its_original_was_deleted_is_removed(client, store, settings):
    """A variant is stored after its answer: a DELETE of the original in between must not leave it behind."""
    from deployments.render.service import RenderService

    image_id = upload(client, encoded(photo(50, 40, seed=36), "PNG"))
    renderer = RenderService(settings, store, "test")
    key = variant_key(image_id, "mirror")
    drawn = store.describe(key, b"rendered bytes", content_type="image/png",
                           metadata={"kind": "variant", "source": image_id, "operation": "mirror"})
    assert client.delete(f"/{image_id}").status_code == 204  # deleted after the render, before its store
    renderer.keep(drawn, b"rendered bytes")
    assert store.find(key) is None and store.find(image_id) is None
    kept_id = upload(client, encoded(photo(50, 40, seed=37), "PNG"))  # the original still there: kept
    kept = store.describe(variant_key(kept_id, "mirror"), b"x", content_type="image/png",
                          metadata={"kind": "variant", "source": kept_id, "operation": "mirror"})
    assert renderer.keep(kept, b"x") == kept and store.find(kept.key) == kept


def test_changed_encode_settings_are_new_variants_not_stale_ones(client, store, app_copy):
    """After PROG_IMAGE_JPEG_QUALITY changes, the old bytes are not served as the new setting's."""
    import httpx

    image_id = upload(client, encoded(photo(400, 300, seed=36), "PNG"))
    default = client.get(f"/{image_id}/jpeg")
    base = app_copy("quality60", jpeg_quality=60, jpeg_lossless="never")
    lower = httpx.get(f"{base}/{image_id}/jpeg", timeout=60)
    assert lower.headers["x-cache"] == "MISS" and len(lower.content) < len(default.content)
    assert stored_soon(store, variant_key(image_id, "jpeg", "jpeg_quality=60&jpeg_lossless=never")).etag != \
        stored_soon(store, variant_key(image_id, "jpeg")).etag
    # A pipeline's own quality stands in for the configured one: one variant whatever the setting.
    params = {"ops": "mirror", "format": "jpeg", "quality": "70"}
    assert client.get(f"/{image_id}/process", params=params).status_code == 200
    key = variant_key(image_id, "process", "ops=mirror&format=jpeg&quality=70&jpeg_lossless=never")
    assert httpx.get(f"{base}/{image_id}/process", params=params, timeout=60).status_code == 200
    assert stored_soon(store, key) and stored_soon(store, variant_key(image_id, "process",
                                                                      "ops=mirror&format=jpeg&quality=70"))
