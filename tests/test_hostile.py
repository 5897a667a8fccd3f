"""Hostile requests and outages against the real service: a bomb, a slow client or a dead database
must not take the service down, and it heals by itself. Each test is bounded in time."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import median

import httpx
import psutil
import pytest
from ray import serve

from deployments.render.allocator import TRIM_THRESHOLD
from storage import content_id
from storage.embedded_mongod import EmbeddedMongod
from tests.hostile_files import flat_png, gif_frame_bomb, jpeg_scan_bomb, tiny_png
from tests.images import encoded, photo

MEMORY_BOMB = "resize:w=16384:h=16384:fit=fill,blur:r=1"


def upload(base: str, data: bytes, **headers: str) -> str:
    response = httpx.post(f"{base}/upload_file", files={"image": ("x.png", data)}, headers=headers, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()["image_id"]


def replica_processes(app: str, deployment: str) -> list[psutil.Process]:
    wanted = f"ServeReplica:{app}:{deployment}"
    return [p for p in psutil.process_iter(["cmdline"]) if any(wanted in part for part in p.info["cmdline"] or ())]


# --- memory -------------------------------------------------------------------------------------

def test_the_memory_bomb_is_refused_in_a_moment_without_memory(service):
    """A 67-byte PNG blown up to 16384x16384 and blurred took an ingress replica to 19 GB."""
    image_id = upload(service, tiny_png())
    ingresses = replica_processes("prog-image", "Api")
    before = sum(p.memory_info().rss for p in ingresses)
    started = time.perf_counter()
    response = httpx.get(f"{service}/{image_id}/process", params={"ops": MEMORY_BOMB}, timeout=30)
    elapsed = time.perf_counter() - started
    assert response.status_code == 422 and response.json()["error"]["code"] == "output_too_large", response.text
    assert elapsed < 1.0
    grown = sum(p.memory_info().rss for p in ingresses) - before
    assert grown < 50 << 20, f"ingress RSS grew by {grown >> 20} MB"
    print(f"\nmemory bomb: 422 in {elapsed * 1000:.0f} ms; ingress RSS {grown >> 20:+d} MB")


def test_three_concurrent_large_blurs_stay_within_the_replica_budget(app_copy):
    """49 MP blurs (one reached 9 GB, three 17 GB): the memory gate lets one run at a time within 1.2 GB."""
    budget_mb = 1200
    base = app_copy("blurs", render_memory_mb=budget_mb, transform_max_ongoing=3, ingress_render_max_pixels=0,
                    transform_min_replicas=1, transform_max_replicas=1)
    image_id = upload(base, flat_png(7000, 7000))
    handle = serve.get_deployment_handle("Transformer", app_name="blurs")
    before = handle.memory.remote(reset_peak=True).result()

    def blur(radius: int) -> httpx.Response:
        return httpx.get(f"{base}/{image_id}/process", params={"ops": f"blur:r={radius}", "format": "jpeg"},
                         timeout=120)

    started = time.perf_counter()
    with ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(blur, (100, 99, 98)))
    after = handle.memory.remote().result()
    assert [r.status_code for r in responses] == [200, 200, 200], [r.text[:200] for r in responses]
    grown = after["peak_mb"] - before["rss_mb"]
    # glibc keeps up to TRIM_THRESHOLD of freed memory per thread arena (deployments/allocator.py): each
    # render thread's leftovers add to the peak of the next render. Ungated, the three reached 1.9-2.1 GB here.
    slack_mb = 3 * TRIM_THRESHOLD >> 20
    assert grown <= budget_mb + slack_mb, f"the transform replica's peak grew {grown:.0f} MB, over its " \
                                          f"{budget_mb} MB budget (+{slack_mb} MB the allocator keeps)"
    print(f"\nthree 49 MP blurs in {time.perf_counter() - started:.1f} s; replica peak +{grown:.0f} MB "
          f"(budget {budget_mb} MB)")


# --- CPU bombs and deadlines ----------------------------------------------------------------------

@pytest.mark.parametrize("bomb", ["frames", "scans"])
def test_cpu_bombs_are_refused_before_decoding(service, store, bomb):
    data = gif_frame_bomb(1000, 7000) if bomb == "frames" else jpeg_scan_bomb(500)
    started = time.perf_counter()
    response = httpx.post(f"{service}/upload_file", files={"image": ("bomb", data)}, timeout=60)
    assert response.status_code == 422 and response.json()["error"]["code"] == "image_too_complex", response.text
    assert time.perf_counter() - started < 2.0
    assert store.count(content_id(data)) == 0


def test_timed_out_uploads_and_renders_are_not_stored_later(app_copy, store):
    base = app_copy("late", request_timeout_s=0.001)
    data = encoded(photo(1600, 1200, seed=81), "PNG", compress_level=1)  # checking it takes longer than 1 ms
    response = httpx.post(f"{base}/upload_file", files={"image": ("late.png", data)}, timeout=60)
    assert response.status_code == 503 and response.json()["error"]["code"] == "timeout", response.text
    assert response.headers["retry-after"]
    image_id = upload(base.removesuffix("/late"), data)  # stored through the main app, whose budget is normal
    render = httpx.get(f"{base}/{image_id}/process", params={"ops": "blur:r=3,mirror"}, timeout=60)
    assert render.status_code == 503 and render.json()["error"]["code"] == "timeout", render.text
    time.sleep(3)  # long enough for a render or store that went on regardless
    variants = [v.key for v in store.variants(image_id)]
    assert not [key for key in variants if "blur" in key], variants
    late_upload = encoded(photo(1600, 1200, seed=82), "PNG", compress_level=1)
    assert httpx.post(f"{base}/upload_file", files={"image": ("l.png", late_upload)}, timeout=60).status_code == 503
    time.sleep(2)
    assert store.count(content_id(late_upload)) == 0


# --- slow clients -----------------------------------------------------------------------------------

def _partial_upload(host: str, port: int, path: str, key: str | None) -> socket.socket:
    """An upload that declares 100 kB, sends its headers and 10 bytes, and then nothing."""
    sock = socket.create_connection((host, port), timeout=30)
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: 100000\r\n" + (f"X-API-Key: {key}\r\n" if key else "") + "\r\n--b\r\n")
    sock.sendall(head.encode())
    return sock


def _reply(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    try:
        return sock.recv(4096)
    except OSError:
        return b""


def _latencies(client: httpx.Client, path: str, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        assert client.get(path).status_code == 200
        times.append(time.perf_counter() - started)
    return times


def test_idle_partial_uploads_do_not_slow_the_others(app_copy, settings):
    """300 idle partial uploads (130 used to stall everything) while a client GETs: all succeed, no slower."""
    base = app_copy("slow", api_keys="k1", upload_idle_s=4.0, max_concurrent_uploads=4)
    image_id = upload(base, encoded(photo(200, 150, seed=83), "PNG"), **{"X-API-Key": "k1"})
    host, port = "127.0.0.1", settings.http_port
    with httpx.Client(base_url=base, timeout=30) as client:
        client.get(f"/{image_id}/png")  # memory-cached from here on
        _latencies(client, f"/{image_id}/png", 20)  # warm
        quiet = _latencies(client, f"/{image_id}/png", 150)
        keyless = _partial_upload(host, port, "/slow/upload_file", None)
        assert b" 401 " in _reply(keyless, 5).split(b"\r\n")[0]  # refused before its body arrives
        idle = [_partial_upload(host, port, "/slow/upload_file", "k1") for _ in range(300)]
        time.sleep(0.5)
        loaded = _latencies(client, f"/{image_id}/png", 150)
        answers = [_reply(sock, 10).split(b"\r\n")[0] for sock in idle]  # the held ones time out meanwhile
    for sock in [keyless, *idle]:
        sock.close()
    statuses = sorted({line.split(b" ")[1].decode() for line in answers if line})
    assert set(statuses) <= {"408", "503"} and "408" in statuses and "503" in statuses, statuses
    assert all(line for line in answers), "an idle upload was never answered"
    ratio = median(loaded) / median(quiet)
    print(f"\n300 idle uploads: GET median {median(quiet) * 1000:.1f} -> {median(loaded) * 1000:.1f} ms "
          f"({ratio:.2f}x); answers {statuses}")
    assert median(loaded) <= 1.10 * median(quiet) + 0.001


# --- MongoDB outage --------------------------------------------------------------------------------

def _recovered_after(base: str, image_id: str, since: float, op: str) -> float | None:
    """Seconds from since until a new render of image_id answers 200 (None after 30 s)."""
    while time.monotonic() - since < 30:
        if httpx.get(f"{base}/{image_id}/process", params={"ops": op}, timeout=30).status_code == 200:
            return time.monotonic() - since
        time.sleep(0.25)
    return None


def test_mongod_outages_give_503s_and_the_service_heals_without_a_restart(app_copy, tmp_path: Path):
    """SIGKILL under traffic: the embedded mongod is reaped and restarted by its watchdog, the service
    recovers by itself. Then a longer outage: 503 unavailable with Retry-After, memory-cached variants
    still served, /readyz and /healthz failing; recovery once mongod is back. Nothing is lost."""
    mongod = EmbeddedMongod(tmp_path / "outage").start()
    try:
        base = app_copy("outage", mongo_url=mongod.url, ingress_render_max_pixels=0)
        ids = [upload(base, encoded(photo(120, 90, seed=90 + i), "PNG")) for i in range(4)]
        for image_id in ids:
            assert httpx.get(f"{base}/{image_id}/png", timeout=30).status_code == 200  # now in memory
        statuses: list[int] = []
        stop = threading.Event()

        def traffic() -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                step = 0
                while not stop.is_set():
                    step += 1
                    response = client.get(f"/{ids[step % 4]}/process", params={"ops": f"resize:w={step}"})
                    statuses.append(response.status_code)
                    if response.status_code == 503:
                        assert response.json()["error"]["code"] == "unavailable" and response.headers["retry-after"]

        worker = threading.Thread(target=traffic)
        worker.start()
        time.sleep(1)
        dead = mongod.process
        killed_at = time.monotonic()
        os.kill(dead.pid, signal.SIGKILL)
        healed = _recovered_after(base, ids[0], killed_at, "resize:h=7")
        assert healed is not None and healed <= 15, healed
        while mongod.restarts == 0 and time.monotonic() - killed_at < 15:  # counted just after its first ping
            time.sleep(0.05)
        assert mongod.restarts == 1
        assert not psutil.pid_exists(dead.pid) or psutil.Process(dead.pid).status() != psutil.STATUS_ZOMBIE

        mongod.stop()  # a longer outage: nothing restarts it until we do
        started = time.perf_counter()
        down = httpx.get(f"{base}/{ids[0]}/process", params={"ops": "resize:h=8"}, timeout=30)
        first_503 = time.perf_counter() - started
        assert down.status_code == 503 and down.json()["error"]["code"] == "unavailable", down.text
        assert down.headers["retry-after"] and first_503 < 5
        assert httpx.get(f"{base}/{ids[1]}/png", timeout=30).status_code == 200  # memory-cached: still served
        refused = httpx.post(f"{base}/upload_file", files={"image": ("n.png", encoded(photo(64, 48, seed=98), "PNG"))},
                             timeout=30)
        assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
        ready = httpx.get(f"{base}/readyz", timeout=30)
        health = httpx.get(f"{base}/healthz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["mongodb"].startswith("failed")
        assert health.status_code == 503 and health.json()["checks"]["mongodb"].startswith("failed")
        back_at = time.monotonic()
        mongod.start()
        recovered = _recovered_after(base, ids[2], back_at, "flip")
        stop.set()
        worker.join()
        assert recovered is not None and recovered <= 15, recovered
        assert set(statuses) <= {200, 503} and 200 in statuses, sorted(set(statuses))
        for image_id in ids:  # nothing acknowledged was lost
            assert httpx.get(f"{base}/{image_id}", timeout=30).status_code == 200
        upload(base, encoded(photo(64, 48, seed=99), "PNG"))
        deployments = serve.status().applications["outage"].deployments
        assert all(d.status == "HEALTHY" for d in deployments.values())
        print(f"\nmongod SIGKILL: healed {healed:.1f} s after the kill (restarted by the watchdog); stopped: "
              f"503 in {first_503:.1f} s, recovered {recovered:.1f} s after its return; traffic "
              f"answered {statuses.count(200)} x 200, {statuses.count(503)} x 503")
    finally:
        mongod.stop()


def test_batch_jobs_wait_out_a_mongod_outage(app_copy, settings, tmp_path: Path):
    """A job that arrives while MongoDB is down is retried, returned to the queue and done once it is back:
    nothing dead-lettered, nothing lost, nothing stored twice."""
    from storage import ImageStore
    from storage.keys import variant_key
    from tests.broker import Broker
    from tests.conftest import delete_queues

    mongod = EmbeddedMongod(tmp_path / "batch").start()
    jobs = settings.replace(amqp_queue=f"{settings.amqp_queue}.outage", mongo_url=mongod.url, job_retries=1)
    broker = None
    try:
        base = app_copy("batchout", mongo_url=jobs.mongo_url, amqp_url=jobs.amqp_url, amqp_queue=jobs.amqp_queue,
                        job_retries=1)
        ids = [upload(base, encoded(photo(64, 48, seed=140 + i), "PNG")) for i in range(6)]
        broker = Broker(jobs)
        mongod.stop()
        correlation_id = broker.job(ids, ["png", "grayscale"], job_id="through-an-outage")
        time.sleep(6)  # attempts fail, the job goes back to the queue, and comes again
        mongod.start()
        reply = broker.reply(correlation_id, timeout_s=120)
        assert reply["state"] == "done" and reply["progress"] == {"total": 12, "done": 12, "failed": 0}, reply
        assert broker.dead_letters(1, timeout_s=2) == []
        status = serve.get_deployment_handle("Bridge", app_name="batchout").status.remote().result()
        assert status["requeued"] >= 1 and status["dead_lettered"] == 0, status
        store = ImageStore(mongod.url, jobs.mongo_db)
        assert all(store.count(variant_key(i, op)) == 1 for i in ids for op in ("png", "grayscale"))
    finally:
        if broker is not None:
            broker.close()
        delete_queues(jobs)
        mongod.stop()


# --- DELETE -------------------------------------------------------------------------------------------

def test_delete_racing_renders_leaves_nothing(service, store):
    for trial in range(5):
        image_id = upload(service, encoded(photo(400, 300, seed=100 + trial), "PNG"))
        sent = threading.Semaphore(0)

        def get(width: int, image_id: str = image_id, sent: threading.Semaphore = sent) -> int:
            sent.release()
            return httpx.get(f"{service}/{image_id}/process", params={"ops": f"resize:w={width}"}, timeout=60
                             ).status_code

        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(get, 100 + i) for i in range(50)]
            for _ in range(12):
                sent.acquire()
            assert httpx.delete(f"{service}/{image_id}", timeout=30).status_code == 204
            statuses = {future.result() for future in futures}
        assert statuses <= {200, 404}, statuses
        time.sleep(1)  # stores answered before the DELETE, or racing it, are done
        assert store.count(image_id) == 0
        orphans = [v.key for v in store.variants(image_id)]
        assert orphans == [], f"trial {trial}: orphans {orphans}"


def test_other_replicas_forget_a_deleted_image_within_a_second(service, client):
    image_id = upload(service, encoded(photo(90, 60, seed=120), "PNG"))
    for _ in range(30):  # both ingress replicas now hold it in memory
        assert httpx.get(f"{service}/{image_id}/grayscale").status_code == 200
    assert client.delete(f"/{image_id}").status_code == 204
    time.sleep(1.0)
    assert {httpx.get(f"{service}/{image_id}/grayscale").status_code for _ in range(30)} == {404}


def test_head_of_an_original_answers_like_get(client):
    image_id = client.post("/upload_file", files={"image": ("h.png", encoded(photo(30, 20, seed=121), "PNG"))}
                           ).json()["image_id"]
    head, get = client.head(f"/{image_id}"), client.get(f"/{image_id}")
    assert head.status_code == get.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"] == "application/json"


@pytest.mark.parametrize("make", ["taller_png", "taller_jpeg"])
def test_files_shorter_than_their_header_are_refused_and_not_stored(service, store, make):
    from tests import test_integrity

    data = getattr(test_integrity, make)()
    response = httpx.post(f"{service}/upload_file", files={"image": ("short", data)}, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "corrupt_image", response.text
    assert store.count(content_id(data)) == 0
