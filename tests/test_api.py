"""The seed's API over real HTTP, against the running Serve app and a real mongod."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from tests.images import encoded, jpeg_reference, opened, photo, pixels_of
from tests.waiting import wait_until_served

ROUTES = ("jpeg", "png", "grayscale", "mirror")


def upload(client, data: bytes, name: str = "photo.bin") -> dict:
    response = client.post("/upload_file", files={"image": (name, data, "application/octet-stream")})
    assert response.status_code == 201, response.text
    return response.json()


def error_code(response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"]


@pytest.fixture(scope="module")
def png_original() -> np.ndarray:
    return photo(400, 300, seed=1)


def test_png_upload_and_all_variants(client, png_original):
    data = encoded(png_original, "PNG")
    record = upload(client, data)
    assert record["format"] == "PNG" and (record["width"], record["height"]) == (400, 300)
    assert record["bytes"] == len(data)

    png = client.get(f"/{record['image_id']}/png")
    assert png.headers["content-type"] == "image/png"
    assert int(png.headers["content-length"]) == len(png.content)
    assert np.array_equal(pixels_of(png.content), png_original)  # lossless

    gray = client.get(f"/{record['image_id']}/grayscale")
    assert gray.headers["content-type"] == "image/png"  # keeps the original's format
    expected_gray = np.asarray(Image.fromarray(png_original).convert("L"))
    assert np.array_equal(pixels_of(gray.content), expected_gray)

    mirror = client.get(f"/{record['image_id']}/mirror")
    assert mirror.headers["content-type"] == "image/png"
    assert np.array_equal(pixels_of(mirror.content), png_original[:, ::-1])

    jpeg = client.get(f"/{record['image_id']}/jpeg")
    assert jpeg.headers["content-type"] == "image/jpeg"
    decoded = opened(jpeg.content)
    assert decoded.format == "JPEG" and decoded.size == (400, 300)
    # Same pixels as one JPEG encode of the original at the configured quality.
    reference = jpeg_reference(png_original)
    assert np.abs(np.asarray(decoded, dtype=int) - reference).max() <= 1


def test_jpeg_upload_and_all_variants(client):
    data = encoded(photo(640, 480, seed=2), "JPEG", quality=90)
    record = upload(client, data, "photo.jpg")
    assert record["format"] == "JPEG"
    original = pixels_of(data)

    png = client.get(f"/{record['image_id']}/png")
    assert png.headers["content-type"] == "image/png"
    assert np.array_equal(pixels_of(png.content), original)  # the decoded JPEG, losslessly

    gray = client.get(f"/{record['image_id']}/grayscale")
    assert gray.headers["content-type"] == "image/jpeg"
    # The original's own Y plane (libjpeg-turbo's grayscale decode; within rounding of convert('L') of
    # the decoded RGB, see tests/test_jpeg.py), then one JPEG encode at the configured quality.
    import simplejpeg

    expected = jpeg_reference(simplejpeg.decode_jpeg(data, "GRAY")[..., 0])
    assert np.abs(pixels_of(gray.content).astype(int) - expected).max() <= 1

    mirror = client.get(f"/{record['image_id']}/mirror")
    assert mirror.headers["content-type"] == "image/jpeg"
    # Decoded, flipped, encoded once at the configured quality: a q90 original is above the output's (85), so
    # it is re-encoded, not answered from its own coefficients (tests/test_jpeg_exact.py).
    assert np.abs(pixels_of(mirror.content).astype(int) - jpeg_reference(original[:, ::-1])).max() <= 1

    jpeg = client.get(f"/{record['image_id']}/jpeg")
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert int(jpeg.headers["content-length"]) == len(jpeg.content)


def test_same_bytes_same_id_one_file(client, store):
    data = encoded(photo(64, 48, seed=3), "PNG")
    first, second = upload(client, data), upload(client, data, "other-name.png")
    assert first == second
    assert store.count(first["image_id"]) == 1


def test_format_from_content_not_name(client):
    record = upload(client, encoded(photo(32, 32, seed=4), "PNG"), "lies.jpg")
    assert record["format"] == "PNG"


@pytest.mark.parametrize("path", [
    "/" + "0" * 64 + "/png",  # well-formed, unknown
    "/not-an-id/png",
    "/" + "g" * 64 + "/jpeg",
])
def test_unknown_or_malformed_id_is_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_unknown_operation_is_404(client):
    record = upload(client, encoded(photo(16, 16, seed=5), "PNG"))
    response = client.get(f"/{record['image_id']}/sepia")
    assert response.status_code == 404 and error_code(response) == "unknown_operation"


def test_missing_field_is_400(client):
    response = client.post("/upload_file", files={"picture": ("a.png", b"x")})
    assert response.status_code == 400 and error_code(response) == "missing_field"
    response = client.post("/upload_file")
    assert response.status_code == 400 and error_code(response) == "missing_field"


@pytest.mark.parametrize(("data", "status", "code"), [
    (b"", 400, "empty_file"),
    (b"hello, I am not an image\n", 415, "unsupported_format"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", 415, "unsupported_format"),
])
def test_not_an_image(client, data, status, code):
    response = client.post("/upload_file", files={"image": ("x.png", data, "image/png")})
    assert response.status_code == status and error_code(response) == code


def test_healthz_and_docs(client):
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["checks"] == {"serve": "ok", "mongodb": "ok", "transforms": "ok"}
    assert client.get("/docs").status_code == 200


def test_openapi_documents_every_route_with_examples(client):
    from types import SimpleNamespace

    from deployments.config import Settings
    from deployments.http.ingress import create_app

    app = create_app(Settings(), SimpleNamespace(context=None, memory=None))  # type: ignore[arg-type]  # routes only
    spec = client.get("/openapi.json").json()  # as the service serves it
    from fastapi.routing import APIRoute

    def api_routes(routes: list) -> list[APIRoute]:  # Serve's ingress nests the class's routes in a router
        found = []
        for route in routes:
            nested = getattr(route, "original_router", None)
            found += api_routes(nested.routes) if nested else [route] if isinstance(route, APIRoute) else []
        return found

    routes = {(route.path, method) for route in api_routes(app.routes) for method in route.methods}
    documented = {(path, method.upper()) for path, operations in spec["paths"].items() for method in operations}
    assert routes == documented and len(routes) >= 14
    ids = [op["operationId"] for operations in spec["paths"].values() for op in operations.values()]
    assert len(ids) == len(set(ids))
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            assert op.get("description") or op.get("summary"), where
            for param in op.get("parameters", []):
                assert param.get("description") or param["in"] == "query", (where, param["name"])
                assert param.get("schema", {}).get("examples") or param.get("example"), (where, param["name"])
            for status, response in op["responses"].items():
                assert response.get("description") != "Validation Error", where  # we answer 400, never 422
                for media, content in response.get("content", {}).items():
                    assert "example" in content or "examples" in content, (where, status, media)
                if status >= "400" and path not in ("/healthz", "/readyz"):  # the one error shape
                    assert set(response["content"]["application/json"]["example"]["error"]) == {"code", "message"}


def test_data_survives_service_restart(client, settings, service):
    from ray import serve

    from deployments import services

    data = encoded(photo(50, 40, seed=6), "PNG")
    image_id = upload(client, data)["image_id"]
    serve.delete(services.APP_NAME)
    assert client.get(f"/{image_id}/png").status_code == 404  # the app is really gone
    services.start_serve(settings)
    wait_until_served(service)
    deadline = time.monotonic() + 60  # every proxy route to the new replicas, not only the first
    while (response := client.get(f"/{image_id}/mirror")).status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert response.status_code == 200, response.text
    assert np.array_equal(pixels_of(response.content), pixels_of(data)[:, ::-1])
