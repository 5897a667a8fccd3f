"""Prometheus metrics through Ray Serve's metrics API: they appear on Ray's metrics endpoint
(each node's `_metrics_export_port`, or PROG_IMAGE_METRICS_PORT for a local Ray), prefixed `ray_`."""

from __future__ import annotations

import functools
import time

from ray.serve.metrics import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]


class Metrics:
    def __init__(self) -> None:
        self.requests = Counter("prog_image_http_requests", "HTTP requests, by route and status.",
                                tag_keys=("route", "method", "status"))
        self.latency = Histogram("prog_image_http_request_seconds", "HTTP request latency, by route.",
                                 boundaries=_SECONDS, tag_keys=("route",))
        self.render = Histogram("prog_image_render_seconds",
                                "Time to render a variant (read, decode, steps, encode, store), by operation.",
                                boundaries=_SECONDS, tag_keys=("operation",))
        self.stage = Histogram("prog_image_stage_seconds", "Time in each pixel stage: decode, a step, encode.",
                               boundaries=_SECONDS, tag_keys=("stage",))
        self.cache = Counter("prog_image_variant_cache", "Variant lookups: hit (stored) or miss (rendered).",
                             tag_keys=("result",))
        self.bytes = Counter("prog_image_http_bytes", "Body bytes received (in) and sent (out).",
                             tag_keys=("direction",))
        self.jobs = Counter("prog_image_batch_jobs", "Batch job messages: processed or dead_lettered.",
                            tag_keys=("outcome",))


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
            for direction, count in (("in", received), ("out", sent)):
                if count:  # Ray's counters refuse increments of zero
                    m.bytes.inc(count, tags={"direction": direction})
