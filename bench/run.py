"""Benchmark: the service against the codec ceiling, in one run on one machine.

    .venv/bin/python bench/run.py [--quick] [--modes default,throughput] [--out bench/results/run.json]

1. Ceiling: the project's own decode -> operation -> encode called in-process, one process per
   core, on photo-like 1 MP and 12 MP JPEG and PNG inputs.
2. The service end to end over HTTP (its own mongod, local Ray, Serve on a free 127.0.0.1 port)
   at concurrency 1, 2 and 8: requests/s, p50, p99, errors; uncached (every request a new image,
   so a real render) and cached (the stored variant).
3. Upload throughput, and a transform replica's peak RSS growth on a 24 MP image.

Prints a table with service/ceiling ratios and writes JSON. Load is bounded in count and time.
The ceiling a row is compared with uses as many processes as the row has requests in flight, up
to one per core: at concurrency 1 the service can keep only one core busy with pixels, too.
"""

from __future__ import annotations

import argparse
import http.client
import io
import itertools
import json
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from deployments.render.allocator import keep_freed_memory
from tests.images import photo_like
from transforms import OPERATIONS, EncodeOptions, Limits, render

ROUTES = tuple(OPERATIONS)
SIZES = {"1MP": (1152, 864), "12MP": (4000, 3000)}
OPTIONS = EncodeOptions()
CONCURRENCY = (1, 2, 8)


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


_UNIQUE = itertools.count()


def variants(pixels: np.ndarray, fmt: str, count: int) -> list[bytes]:
    """Distinct files of the same picture: a new id each, so an uncached render. The counter is written
    as a row of black and white 16x16 blocks, which no JPEG quantisation can make equal."""
    out = []
    for _ in range(count):
        i = next(_UNIQUE)
        copy = pixels.copy()
        for bit in range(16):
            copy[:16, 16 * bit:16 * bit + 16] = 255 if (i >> bit) & 1 else 0
        out.append(encode(copy, fmt))
    return out


# --- 1. ceiling ---------------------------------------------------------------------------------

def _render_many(args: tuple[bytes, str, int]) -> float:
    data, route, repeat = args
    started = time.perf_counter()
    for _ in range(repeat):
        render(data, route, limits=Limits(100_000_000), options=OPTIONS)
    return time.perf_counter() - started


def ceiling(inputs: dict[str, bytes], routes: list[str], repeat: int,
            processes: list[int]) -> dict[str, dict[str, float]]:
    """Renders per second with each number of processes working at once (all in pool workers, each
    working at least a second so that dispatching to the pool is noise)."""
    results = {}
    # The workers keep freed memory as the service's rendering processes do (deployments/allocator.py):
    # the ceiling is the transforms at their best.
    with multiprocessing.get_context("spawn").Pool(max(processes), initializer=keep_freed_memory) as pool:
        for name, data in inputs.items():
            for route in routes:
                pool.map(_render_many, [(data, route, 1)] * max(processes))  # warm up
                single = pool.apply(_render_many, ((data, route, repeat),)) / repeat
                many = max(repeat, int(1.0 / single) + 1)
                row: dict[str, float] = {"ms": single * 1000}
                for count in processes:
                    started = time.perf_counter()
                    pool.map(_render_many, [(data, route, many)] * count, chunksize=1)
                    row[f"rps{count}"] = count * many / (time.perf_counter() - started)
                results[f"{name} {route}"] = row
                print(f"  ceiling {name:10s} {route:9s} {single * 1000:7.1f} ms  " +
                      "  ".join(f"{count} proc {row[f'rps{count}']:6.1f}/s" for count in processes), flush=True)
    return results


# --- 2. the service ------------------------------------------------------------------------------

