"""The two wheels that offer libjpeg-turbo's lossless transform (tjTransform), measured side by side in
one run: speed (1 MP and 12 MP, HFLIP and luma-only), whether two threads run at once (the GIL), and
hostile input (truncated, bit-flipped and header-edited JPEGs), each transform in a child process so a
crash or an exit shows as such and cannot end the run.

    python bench/jpeg_exact_candidates.py [--fuzz 500]

Needs both candidates installed beside the project (pip install turbojpeg jpegtran-cffi-wheels);
the project itself depends only on the chosen one. Figures: bench/figures/jpeg_exact_candidates.txt.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.images import photo_like

FIGURES = Path(__file__).with_name("figures") / "jpeg_exact_candidates.txt"


def turbojpeg_flip(data: bytes) -> bytes:
    import turbojpeg
    return turbojpeg.transform(data, op=turbojpeg.OP.HFLIP, perfect=True, copynone=True)


def turbojpeg_gray(data: bytes) -> bytes:
    import turbojpeg
    return turbojpeg.transform(data, gray=True, copynone=True)


def jpegtran_flip(data: bytes) -> bytes:
    from jpegtran.lib import Transformation
    return bytes(Transformation(data).flip("horizontal"))


def jpegtran_gray(data: bytes) -> bytes:
    from jpegtran.lib import Transformation
    return bytes(Transformation(data).grayscale())


CANDIDATES: dict[str, dict[str, Callable[[bytes], bytes]]] = {
    "turbojpeg 0.0.2": {"hflip": turbojpeg_flip, "gray": turbojpeg_gray},
    "jpegtran-cffi-wheels 0.5.3.dev0": {"hflip": jpegtran_flip, "gray": jpegtran_gray},
}


def jpeg_of(width: int, height: int, quality: int, seed: int = 0, **params: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(photo_like(width, height, seed)).save(out, "JPEG", quality=quality, **params)
    return out.getvalue()


def best_ms(work: Callable[[bytes], bytes], data: bytes, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        work(data)
        best = min(best, time.process_time() - start)
    return best * 1000


def threads_speedup(work: Callable[[bytes], bytes], data: bytes, count: int = 40) -> float:
    """Wall time of 2*count transforms in one thread over the same in two: 2.0 when the GIL is released."""
    start = time.perf_counter()
    for _ in range(2 * count):
        work(data)
    one = time.perf_counter() - start
    pair = [threading.Thread(target=lambda: [work(data) for _ in range(count)]) for _ in range(2)]
    start = time.perf_counter()
    for thread in pair:
        thread.start()
    for thread in pair:
        thread.join()
    return one / (time.perf_counter() - start)


def mutations(sources: list[bytes], count: int, seed: int = 1) -> list[bytes]:
    """Truncations, bit flips, and edits of the bytes just after a marker (where the header fields are)."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        data = bytearray(rng.choice(sources))
        kind = n % 3
        if kind == 0:
            data = data[:rng.randrange(2, len(data))]
        elif kind == 1:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(2, len(data))] ^= 1 << rng.randrange(8)
        else:
            markers = [i for i in range(len(data) - 8) if data[i] == 0xFF and data[i + 1] not in (0, 0xFF)]
            at = rng.choice(markers) + rng.randint(2, 8)
            data[at] = rng.randrange(256)
        out.append(bytes(data))
    return out


def _child(name: str, op: str, data: bytes, answer: multiprocessing.SimpleQueue) -> None:
    try:
        CANDIDATES[name][op](data)
        answer.put("ok")
    except Exception as exc:  # what each library raises is part of what is measured
        answer.put(f"raised {type(exc).__name__}")


def hostile(name: str, cases: list[bytes]) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    context = multiprocessing.get_context("fork")
    for n, data in enumerate(cases):
        answer = context.SimpleQueue()
        child = context.Process(target=_child, args=(name, ("hflip", "gray")[n % 2], data, answer))
        child.start()
        child.join(20)
        if child.is_alive():
            child.kill()
            outcomes["hung"] += 1
        elif child.exitcode != 0 or answer.empty():
            outcomes[f"process died (exit {child.exitcode})"] += 1
        else:
            outcomes[answer.get()] += 1
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz", type=int, default=500)
    args = parser.parse_args()
    sizes = {"1 MP": jpeg_of(1152, 864, 80), "12 MP": jpeg_of(4000, 3000, 80)}
    lines = [f"# {time.strftime('%Y-%m-%d %H:%M')}, q80 photo-like originals, best of 15 (process time)"]
    for name, ops in CANDIDATES.items():
        for size, data in sizes.items():
            figures = ", ".join(f"{op} {best_ms(work, data, 15 if size == '1 MP' else 5):.1f} ms"
                                for op, work in ops.items())
            lines.append(f"{name:32} {size:6} {figures}")
        lines.append(f"{name:32} two threads / one, hflip 1 MP: {threads_speedup(ops['hflip'], sizes['1 MP']):.2f}x")
    sources = [jpeg_of(320, 240, q, seed, **extra) for seed, (q, extra) in enumerate(
        [(80, {}), (90, {"progressive": True}), (75, {"subsampling": 0}), (85, {"restart_marker_blocks": 4})])]
    cases = mutations(sources, args.fuzz)
    for name in CANDIDATES:
        outcomes = hostile(name, cases)
        lines.append(f"{name:32} {len(cases)} hostile: " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))
    report = "\n".join(lines)
    print(report)
    with FIGURES.open("a") as out:
        out.write(report + "\n\n")


if __name__ == "__main__":
    main()
