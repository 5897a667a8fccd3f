"""The CPU budget of one uncached request: where the machine's CPU goes, by process, and how much of it is
pixel work (decode, operation, encode) and how much the request path.

    .venv/bin/prog-image serve &          # prog-image on :8000
    .venv/bin/python bench/request_budget.py [--floor] [--routes jpeg,grayscale] [--py-spy]

Per route: fresh 1 MP q90 JPEGs are uploaded, then each is asked for once (uncached) at concurrency 2
with a new connection per request, while /proc gives every process's CPU before and after (bench/cpu_split).
The pixel work is the same render in this process (transforms.run of the route's pipeline, time.process_time,
median over the same originals). Non-pixel = all processes but this client, minus the pixel work.
--floor adds the same rows for the render floor (bench/thumbor_side_by_side.py): a bare Serve app doing the
same render from files, storing nothing. Its non-pixel CPU is Serve's own share (HAProxy, the replica's
Serve machinery, the controller), which no app on Serve can go below.
--py-spy records the ingress replicas during the prog-image rounds (flat top functions, printed).
Appends the table to bench/figures/request_budget.txt with the machine's load before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cpu_split import snapshot
from bench.thumbor_side_by_side import machine, render_floor, timed, upload
from tests.images import encoded, photo

FIGURES = Path(__file__).parent / "figures" / "request_budget.txt"
# route -> (prog-image path for an id, the pipeline as the service runs it)
ROUTES = {
    "jpeg": ("/{id}/jpeg", "jpeg"),
    "png": ("/{id}/png", "png"),
    "grayscale": ("/{id}/grayscale", "grayscale"),
    "mirror": ("/{id}/mirror", "mirror"),
    "process": ("/{id}/process?ops=resize:w=800", "process"),
}
CLIENT = "client (this process)"


def pixel_ms(originals: list[bytes], route: str) -> float:
    """Median CPU ms of the route's render in this process: decode, operation, encode, nothing else."""
    from deployments.config import Settings
    from deployments.render.allocator import keep_freed_memory
    from transforms import OPERATIONS, parse, run

    keep_freed_memory()
    settings = Settings()
    pipeline = OPERATIONS[route] if route in OPERATIONS else parse("resize:w=800")
    run(originals[0], pipeline, limits=settings.limits, options=settings.encode_options)  # warm
    spent = []
    for data in originals:
        started = time.process_time()
        run(data, pipeline, limits=settings.limits, options=settings.encode_options)
        spent.append((time.process_time() - started) * 1000)
    return statistics.median(spent)


def line_items(mongo_url: str, originals: list[bytes]) -> list[str]:
    """The request path's costs one by one, each measured alone here (CPU ms per call: this process, and
    mongod's for database calls), on originals the service stored."""
    import asyncio

    from ray.serve._private.thirdparty.get_asgi_route_name import get_asgi_route_name

    from deployments.config import Settings
    from deployments.http.image_lane import serve_routes
    from deployments.http.ingress import create_app
    from storage import ImageStore, content_id
    from transforms.decode import probe_header

    store = ImageStore(mongo_url, Settings().mongo_db)
    files = [store.find(content_id(data)) for data in originals] * 5  # mongod's CPU is counted in 10 ms ticks

    def timed(call: object, items: list, mongod: bool = True) -> str:
        before, started = snapshot()["mongod"], time.process_time()
        for item in items:
            call(item)  # type: ignore[operator]
        spent = (time.process_time() - started) * 1000 / len(items)
        return f"{spent:6.3f} ms" + (f", mongod {(snapshot()['mongod'] - before) * 1000 / len(items):.3f} ms"
                                     if mongod else "")

    async def hops() -> None:
        for _ in range(200):
            await asyncio.to_thread(int)

    app = create_app(Settings(amqp_url=""), None)
    shown = type("Shown", (), {"routes": serve_routes(app.routes), "router": app.router})()
    scope = {"type": "http", "path": f"/{files[0].key}/mirror", "method": "GET", "root_path": ""}
    started = time.process_time()
    asyncio.run(hops())
    hop = f"{(time.process_time() - started) * 5:6.3f} ms"  # 200 hops
    limits = Settings().limits
    items = [
        ("lookup, variant and original documents (find_many)",
         timed(lambda f: store.find_many([f.key + "/x", f.key]), files)),
        ("lookup with the original's bytes (find_with_data)",
         timed(lambda f: store.find_with_data([f.key + "/x", f.key], inline_max=4 << 20), files)),
        ("the original read alone (GridFS chunks)", timed(store.read, files)),
        ("a thread hop (asyncio.to_thread)", hop),
        ("the header parsed (probe_header)", timed(lambda d: probe_header(d, limits), originals, False)),
        ("Serve labels the request, by FastAPI's routes", timed(lambda _: get_asgi_route_name(app, scope),
                                                                 range(500), False)),
        ("Serve labels the request, the lane's labels first", timed(lambda _: get_asgi_route_name(shown, scope),
                                                                     range(500), False)),
    ]
    return ["line by line (CPU per call, each measured alone):", *(f"  {name:<52} {cost}" for name, cost in items)]


