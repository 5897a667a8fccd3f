"""Exact JPEG answers through the running service: HTTP and batch give the same bytes, hostile JPEGs get 4xx.

The pixels of exact answers are checked in tests/test_jpeg_exact.py; here, that the service takes that path
(the bytes are the in-process exact render's), that batch results are those same bytes, and that nothing
damaged or hostile makes it answer 5xx or lose a replica.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from storage.keys import variant_key
from tests.images import encoded, photo, pixels_of
from tests.ray_checks import crashed_replicas
from tests.test_hostile import replica_processes
from transforms import Limits, parse, run

pytestmark = pytest.mark.usefixtures("service")
ROUTES = {"jpeg": "", "mirror": "mirror", "grayscale": "grayscale"}
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def q80(width: int, height: int, seed: int, **params: object) -> bytes:
    return encoded(photo(width, height, seed), "JPEG", quality=80, **params)


def exact_render(data: bytes, route: str, settings) -> bytes:
    rendered = run(data, parse(ROUTES[route]), limits=Limits(10**8), options=settings.encode_options)
    assert [stage for stage, _ in rendered.timings] == ["exact"], route
    return rendered.data


def upload(client, data: bytes) -> str:
    response = client.post("/upload_file", files={"image": ("p.jpg", data)})
    assert response.status_code == 201, response.text
    return response.json()["image_id"]


def test_core_routes_answer_a_q80_jpeg_exactly(client, settings):
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS
    data = q80(320, 240, seed=61, exif=exif.tobytes(), icc_profile=SRGB)
    image_id = upload(client, data)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    for route, reference in {"jpeg": shown, "mirror": shown[:, ::-1], "grayscale": None}.items():
        response = client.get(f"/{image_id}/{route}")
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg", route
        assert response.content == exact_render(data, route, settings), route
        out = Image.open(io.BytesIO(response.content))
        assert out.size == (240, 320) and not out.getexif() and b"Exif" not in response.content, route
        if reference is not None:
            assert np.abs(pixels_of(response.content).astype(int) - reference).max() <= 3, route
            assert out.info["icc_profile"] == SRGB
    # A pipeline of the same one step is the same exact answer, under its own key.
    assert client.get(f"/{image_id}/process", params={"ops": "mirror"}).content == \
        exact_render(data, "mirror", settings)


def test_batch_results_have_the_bytes_the_urls_serve(client, store, broker, settings):
    originals = [q80(320, 240, seed=70 + i) for i in range(3)]
    ids = [upload(client, data) for data in originals]
    reply = broker.reply(broker.job(ids, list(ROUTES), job_id="exact-jpeg"))
    assert reply["state"] == "done" and reply["progress"]["failed"] == 0, reply
    for image_id, data in zip(ids, originals, strict=True):
        for route in ROUTES:
            stored = store.read(store.find(variant_key(image_id, route)))
            assert stored == exact_render(data, route, settings), route
            assert client.get(f"/{image_id}/{route}").content == stored


def _fuzzed(rng: random.Random, sources: list[bytes]) -> bytes:
    data = bytearray(rng.choice(sources))
    if rng.random() < 0.5:
        del data[rng.randrange(2, len(data)):]
    else:
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(2, len(data))] = rng.randrange(256)
    return bytes(data)


def test_hostile_jpegs_through_the_exact_path_get_no_5xx(client, corpus: Path):
    """The shared corpus and 500 truncated or bit-flipped JPEGs: uploaded, then asked for on every route
    that may answer exactly. Refused or answered, never a 5xx, and every replica is the one it was."""
    before = {p.pid for p in replica_processes("prog-image", "Api") + replica_processes("prog-image", "Transformer")}
    rng = random.Random(30)
    sources = [q80(128, 96, seed=s, **params) for s, params in enumerate(
        ({}, {"subsampling": "4:4:4"}, {"progressive": True}, {"restart_marker_blocks": 2}))]
    sources.append(encoded(photo(128, 96, seed=9)[..., 0], "JPEG", quality=80))
    files = [path.read_bytes() for kind in ("bad", "good") for path in sorted((corpus / kind).iterdir())]
    files += [_fuzzed(rng, sources) for _ in range(500)]
    statuses: dict[int, int] = {}
    for data in files:
        response = client.post("/upload_file", files={"image": ("f.jpg", data)})
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code != 201:
            continue
        for route in ROUTES:
            got = client.get(f"/{response.json()['image_id']}/{route}")
            statuses[got.status_code] = statuses.get(got.status_code, 0) + 1
            if got.status_code == 200:
                Image.open(io.BytesIO(got.content)).load()  # what is answered decodes
    print(f"\nexact path, {len(files)} hostile files: statuses {sorted(statuses.items())}")
    assert not [status for status in statuses if status >= 500], statuses
    assert statuses.get(200, 0) > 300 and sum(n for s, n in statuses.items() if 400 <= s < 500) > 100
    after = {p.pid for p in replica_processes("prog-image", "Api") + replica_processes("prog-image", "Transformer")}
    assert before <= after and crashed_replicas() == []  # none that ran before has gone (scaling may add)
