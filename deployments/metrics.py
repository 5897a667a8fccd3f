"""Prometheus metrics through Ray Serve's metrics API: they appear on Ray's metrics endpoint
(each node's `_metrics_export_port`, or PROG_IMAGE_METRICS_PORT for a local Ray), prefixed `ray_`.

Counters are summed in the process and recorded once a second: a Ray record costs more than a cached
answer's own work (bench/cached_side_by_side.py; py-spy put three counter records at about 6 % of a
memory hit's CPU). Ray exports every few seconds anyway, so the figures arrive no later.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
from typing import Any

from ray.serve.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
_FLUSH_S = 1.0


class SummedCounter:
    """A counter whose increments are added up here and recorded by flush(): one record per label set."""

    def __init__(self, counter: Any) -> None:
        self.counter = counter
        self.sums: dict[tuple[tuple[str, str], ...], float] = {}
        self.lock = threading.Lock()  # increments come from the event loop and from render threads

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        key = tuple(tags.items()) if tags else ()
        with self.lock:
            self.sums[key] = self.sums.get(key, 0.0) + value

    def flush(self) -> None:
        with self.lock:
            sums, self.sums = self.sums, {}
        for key, value in sums.items():
            if value:  # Ray's counters refuse increments of zero
                self.counter.inc(value, tags=dict(key))


class Metrics:
    def __init__(self) -> None:
        self.requests = SummedCounter(Counter("prog_image_http_requests", "HTTP requests, by route and status.",
                                              tag_keys=("route", "method", "status")))
        self.latency = Histogram("prog_image_http_request_seconds", "HTTP request latency, by route.",
                                 boundaries=_SECONDS, tag_keys=("route",))
        self.render = Histogram("prog_image_render_seconds",
                                "Time to render a variant (read, decode, steps, encode, store), by operation.",
                                boundaries=_SECONDS, tag_keys=("operation",))
        self.stage = Histogram("prog_image_stage_seconds", "Time in each pixel stage: decode, a step, encode.",
                               boundaries=_SECONDS, tag_keys=("stage",))
        self.cache = SummedCounter(Counter("prog_image_variant_cache",
                                           "Variant lookups: hit (stored) or miss (rendered).", tag_keys=("result",)))
        self.bytes = SummedCounter(Counter("prog_image_http_bytes", "Body bytes received (in) and sent (out).",
                                           tag_keys=("direction",)))
        self.jobs = SummedCounter(Counter("prog_image_batch_jobs", "Batch job messages: processed or dead_lettered.",
                                          tag_keys=("outcome",)))
        threading.Thread(target=self._flush_every_second, name="metrics-flush", daemon=True).start()
        atexit.register(self.flush)  # a replica that stops gracefully records its last second too

    def flush(self) -> None:
        for counter in vars(self).values():  # every summed counter, however many are added
            if isinstance(counter, SummedCounter):
                counter.flush()

    def _flush_every_second(self) -> None:
        while True:
            time.sleep(_FLUSH_S)
            try:
                self.flush()
            except Exception as exc:  # a failed record must not stop the counting
                logging.getLogger("ray.serve").warning("recording metrics failed: %r", exc)


@functools.cache
def metrics() -> Metrics:
    """Created on first use, in the replica that records (metric objects belong to their process)."""
    return Metrics()


class RequestMetrics:
    """ASGI middleware: count and time every request by its route template (never the raw path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = 0
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            m = metrics()
            m.requests.inc(tags={"route": route, "method": scope["method"], "status": str(status)})
            m.latency.observe(time.perf_counter() - started, tags={"route": route})
            m.bytes.inc(received, tags={"direction": "in"})
            m.bytes.inc(sent, tags={"direction": "out"})