def ingress_pids() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"ServeReplica:prog-image:Api" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def measured(port: int, paths: list[str], concurrency: int) -> tuple[float, dict[str, float]]:
    """req/s and CPU ms per request by kind of process."""
    before = snapshot()
    rate, _ = timed(port, paths, concurrency)
    after = snapshot()
    return rate, {kind: (after[kind] - before.get(kind, 0)) * 1000 / len(paths) for kind in after}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--requests", type=int, default=120, help="uncached requests per route and service")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--floor", action="store_true", help="add the render floor (bare Serve app) rows")
    parser.add_argument("--py-spy", action="store_true", help="profile the ingress replicas (needs py-spy)")
    parser.add_argument("--gil", action="store_true", help="with --py-spy: only threads holding the GIL (Python)")
    parser.add_argument("--mongo-url", help="the service's MongoDB (prog-image serve prints it): adds the line items")
    parser.add_argument("--label", default="", help="a note for the figures' heading (e.g. before/after)")
    args = parser.parse_args()
    routes = args.routes.split(",")
    root = Path(tempfile.mkdtemp(prefix="bench-budget-"))
    floor_routes = [r for r in routes if r != "process"]
    with render_floor(root) if args.floor else contextlib.nullcontext() as floor:
        images: dict[str, list[tuple[str, str, bytes]]] = {}
        for route in routes:
            images[route] = []
            for index in range(args.requests + 1):
                data = encoded(photo(1152, 864, seed=hash(("budget", route, index, time.time())) % 10**6), "JPEG",
                               quality=90)
                name = f"{route}-{index}.jpg"
                (root / name).write_bytes(data)
                images[route].append((upload(args.port, data), name, data))
        os.sync()
        time.sleep(5)
        load_before = os.getloadavg()[0]
        rows: list[tuple[str, float, float, Counter[str] | dict[str, float]]] = []
        spy = None
        if args.py_spy:
            py_spy = [str(Path(sys.executable).with_name("py-spy")), "record", "-f", "raw", "-r", "200",
                      "--nonblocking", *(["--gil"] if args.gil else [])]
            spy = [subprocess.Popen([*py_spy, "-p", str(pid), "-o", str(root / f"{pid}.txt")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in ingress_pids()]
            time.sleep(1)
        for route in routes:
            path, _ = ROUTES[route]
            warm, *batch = images[route]
            timed(args.port, [path.format(id=warm[0])], 1)
            rate, spent = measured(args.port, [path.format(id=image_id) for image_id, _, _ in batch],
                                   args.concurrency)
            rows.append((route, rate, pixel_ms([data for _, _, data in batch[:15]], route), spent))
        if spy:
            for process in spy:
                process.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                process.wait()
        if floor:
            for route in floor_routes:
                batch = images[route][1:]
                timed(args.port, [f"{floor}/{route}/{images[route][0][1]}"], 1)
                rate, spent = measured(args.port, [f"{floor}/{route}/{name}" for _, name, _ in batch],
                                       args.concurrency)
                rows.append((f"{route} (render floor)", rate, pixel_ms([d for _, _, d in batch[:15]], route), spent))
        kinds = sorted({k for *_, spent in rows for k, ms in spent.items() if ms >= 0.05 and k != CLIENT})
        lines = [f"# bench/request_budget.py, {time.strftime('%Y-%m-%d %H:%M')}, {machine()}"
                 + (f", {args.label}" if args.label else ""),
                 f"1152x864 q90 JPEG originals, uncached, concurrency {args.concurrency}, {args.requests} requests "
                 f"per row; CPU ms per request by process; load average {load_before:.2f} before, "
                 f"{os.getloadavg()[0]:.2f} after",
                 f"{'row':<26} {'req/s':>6} {'all':>6} {'pixels':>6} {'non-pixel':>9}   by process"]
        for name, rate, pixels, spent in rows:
            total = sum(ms for kind, ms in spent.items() if kind != CLIENT)
            by = ", ".join(f"{kind} {spent[kind]:.1f}" for kind in sorted(kinds, key=lambda k: -spent.get(k, 0))
                           if spent.get(kind, 0) >= 0.05)
            lines.append(f"{name:<26} {rate:>6.1f} {total:>6.1f} {pixels:>6.1f} {total - pixels:>9.1f}   {by}")
        if args.mongo_url:
            lines += line_items(args.mongo_url, [data for _, _, data in images[routes[0]][1:41]])
        print("\n".join(lines))
        with FIGURES.open("a") as figures:
            figures.write("\n" + "\n".join(lines) + "\n")
        if spy:
            print_profile(root)


def print_profile(root: Path, top: int = 40) -> None:
    """The ingress's functions by own samples and by samples under them, from py-spy's raw (collapsed) stacks."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    total = 0
    for file in root.glob("*.txt"):
        for line in file.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            frames = stack.split(";")
            total += int(count)
            own[frames[-1]] += int(count)
            for frame in set(frames):
                under[frame] += int(count)
    print(f"\npy-spy: {total} samples of the ingress replicas")
    print("own:")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f} %  {frame}")
    print("inclusive:")
    for frame, count in under.most_common(top * 2):
        print(f"  {100 * count / total:5.1f} %  {frame}")


if __name__ == "__main__":
    main()
