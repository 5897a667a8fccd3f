"""Pipelines, formats and the image API over real HTTP."""

from __future__ import annotations

import numpy as np
from PIL import Image

from storage.keys import variant_key
from tests.images import encoded, opened, photo, pixels_of
from tests.waiting import stored_soon


def upload(client, data: bytes) -> str:
    response = client.post("/upload_file", files={"image": ("i.png", data)})
    assert response.status_code == 201
    return response.json()["image_id"]


def test_process_pipeline_is_rendered_and_cached(client, store):
    pixels = photo(300, 200, seed=41)
    image_id = upload(client, encoded(pixels, "PNG"))
    url = f"/{image_id}/process?ops=grayscale,mirror,resize:w=150&format=webp&quality=90"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
    assert first.headers["x-cache"] == "MISS"
    image = opened(first.content)
    assert image.size == (150, 100)
    expected = np.asarray(Image.fromarray(pixels).convert("L"))[:, ::-1]
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(expected)).resize((150, 100), Image.Resampling.LANCZOS))
    assert np.abs(np.asarray(image.convert("L"), dtype=int) - expected).mean() < 3
    # Answered first, stored just after: another ingress replica finds it once it is stored.
    stored_soon(store, variant_key(image_id, "process", "ops=grayscale,mirror,resize:fit=contain:w=150&format=webp"
                                                        "&quality=90"))
    again = client.get(f"/{image_id}/process?ops=grayscale,mirror,resize:w=150:fit=contain&quality=90&format=webp")
    assert again.headers["x-cache"] == "HIT" and again.content == first.content  # canonical spelling
    assert client.get(f"/{image_id}/process?ops=mirror").content == client.get(f"/{image_id}/mirror").content


def test_process_errors_are_400(client):
    image_id = upload(client, encoded(photo(40, 30, seed=42), "PNG"))
    for query in ("ops=sepia", "ops=resize:w=-1", "ops=mirror&format=tiff", "ops=" + ",".join(["flip"] * 11)):
        response = client.get(f"/{image_id}/process?{query}")
        assert response.status_code == 400 and response.json()["error"]["code"] == "bad_pipeline", query
    outside = client.get(f"/{image_id}/process?ops=crop:x=0:y=0:w=100:h=10")  # valid grammar, not for this image
    assert outside.status_code == 400 and "not inside" in outside.json()["error"]["message"]


def test_metadata_list_and_delete(client, store):
    ids = sorted(upload(client, encoded(photo(30, 20, seed=43 + i), "PNG")) for i in range(3))
    client.get(f"/{ids[0]}/grayscale")
    stored_soon(store, variant_key(ids[0], "grayscale"))
    meta = client.get(f"/{ids[0]}").json()
    assert meta["image_id"] == ids[0] and meta["width"] == 30 and meta["variants"] == [f"{ids[0]}/grayscale"]
    seen, after = [], None
    while True:
        page = client.get("/images", params={"limit": 2, **({"after": after} if after else {})}).json()
        seen += [item["image_id"] for item in page["items"]]
        if not (after := page["next"]):
            break
    assert set(ids) <= set(seen) and seen == sorted(seen)
    assert client.delete(f"/{ids[0]}").status_code == 204
    assert client.get(f"/{ids[0]}").status_code == 404
    assert client.get(f"/{ids[0]}/grayscale").status_code == 404
    assert store.files.count_documents({"$or": [{"filename": ids[0]}, {"metadata.source": ids[0]}]}) == 0
    assert client.delete(f"/{ids[0]}").status_code == 404
    assert pixels_of(client.get(f"/{ids[1]}/png").content).shape == (20, 30, 3)  # the others are untouched


def test_upload_answers_placeholders_and_metadata_keeps_them(client):
    import blurhash

    pixels = np.zeros((900, 1200, 3), np.uint8)
    pixels[:] = (20, 90, 200)
    pixels[:, 900:] = (240, 240, 240)
    record = client.post("/upload_file", files={"image": ("p.png", encoded(pixels, "PNG"))}).json()
    assert record["dominant_color"] == "#145ac8" and blurhash.is_valid_blurhash(record["blurhash"])
    meta = client.get(f"/{record['image_id']}").json()
    assert (meta["blurhash"], meta["dominant_color"]) == (record["blurhash"], record["dominant_color"])