def load(url_for: Callable[[int], str], count: int, concurrency: int, base: str,
         deadline_s: float = 120.0) -> dict[str, float]:
    """GET count URLs with `concurrency` keep-alive connections. The client shares the machine's cores
    with the service, so it is the leanest the stdlib offers (http.client: about a fifth of httpx's
    CPU per request), lest the load generator's own work be charged to the service."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s
    local = threading.local()
    host, port = base.removeprefix("http://").split(":")

    def one(i: int) -> None:
        nonlocal errors
        if time.monotonic() > stop_at:
            return
        started = time.perf_counter()
        try:
            connection = getattr(local, "connection", None) or http.client.HTTPConnection(host, int(port), timeout=120)
            local.connection = connection
            connection.request("GET", url_for(i))
            response = connection.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            local.connection = None
            ok = False
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            errors += not ok

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {"rps": len(latencies) / wall, "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "errors": errors, "n": len(latencies)}


def upload_all(client: httpx.Client, files: list[bytes]) -> tuple[list[str], float]:
    started = time.perf_counter()
    ids = []
    for data in files:
        response = client.post("/upload_file", files={"image": ("b", data)})
        response.raise_for_status()
        ids.append(response.json()["image_id"])
    return ids, len(files) / (time.perf_counter() - started)


def replica_memory(client: httpx.Client, base: str, size: tuple[int, int] = (6000, 4000)) -> dict[str, float]:
    """Peak RSS growth of the transform replica that renders a big JPEG (24 MP by default), per route."""
    from ray import serve

    from deployments.services import APP_NAME

    handle = serve.get_deployment_handle("Transformer", app_name=APP_NAME)
    width, height = size
    data = encode(photo_like(width, height, seed=99), "JPEG")
    image_id = client.post("/upload_file", files={"image": ("big.jpg", data)}).json()["image_id"]
    decoded_mb = width * height * 3 / 2**20
    out = {"decoded_mb": decoded_mb}
    warm_data = encode(photo_like(width, height, seed=98), "JPEG")
    warm = client.post("/upload_file", files={"image": ("w.jpg", warm_data)})
    client.get(f"/{warm.json()['image_id']}/jpeg").raise_for_status()  # first-use allocations out of the way
    for route in ("grayscale", "png", "jpeg", "mirror"):
        before = handle.memory.remote(reset_peak=True).result()
        client.get(f"/{image_id}/{route}").raise_for_status()
        after = handle.memory.remote(reset_peak=False).result()
        growth = (after["peak_mb"] - before["rss_mb"])
        out[f"{route}_peak_growth_mb"] = growth
        out[f"{route}_ratio"] = growth / decoded_mb
        print(f"  {width * height / 1e6:.0f} MP {route}: peak RSS growth {growth:.0f} MB = "
              f"{growth / decoded_mb:.2f}x the decoded image", flush=True)
    return out


def service(mode: str, inputs: dict[str, bytes], pictures: dict[str, np.ndarray], routes: list[str], quick: bool,
            memory: bool, scale: int = 1) -> dict[str, Any]:

    from deployments import services
    from deployments.config import Settings
    from storage.embedded_mongod import EmbeddedMongod, free_port

    serve_mode, *overrides = mode.split("+")  # e.g. throughput+PROG_IMAGE_TRANSFORM_MIN_REPLICAS=2
    env = {"default": {}, "haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1"},
           "throughput": services.FAST_PATH_ENV}[serve_mode] | dict(item.split("=", 1) for item in overrides)
    os.environ.update(env)
    results: dict[str, Any] = {"mode": mode}
    with tempfile.TemporaryDirectory() as tmp:
        mongod = EmbeddedMongod(Path(tmp) / "mongo").start()
        settings = Settings.from_env(mongo_url=mongod.url, http_port=free_port(), amqp_url="", fast_path=False)
        try:
            services.start_ray(settings, num_cpus=os.cpu_count())  # the mode's environment is set above
            services.start_serve(settings)
            base = f"http://127.0.0.1:{settings.http_port}"
            with httpx.Client(base_url=base, timeout=300) as client:
                if memory:
                    results["memory"] = replica_memory(client, base)
                for name in inputs:
                    big = name.startswith("12MP")
                    counts = dict(zip(CONCURRENCY, (4, 6, 12) if big else (16, 24, 48), strict=True))
                    if quick:
                        counts = {c: max(2, n // 4) for c, n in counts.items()}
                    counts = {c: n * scale for c, n in counts.items()}
                    fmt = "JPEG" if name.endswith("jpeg") else "PNG"
                    for route in routes:
                        # Every replica warm, handles resolved, and the start's background work settled.
                        warm = upload_all(client, variants(pictures[name.split()[0]], fmt, 4 if big else 12))[0]
                        load(lambda i, warm=warm, route=route: f"/{warm[i]}/{route}", len(warm), 2, base)
                        for conc, count in counts.items():
                            files = variants(pictures[name.split()[0]], fmt, count)
                            ids, upload_rps = upload_all(client, files)
                            results.setdefault("upload", {})[name] = upload_rps
                            uncached = load(lambda i, ids=ids, route=route: f"/{ids[i]}/{route}", count, conc, base)
                            cached = load(lambda i, ids=ids, route=route: f"/{ids[i % len(ids)]}/{route}",
                                          count * (1 if big else 3), conc, base)
                            results[f"{name} {route} c{conc}"] = {"uncached": uncached, "cached": cached}
                            print(f"  {mode} {name:10s} {route:9s} c{conc}: uncached {uncached['rps']:6.1f}/s "
                                  f"p50 {uncached['p50_ms']:6.0f} ms  cached {cached['rps']:6.1f}/s "
                                  f"p50 {cached['p50_ms']:5.0f} ms  errors {uncached['errors'] + cached['errors']}",
                                  flush=True)
        finally:
            services.shutdown_ray()
            mongod.stop()
            for key in env:
                os.environ.pop(key, None)
    return results


def ceiling_at(ceil: dict[str, float], concurrency: int) -> float:
    """The in-process rate at this concurrency: one process per request in flight, at most one per core.
    (At concurrency 1 the service, too, can only keep one core busy with the image work.)"""
    return ceil[f"rps{min(concurrency, os.cpu_count() or 1)}"]


def table(ceil: dict[str, dict[str, float]], runs: list[dict[str, Any]]) -> str:
    width = max(10, *(len(run["mode"]) for run in runs))
    lines = [f"{'mode':{width}s} {'input':10s} {'route':9s} {'conc':>4s} {'ceiling/s':>9s} {'uncached/s':>10s} "
             f"{'ratio':>6s} {'p50':>6s} {'p99':>6s} {'cached/s':>9s} {'cached/unc':>10s} {'err':>4s}"]
    for run in runs:
        for key, value in run.items():
            if not isinstance(value, dict) or "uncached" not in value:
                continue
            name, route, conc = key.rsplit(" ", 2)
            top = ceiling_at(ceil[f"{name} {route}"], int(conc[1:]))
            unc, cac = value["uncached"], value["cached"]
            lines.append(f"{run['mode']:{width}s} {name:10s} {route:9s} {conc:>4s} {top:9.1f} {unc['rps']:10.1f} "
                         f"{unc['rps'] / top:6.0%} {unc['p50_ms']:6.0f} {unc['p99_ms']:6.0f} {cac['rps']:9.1f} "
                         f"{cac['rps'] / unc['rps']:9.1f}x {unc['errors'] + cac['errors']:4d}")
    return "\n".join(lines)


def timed(encoder: Callable[[np.ndarray], bytes], pixels: np.ndarray, runs: int) -> tuple[float, bytes]:
    """The median time of `runs` calls (ms), and the output."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = encoder(pixels)
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    parser.add_argument("--modes", default="default,throughput",
                        help="comma-separated Serve modes to compare: default, haproxy, throughput; each may add "
                             "settings, e.g. throughput+PROG_IMAGE_INGRESS_RENDER_MAX_PIXELS=0")
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--sizes", default="1MP,12MP")
    parser.add_argument("--formats", default="JPEG,PNG", help="input formats")
    parser.add_argument("--scale", type=int, default=1, help="requests per row times this (steadier figures)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 24 MP replica memory figure")
    parser.add_argument("--out", default="bench/results/run.json")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    load_avg = os.getloadavg()
    pictures = {size: photo_like(*SIZES[size]) for size in args.sizes.split(",")}
    inputs = {f"{size} {fmt.lower()}": encode(pixels, fmt) for size, pixels in pictures.items()
              for fmt in args.formats.split(",")}
    print(f"inputs: {', '.join(f'{k} {len(v) / 1e6:.1f} MB' for k, v in inputs.items())}; "
          f"load average {load_avg[0]:.2f}", flush=True)
    print("1. in-process ceiling", flush=True)
    routes = args.routes.split(",")
    processes = sorted({min(c, os.cpu_count() or 1) for c in CONCURRENCY})
    ceil = ceiling(inputs, routes, repeat=2 if args.quick else 4, processes=processes)
    png_default = {}
    from transforms.png_fast import encode_png

    def pillow_png(pixels: np.ndarray) -> bytes:
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "PNG")
        return out.getvalue()

    for size, pixels in pictures.items():  # /png against Pillow's default PNG save: the median of 3 each
        (pillow_ms, pillow), (fast_ms, fast) = (timed(encoder, pixels, 3) for encoder in (pillow_png, encode_png))
        png_default[size] = {"pillow_ms": pillow_ms, "fast_ms": fast_ms, "speedup": pillow_ms / fast_ms,
                             "size_ratio": len(fast) / len(pillow)}
        print(f"  PNG encode {size}: Pillow default {pillow_ms:.0f} ms, ours {fast_ms:.0f} ms "
              f"({pillow_ms / fast_ms:.1f}x), size {len(fast) / len(pillow):.3f}x", flush=True)
    print("2. service over HTTP", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    memory = {}
    if not args.no_memory:  # one transform replica, so that the handle reaches the replica that renders
        memory = service("throughput+PROG_IMAGE_TRANSFORM_MIN_REPLICAS=1+PROG_IMAGE_TRANSFORM_MAX_REPLICAS=1",
                         {}, pictures, routes, args.quick, memory=True)["memory"]
    for mode in args.modes.split(","):
        runs.append(service(mode, inputs, pictures, routes, args.quick, memory=False, scale=args.scale))
        # Partial results survive a later failure.
        out.write_text(json.dumps({"load_average": load_avg, "ceiling": ceil, "png_encode": png_default,
                                   "memory": memory, "runs": runs}, indent=2))
    report = table(ceil, runs)
    print(report)
    for run in runs:
        print(f"upload/s ({run['mode']}): " + ", ".join(f"{k} {v:.1f}" for k, v in run.get("upload", {}).items()))
    out.write_text(json.dumps({"load_average": load_avg, "ceiling": ceil, "png_encode": png_default,
                               "memory": memory, "runs": runs, "table": report}, indent=2))
    print(f"wrote {out}; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
