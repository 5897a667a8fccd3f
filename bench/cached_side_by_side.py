"""Cached answers side by side, in one run: prog-image from its memory, prog-image behind the shipped
HTTP cache (deployments/nginx.conf), and thumbor serving from its file result storage.

    apt-get install -y wrk nginx
    .venv/bin/prog-image serve &          # prog-image on :8000
    .venv/bin/python bench/cached_side_by_side.py [--floor]   # thumbor: installed in its own venv if not given

The load comes from wrk (a C client: a Python one costs more CPU per request than a cached answer does),
concurrency 2, a new connection per request for all three (`Connection: close`). Thumbor runs with two
processes and `RESULT_STORAGE = 'thumbor.result_storages.file_storage'` (unsafe URLs stored too), so a
repeated URL is read from its result files. Rounds alternate between the three; prints the median rate
of each and the ratios, with the machine's load average.

--floor adds a fourth row: the least a Ray Serve answer costs here. It deploys, beside prog-image on the
same Serve instance, an app of the same shape (FastAPI ingress, as many replicas as prog-image's ingress)
whose one route returns a constant body as large as the variant: no cache, no lookup, no middleware.
No image server on Ray Serve's HTTP path can answer a cached variant faster than that row.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi import FastAPI
from fastapi.responses import Response

from bench.thumbor_side_by_side import (
    THUMBOR_CONF,
    THUMBOR_PATHS,
    bare_serve_app,
    get,
    peer_arguments,
    thumbor_running,
    upload,
)
from tests.images import encoded, photo_like
from tests.nginx_front import nginx_front

FIGURES = Path(__file__).parent / "figures" / "cached_side_by_side.txt"
RESULT_STORAGE = """RESULT_STORAGE = 'thumbor.result_storages.file_storage'
RESULT_STORAGE_FILE_STORAGE_ROOT_PATH = '{root}/results'
RESULT_STORAGE_STORES_UNSAFE = True
"""


def wrk(url: str, seconds: float) -> float:
    out = subprocess.run(["wrk", "-t1", "-c2", f"-d{seconds:g}s", "-H", "Connection: close", url],
                         capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed answers")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def serve_floor(body: bytes, replicas: int) -> contextlib.AbstractContextManager[str]:
    """A constant answer through Ray Serve's HTTP path, on the running Serve instance."""
    app = FastAPI()

    @app.get("/constant")
    async def constant() -> Response:
        return Response(body, media_type="image/jpeg")

    return bare_serve_app(app, "serve-floor", replicas)


def main() -> None:
    parser = peer_arguments(0)
    parser.add_argument("--seconds", type=float, default=5.0, help="per round and service")
    parser.add_argument("--route", default="grayscale", choices=list(THUMBOR_PATHS))
    parser.add_argument("--floor", action="store_true", help="add the Ray Serve floor row (see the docstring)")
    parser.add_argument("--floor-replicas", type=int, default=2, help="replicas of the floor app (prog-image's "
                        "ingress replicas)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-cached-"))
    conf = THUMBOR_CONF.replace("RESULT_STORAGE = 'thumbor.result_storages.no_storage'\n",
                                RESULT_STORAGE.format(root=root)).format(root=root)
    thumbor_port = 8892
    with thumbor_running(args.thumbor, conf, root, thumbor_port, processes=2):
        data = encoded(photo_like(1152, 864, seed=int(time.time()) % 100_000), "JPEG", quality=90)
        (root / "photo.jpg").write_bytes(data)
        image_id = upload(args.port, data)
        service = f"http://127.0.0.1:{args.port}"
        variant = urllib.request.urlopen(f"{service}/{image_id}/{args.route}").read()
        with nginx_front(service) as edge, \
                serve_floor(variant, args.floor_replicas) if args.floor else contextlib.nullcontext() as floor:
            urls = {"prog-image": f"{service}/{image_id}/{args.route}",
                    "prog-image behind nginx": f"{edge}/{image_id}/{args.route}",
                    "thumbor (file result storage)":
                        f"http://127.0.0.1:{thumbor_port}{THUMBOR_PATHS[args.route].format(name='photo.jpg')}"}
            if floor:
                urls["Ray Serve floor (constant)"] = f"{service}{floor}/constant"
            for _ in range(100):  # thumbor up
                try:
                    get(thumbor_port, "/healthcheck")
                    break
                except OSError:
                    time.sleep(0.2)
            for url in urls.values():  # rendered, stored and warm everywhere
                wrk(url, 1)
            load_before = os.getloadavg()[0]
            rates: dict[str, list[float]] = {name: [] for name in urls}
            for round_index in range(args.rounds):
                order = list(urls) if round_index % 2 == 0 else list(reversed(urls))
                for name in order:
                    rates[name].append(wrk(urls[name], args.seconds))
        theirs = statistics.median(rates["thumbor (file result storage)"])
        lines = [f"1152x864 JPEG -> {args.route}, cached, wrk -c2 with a new connection per request, {args.rounds} "
                 f"interleaved rounds of {args.seconds:g} s; load average {load_before:.2f} before, "
                 f"{os.getloadavg()[0]:.2f} after",
                 f"{'service':<30} {'req/s':>8} {'/ thumbor':>10}   rounds"]
        for name, values in rates.items():
            ours = statistics.median(values)
            lines.append(f"{name:<30} {ours:>8.0f} {ours / theirs:>9.2f}x   " + ", ".join(f"{v:.0f}" for v in values))
        print("\n".join(lines))
        FIGURES.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
