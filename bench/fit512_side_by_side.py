"""imgproxy's benchmark workload, prog-image and thumbor side by side in one run: 2K photos fit into
512x512 and re-encoded to their own format (JPEG q80, PNG, WebP q75), uncached, 2 keep-alive clients.

    .venv/bin/prog-image serve &          # prog-image on :8000
    .venv/bin/python bench/fit512_side_by_side.py [--thumbor-processes 2]

Thumbor (installed in its own virtualenv when --thumbor is not given) is configured as in
imgproxy/image-servers-benchmark: one process with ENGINE_THREADPOOL_SIZE = 2, progressive JPEG, LANCZOS;
file loader, no storage. --thumbor-processes 2 runs the two-process variant. prog-image writes
progressive JPEG too, so both make the same kind of file. Every request is a new image for both; rounds
alternate between them. Per format it prints the rates and their ratio, the mean output size, and the
mean absolute pixel error of each output against Pillow's own LANCZOS resize of the same original.
"""

from __future__ import annotations

import http.client
import io
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.thumbor_side_by_side import machine, peer_arguments, peer_rows, settle, thumbor_running, upload
from tests.images import photo_like

FORMATS = {"jpg": ("JPEG", 80), "png": ("PNG", None), "webp": ("WEBP", 75)}
THUMBOR_CONF = """LOADER = 'thumbor.loaders.file_loader'
FILE_LOADER_ROOT_PATH = '{root}'
STORAGE = 'thumbor.storages.no_storage'
RESULT_STORAGE = 'thumbor.result_storages.no_storage'
ENGINE_THREADPOOL_SIZE = 2
PROGRESSIVE_JPEG = True
PILLOW_RESAMPLING_FILTER = 'LANCZOS'
MAX_AGE = 0
"""
FIGURES = Path(__file__).parent / "figures" / "fit512_side_by_side.txt"


def source(fmt: str, seed: int) -> bytes:
    pixels = photo_like(2040, 1356, seed=seed)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return out.getvalue()


def fetch_all(port: int, paths: list[str], concurrency: int) -> tuple[float, list[bytes]]:
    """GET every path with `concurrency` keep-alive connections; (requests per second, bodies)."""
    local = threading.local()

    def one(path: str) -> bytes:
        connection = getattr(local, "connection", None) or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        local.connection = connection
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status, body[:200])
        return body

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        bodies = list(pool.map(one, paths))
    return len(paths) / (time.perf_counter() - started), bodies


def pixel_error(original: bytes, output: bytes) -> float:
    """Mean absolute difference (levels) from Pillow's LANCZOS resize of the original to the output's size."""
    made = Image.open(io.BytesIO(output)).convert("RGB")
    reference = Image.open(io.BytesIO(original)).convert("RGB").resize(made.size, Image.Resampling.LANCZOS)
    return float(np.abs(np.asarray(made, np.int16) - np.asarray(reference, np.int16)).mean())


def main() -> None:
    parser = peer_arguments(30)
    parser.add_argument("--thumbor-processes", type=int, default=1, help="1: as imgproxy's benchmark; 2: one per core")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-fit512-"))
    thumbor_port = 8891
    with thumbor_running(args.thumbor, THUMBOR_CONF.format(root=root), root, thumbor_port, args.thumbor_processes):
        count = args.rounds * args.requests
        images: dict[str, list[tuple[str, str, bytes]]] = {}  # format -> (prog-image id, thumbor name, bytes)
        for ext, (fmt, _) in FORMATS.items():
            images[ext] = []
            for index in range(count):
                data = source(fmt, seed=int(time.time()) % 100_000 * 1000 + index)
                name = f"{ext}-{index}.{ext}"
                (root / name).write_bytes(data)
                images[ext].append((upload(args.port, data), name, data))
        settle()

        def paths(ext: str, batch: list[tuple[str, str, bytes]], service: str) -> list[str]:
            fmt, quality = FORMATS[ext]
            if service == "thumbor":
                filters = f"filters:quality({quality})/" if quality else ""
                return [f"/unsafe/fit-in/512x512/{filters}{name}" for _, name, _ in batch]
            query = f"&quality={quality}" + ("&progressive=1" if fmt == "JPEG" else "") if quality else ""
            return [f"/{image_id}/process?ops=resize:w=512:h=512&format={fmt.lower()}{query}"
                    for image_id, _, _ in batch]

        load_before = os.getloadavg()[0]
        results = {ext: {s: {"rates": [], "sizes": [], "errors": []} for s in ("prog-image", "thumbor")}
                   for ext in FORMATS}
        for round_index in range(args.rounds):
            for ext in FORMATS:
                batch = images[ext][round_index * args.requests:(round_index + 1) * args.requests]
                order = ("prog-image", "thumbor") if round_index % 2 == 0 else ("thumbor", "prog-image")
                for service in order:
                    port = args.port if service == "prog-image" else thumbor_port
                    rate, bodies = fetch_all(port, paths(ext, batch, service), args.concurrency)
                    row = results[ext][service]
                    row["rates"].append(rate)
                    row["sizes"] += [len(body) for body in bodies]
                    row["errors"] += [pixel_error(data, body) for (_, _, data), body in zip(batch, bodies, strict=True)
                                      ][:5]
        lines = [f"# bench/fit512_side_by_side.py, {time.strftime('%Y-%m-%d %H:%M')}, {machine()}, thumbor with "
                 f"{args.thumbor_processes} process(es)",
                 f"2040x1356 photos fit into 512x512, uncached, {args.concurrency} keep-alive clients, {args.rounds} "
                 f"interleaved rounds of {args.requests}; load average {load_before:.2f} before, "
                 f"{os.getloadavg()[0]:.2f} after", *peer_rows("format", results)]
        lines.append("rounds (prog-image / thumbor req/s): " + "; ".join(
            f"{ext} " + ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(by["prog-image"]["rates"], by["thumbor"]["rates"],
                                                                     strict=True)) for ext, by in results.items()))
        print("\n".join(lines))
        FIGURES.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
