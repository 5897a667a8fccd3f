"""prog-image and thumbor side by side: uncached seed routes on fresh JPEG photos, in one run.

    .venv/bin/prog-image serve &          # prog-image on :8000
    .venv/bin/python bench/thumbor_side_by_side.py [--width 4000 --height 3000]

Without --thumbor, the latest thumbor is installed in its own virtualenv (THUMBOR_VENV, never the
project's) the first time.

Thumbor runs as in the shared notes' peer figures: `--processes 2`, file loader, no original or result
storage (its default file storage would serve a later run's same-named files from an earlier one),
baseline JPEG at q85, PNG at its default zlib level. Every request is a new image for both (uncached).
Rounds alternate between the two services; each request opens a new connection (http.client, a light
client on the same cores).
--floor adds a row per route: the same render (transforms.render: the same decode, operation and encoder)
in a bare Ray Serve app on the running Serve instance, reading the original from a file as thumbor does and
storing nothing. It is the most prog-image's request path could reach on these codecs: what prog-image
answers below it is its own per-request work (MongoDB, the render service, its middleware).
Prints req/s per route and the ratio, with the machine's load average, and for each service the mean
output size and the mean absolute pixel error of its outputs against Pillow's own rendering of the same
original (the route's operation on Pillow's decode); appends them to bench/figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from ctypes.util import find_library
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from fastapi import FastAPI
from fastapi.responses import Response
from PIL import Image

from bench.cpu_split import snapshot
from tests.images import encoded, photo

CLIENT = "client (this process)"

THUMBOR_VENV = Path(tempfile.gettempdir()) / "thumbor-venv"
FIGURES = Path(__file__).parent / "figures" / "thumbor_side_by_side.txt"
THUMBOR_PATHS = {"jpeg": "/unsafe/{name}", "grayscale": "/unsafe/filters:grayscale()/{name}",
                 "mirror": "/unsafe/-0x0/{name}", "png": "/unsafe/filters:format(png)/{name}"}
THUMBOR_CONF = """LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = '{root}'
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = 'thumbor.result_storages.no_storage'
QUALITY = 85
PROGRESSIVE_JPEG = False
MAX_AGE = 0
"""


def fetch(port: int, path: str) -> tuple[int, bytes]:
    """GET on a new connection: (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def get(port: int, path: str) -> int:
    return fetch(port, path)[0]


def installed_thumbor(executable: str | None) -> str:
    """The thumbor to measure: the given one, else the latest from PyPI in its own virtualenv."""
    if executable:
        return executable
    thumbor = THUMBOR_VENV / "bin" / "thumbor"
    if not thumbor.exists():
        subprocess.run([sys.executable, "-m", "venv", str(THUMBOR_VENV)], check=True)
        subprocess.run([str(THUMBOR_VENV / "bin" / "pip"), "install", "-q", "--upgrade", "thumbor"], check=True)
    return str(thumbor)


def machine() -> str:
    """What a figure depends on: the cores, and whether a system libturbojpeg is there (nothing needs it)."""
    return f"{os.cpu_count()} cores, system libturbojpeg {'installed' if find_library('turbojpeg') else 'absent'}"


def peer_rows(name: str, results: dict[str, dict[str, dict[str, list[float]]]]) -> list[str]:
    """A peer table's head, and per row (results[row][service]: rates, sizes, errors) and service other than
    thumbor, the median rates, their ratio to thumbor's, and the mean output sizes and pixel errors."""
    lines = [f"{name:<22} {'service/s':>10} {'thumbor/s':>10} {'ratio':>6}   {'CPU ms/req (ours/theirs)':>24} "
             f"{'ratio':>6}   {'bytes (ours/theirs)':>21}   {'pixel error (ours/theirs)':>25}"]
    for row, by in results.items():
        theirs = by["thumbor"]
        for service, ours in by.items():
            if service == "thumbor":
                continue
            rate, peer = statistics.median(ours["rates"]), statistics.median(theirs["rates"])
            label = row if service == "prog-image" else f"{row} ({service})"
            cpu = cpu_columns(ours.get("cpu"), theirs.get("cpu"))
            lines.append(f"{label:<22} {rate:>10.1f} {peer:>10.1f} {rate / peer:>5.2f}x   {cpu}   "
                         f"{statistics.mean(ours['sizes']):>9.0f} / {statistics.mean(theirs['sizes']):<9.0f}   "
                         f"{statistics.mean(ours['errors']):>11.2f} / {statistics.mean(theirs['errors']):<11.2f}")
    return lines


def cpu_per_request(before: Counter[str], after: Counter[str], requests: int, thumbor: bool) -> float:
    """CPU ms per request of a service's processes: thumbor's own, or every other one but the client's (Ray,
    Serve, HAProxy and MongoDB included: the whole machine's cost of an answer)."""
    spent = {kind: after[kind] - before.get(kind, 0) for kind in after}
    mine = spent.get("thumbor", 0) if thumbor else sum(v for k, v in spent.items() if k not in ("thumbor", CLIENT))
    return mine * 1000 / requests


def cpu_columns(ours: list[float] | None, theirs: list[float] | None) -> str:
    """Median CPU ms per request, ours / thumbor's, and thumbor's over ours (higher: we cost less)."""
    if not ours or not theirs:
        return f"{'':>24} {'':>6}"
    mine, peer = statistics.median(ours), statistics.median(theirs)
    return f"{mine:>11.1f} / {peer:<10.1f} {peer / mine:>5.2f}x"


def reference(original: bytes, route: str) -> Image.Image:
    """Pillow's own rendering of a seed route, before any encoding."""
    image = Image.open(io.BytesIO(original)).convert("RGB")
    return {"grayscale": lambda: image.convert("L"),
            "mirror": lambda: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)}.get(route, lambda: image)()


