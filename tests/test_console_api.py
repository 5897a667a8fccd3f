"""The routes the web console stands on: /about, static files, jobs over HTTP, variant listings, /sign."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from tests.images import encoded, opened, photo
from tests.test_api import error_code, upload

pytestmark = pytest.mark.usefixtures("service")


def test_about_describes_the_grammar_the_parser_accepts(client):
    about = client.get("/about").json()
    assert about["operations"] == ["jpeg", "png", "grayscale", "mirror"]
    assert about["formats"] == ["jpeg", "png", "webp", "avif", "gif"] and about["max_steps"] == 10
    resize = about["steps"]["resize"]["params"]
    assert resize["w"] == {"type": "int", "min": 1, "max": 16384, "default": None}
    assert resize["fit"]["type"] == "choice" and resize["fit"]["default"] == "contain"
    assert about["steps"]["rotate"]["required"] == ["deg"] and about["steps"]["resize"]["one_of"] == ["w", "h"]
    assert about["api_key_required"] is False and about["signed_urls"] is False and about["batch_jobs"] is True
    # Every described step really parses with its required parameters at their lowest value.
    image_id = upload(client, encoded(photo(64, 48, seed=401), "PNG"))["image_id"]
    def lowest(p: dict) -> object:  # a str parameter is a watermark's image id here
        if p["type"] == "choice":
            return p["choices"][0]
        return image_id if p["type"] == "str" else max(1, int(p["min"]))

    for name, step in about["steps"].items():
        params = [f"{key}={lowest(p)}" for key, p in step["params"].items()
                  if key in step["required"] or key in step["one_of"][:1]]
        response = client.get(f"/{image_id}/process", params={"ops": ":".join([name, *params])})
        assert response.status_code == 200, (name, response.text)


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and 'src="static/console.js"' in page.text
    script = client.get("/static/console.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/console.js", headers={"If-None-Match": script.headers["etag"]}).status_code == 304
    assert client.get("/static/console.css").headers["content-type"].startswith("text/css")
    missing = client.get("/static/../config.py")
    assert missing.status_code == 404
    assert error_code(client.get("/static/nothing.js")) == "not_found"


def test_variant_listing_has_format_size_and_a_working_url(client):
    image_id = upload(client, encoded(photo(320, 240, seed=402), "JPEG"))["image_id"]
    assert client.get(f"/{image_id}/process", params={"ops": "resize:w=100,rotate:deg=90", "format": "png"}
                      ).status_code == 200
    assert client.get(f"/{image_id}/grayscale").status_code == 200
    deadline = time.monotonic() + 10
    while len(items := client.get(f"/images/{image_id}/variants").json()["items"]) < 2:
        assert time.monotonic() < deadline, items
        time.sleep(0.1)
    by_key = {item["key"]: item for item in items}
    rotated = by_key[f"{image_id}/process?ops=resize:fit=contain:w=100,rotate:deg=90&format=png"]
    assert (rotated["format"], rotated["width"], rotated["height"]) == ("PNG", 75, 100)
    served = client.get(rotated["url"])
    assert served.headers["content-type"] == "image/png"
    assert len(served.content) == rotated["bytes"] and opened(served.content).size == (75, 100)
    gray = by_key[f"{image_id}/grayscale"]
    assert (gray["format"], gray["width"], gray["height"]) == ("JPEG", 320, 240)
    assert error_code(client.get(f"/images/{'0' * 64}/variants")) == "not_found"


def test_job_submitted_over_http_runs_and_is_listed(client, store):
    ids = [upload(client, encoded(photo(96, 64, seed=410 + i), "PNG"))["image_id"] for i in range(3)]
    submitted = client.post("/jobs", json={"items": [{"image_id": i} for i in ids], "operations": ["mirror", "png"]})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    assert job_id.startswith("web-") and submitted.json()["url"] == f"/jobs/{job_id}"
    assert client.get(f"/jobs/{job_id}").status_code == 200  # at once: created when the broker confirmed it
    deadline = time.monotonic() + 60
    while (job := client.get(f"/jobs/{job_id}").json())["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["state"] == "done" and job["progress"] == {"total": 6, "done": 6, "failed": 0}, job
    mirrored = client.get(f"/{ids[0]}/mirror")
    assert mirrored.headers["x-cache"] == "HIT"  # stored by the job
    assert np.array_equal(np.asarray(opened(mirrored.content)),
                          np.asarray(opened(encoded(photo(96, 64, seed=410), "PNG")))[:, ::-1])
    listed = client.get("/jobs").json()["items"]
    assert listed[0]["job_id"] == job_id and "items" not in listed[0]
    again = client.post("/jobs", json={"job_id": job_id, "items": [{"image_id": ids[0]}], "operations": ["png"]})
    assert again.status_code == 202 and again.json()["state"] == "done"  # a known job id is not run again


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"items": [], "operations": ["png"]}, 400, "bad_request"),
    ({"items": [{"image_id": "a" * 64}], "operations": ["sepia"]}, 400, "bad_request"),
    ({"items": [{"image_id": "nope"}], "operations": ["png"]}, 400, "bad_request"),
    ({"items": [{"image_id": "b" * 64}], "operations": ["png"]}, 404, "not_found"),
    ({"items": [{"image_id": "b" * 64}], "operations": ["png"], "extra": 1}, 400, "bad_request"),
])
def test_bad_job_submissions(client, body, status, code):
    response = client.post("/jobs", json=body)
    assert response.status_code == status and error_code(response) == code, response.text


def test_jobs_need_the_broker(app_copy):
    base = app_copy("nobatch")  # app copies run without the bridge (amqp_url empty)
    image_id = upload(httpx.Client(base_url=base), encoded(photo(20, 20, seed=420), "PNG"))["image_id"]
    response = httpx.post(f"{base}/jobs", json={"items": [{"image_id": image_id}], "operations": ["png"]})
    assert response.status_code == 503 and error_code(response) == "batch_disabled"
    assert httpx.get(f"{base}/about").json()["batch_jobs"] is False


def test_sign_endpoint(app_copy, client):
    base = app_copy("signing", api_keys="k1", signing_keys="s1,s0")
    image_id = upload(client, encoded(photo(40, 30, seed=421), "PNG"))["image_id"]
    about = httpx.get(f"{base}/about")
    assert about.json()["signed_urls"] is True and about.json()["api_key_required"] is True
    assert "s1" not in about.text
    paths = [f"/signing/{image_id}/process?ops=grayscale,resize:w=20&format=webp", f"/signing/{image_id}/png"]
    assert httpx.post(f"{base}/sign", json={"paths": paths}).status_code == 401
    assert httpx.get(f"{base}{paths[1].removeprefix('/signing')}").status_code == 403
    signed = httpx.post(f"{base}/sign", json={"paths": paths}, headers={"Authorization": "Bearer k1"})
    assert signed.status_code == 200
    origin = base.removesuffix("/signing")
    for url in signed.json()["urls"]:
        assert "sig=" in url and "exp=" in url
        assert httpx.get(f"{origin}{url}").status_code == 200, url
    gray = httpx.get(f"{origin}{signed.json()['urls'][0]}")
    assert gray.headers["content-type"] == "image/webp" and opened(gray.content).size == (20, 15)
    for bad in (["https://evil.example/x"], ["//evil.example/x"], []):
        response = httpx.post(f"{base}/sign", json={"paths": bad}, headers={"X-API-Key": "k1"})
        assert response.status_code == 400 and error_code(response) == "bad_request"


def test_sign_without_signing_keys_returns_paths_unchanged(client):
    paths = [f"/{'c' * 64}/png"]
    assert client.post("/sign", json={"paths": paths}).json() == {"urls": paths}