def pixel_error(expected: Image.Image, output: bytes) -> float:
    """Mean absolute difference (levels) of an output from the expected pixels."""
    made = Image.open(io.BytesIO(output)).convert(expected.mode)
    return float(np.abs(np.asarray(made, np.int16) - np.asarray(expected, np.int16)).mean())


def upload(port: int, data: bytes) -> str:
    boundary = "benchboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/upload_file", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    answer = json.loads(connection.getresponse().read())
    connection.close()
    return answer["image_id"]


def timed(port: int, paths: list[str], concurrency: int) -> tuple[float, list[bytes]]:
    """Requests per second over the paths, and the bodies."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda path: fetch(port, path), paths))
    elapsed = time.perf_counter() - started
    assert all(status == 200 for status, _ in answers), sorted({status for status, _ in answers})
    return len(paths) / elapsed, [body for _, body in answers]


@contextlib.contextmanager
def thumbor_running(executable: str | None, conf: str, root: Path, port: int, processes: int = 1) -> Iterator[None]:
    """thumbor with this configuration on port, for the block; its worker processes stop with it."""
    executable = installed_thumbor(executable)
    if subprocess.run(["fuser", f"{port}/tcp"], capture_output=True).returncode == 0:
        raise SystemExit(f"port {port} is taken (a thumbor left from an earlier run?)")
    (root / "thumbor.conf").write_text(conf)
    thumbor = subprocess.Popen([executable, "--conf", str(root / "thumbor.conf"), "--port", str(port), "--processes",
                                str(processes), "-l", "error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        yield
    finally:
        os.killpg(thumbor.pid, signal.SIGTERM)
        thumbor.wait()


@contextlib.contextmanager
def bare_serve_app(app: FastAPI, name: str, replicas: int = 2) -> Iterator[str]:
    """A FastAPI app as a bare Serve deployment on the running Serve instance (no prog-image code on its
    request path; its access log off, as prog-image's); yields its route prefix."""
    import ray
    from ray import serve

    # Serve takes an endpoint whose qualname starts with the class's for a method of it: no endpoint is
    # named like this class.
    deployment = serve.deployment(num_replicas=replicas, max_ongoing_requests=64, ray_actor_options={"num_cpus": 0},
                                  logging_config={"enable_access_log": False}, name=name)(
        serve.ingress(app)(type("BareServeApp", (), {})))
    ray.init(address="auto", log_to_driver=False)
    serve.run(deployment.bind(), name=name, route_prefix=f"/{name}")
    try:
        yield f"/{name}"
    finally:
        serve.delete(name)
        ray.shutdown()


def render_floor(root: Path) -> contextlib.AbstractContextManager[str]:
    """A bare Serve app that renders /{route}/{name} from root's files (see --floor). Its replicas keep freed
    memory as prog-image's rendering processes do (deployments/allocator.py): without that, page faults
    made its 1 MP JPEG renders a fifth slower (18.9 against 15.1 ms of replica CPU per request)."""
    from deployments.config import Settings
    from deployments.render.allocator import keep_freed_memory
    from transforms import render

    app = FastAPI()
    settings = Settings()

    @app.get("/{route}/{name}")
    async def rendered(route: str, name: str) -> Response:
        keep_freed_memory()  # once per process (cached)
        data = (root / name).read_bytes()
        out = await asyncio.to_thread(render, data, route, limits=settings.limits, options=settings.encode_options)
        return Response(out.data, media_type=out.media_type)

    return bare_serve_app(app, "render-floor")


def settle(seconds: float = 65.0) -> None:
    """After the uploads, before the timed rounds: flush the written files and wait out MongoDB's next
    checkpoint (every 60 s). Right after 1.5 GB of uploads the renders measured 20 % slower (78 against
    97 req/s, mongod and the replicas both busier) until it had passed: the rounds measure rendering,
    not the setup's write-back."""
    os.sync()
    time.sleep(seconds)


def peer_arguments(requests: int) -> argparse.ArgumentParser:
    """The options every side-by-side bench takes."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--thumbor", help="path of a thumbor executable in its own venv (default: the latest, "
                        f"installed in {THUMBOR_VENV} the first time)")
    parser.add_argument("--port", type=int, default=8000, help="prog-image's HTTP port")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=requests, help="timed requests per round, row and service")
    parser.add_argument("--concurrency", type=int, default=2)
    return parser


def main() -> None:
    parser = peer_arguments(40)
    parser.add_argument("--width", type=int, default=1152)
    parser.add_argument("--height", type=int, default=864)
    parser.add_argument("--quality", type=int, default=90, help="the originals' JPEG quality (80: at most the "
                        "output's 85, so jpeg, mirror and grayscale are answered exactly; see transforms.jpeg_exact)")
    parser.add_argument("--routes", default=",".join(THUMBOR_PATHS), help="comma-separated, of these: "
                        + ", ".join(THUMBOR_PATHS))
    parser.add_argument("--floor", action="store_true", help="add the render floor rows (see the docstring)")
    args = parser.parse_args()
    routes = {route: THUMBOR_PATHS[route] for route in args.routes.split(",")}
    count = args.rounds * args.requests
    root = Path(tempfile.mkdtemp(prefix="bench-thumbor-"))
    thumbor_port = 8890
    with thumbor_running(args.thumbor, THUMBOR_CONF.format(root=root), root, thumbor_port, processes=2), \
            render_floor(root) if args.floor else contextlib.nullcontext() as floor:
        services = ("prog-image", "thumbor", *(["render floor"] if floor else []))
        images: dict[str, list[tuple[str, str, bytes]]] = {}  # route -> (prog-image id, thumbor name, bytes)
        for route in routes:
            images[route] = []
            for index in range(count + 2):
                data = encoded(photo(args.width, args.height, seed=hash((route, index)) % 10**6), "JPEG",
                               quality=args.quality)
                name = f"{route}-{index}.jpg"
                (root / name).write_bytes(data)
                images[route].append((upload(args.port, data), name, data))
        for _ in range(100):
            try:
                first = next(iter(routes))
                get(thumbor_port, THUMBOR_PATHS[first].format(name=images[first][-1][1]))
                break
            except OSError:
                time.sleep(0.2)
        settle()
        for route in routes:  # warm both (the last two images of each route are for this)
            get(args.port, f"/{images[route][-2][0]}/{route}")
            get(thumbor_port, THUMBOR_PATHS[route].format(name=images[route][-2][1]))
            if floor:
                get(args.port, f"{floor}/{route}/{images[route][-2][1]}")
        load_before = os.getloadavg()[0]
        results = {route: {s: {"rates": [], "sizes": [], "errors": [], "cpu": []} for s in services}
                   for route in routes}
        for round_index in range(args.rounds):
            for route in routes:
                batch = images[route][round_index * args.requests:(round_index + 1) * args.requests]
                for service in services[round_index % len(services):] + services[:round_index % len(services)]:
                    before = snapshot()
                    if service == "prog-image":
                        rate, bodies = timed(args.port, [f"/{image_id}/{route}" for image_id, _, _ in batch],
                                             args.concurrency)
                    elif service == "render floor":
                        rate, bodies = timed(args.port, [f"{floor}/{route}/{name}" for _, name, _ in batch],
                                             args.concurrency)
                    else:
                        rate, bodies = timed(thumbor_port, [THUMBOR_PATHS[route].format(name=name)
                                                            for _, name, _ in batch], args.concurrency)
                    row = results[route][service]
                    row["cpu"].append(cpu_per_request(before, snapshot(), len(batch), service == "thumbor"))
                    row["rates"].append(rate)
                    row["sizes"] += [len(body) for body in bodies]
                    row["errors"] += [pixel_error(reference(data, route), body)  # a few per round: they cost
                                      for (_, _, data), body in list(zip(batch, bodies, strict=True))[:3]]
        lines = [f"# bench/thumbor_side_by_side.py, {time.strftime('%Y-%m-%d %H:%M')}, {machine()}",
                 f"{args.width}x{args.height} JPEG q{args.quality}, uncached, concurrency {args.concurrency}, "
                 f"{args.rounds} interleaved rounds of {args.requests} requests; load average {load_before:.2f} "
                 f"before, {os.getloadavg()[0]:.2f} after", *peer_rows("route", results)]
        print("\n".join(lines))
        with FIGURES.open("a") as figures:
            figures.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
