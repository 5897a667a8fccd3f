"""All configuration, in one place: environment variables with documented defaults.

Every setting is PROG_IMAGE_<NAME>. `prog-image config` prints the effective values.
transforms/ and storage/ never read the environment: they get their settings from here.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from transforms import EncodeOptions, Limits, parse
from transforms.encode import PNG_COMPRESSIONS
from transforms.jpeg_exact import POLICIES
from transforms.pipeline import PRESET_NAME, Preset

_PREFIX = "PROG_IMAGE_"


Check = tuple[Callable[[Any], bool], str]
POSITIVE: Check = (lambda value: value > 0, "must be positive")
NOT_NEGATIVE: Check = (lambda value: value >= 0, "must not be negative")


def between(low: int, high: int) -> Check:
    return (lambda value: low <= value <= high), f"must be {low}-{high}"


def _setting(default: Any, doc: str, check: Check | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "check": check})


@dataclass(frozen=True)
class Settings:
    mongo_url: str = _setting("", "MongoDB URL. Empty: start an embedded mongod (dev extra) under data_dir.")
    mongo_db: str = _setting("prog_image", "Database holding the GridFS bucket.")
    data_dir: str = _setting(".data", "Where the embedded mongod keeps its files.")
    amqp_url: str = _setting("amqp://guest:guest@127.0.0.1:5672/",
                             "RabbitMQ URL for batch jobs. Empty: no bridge.")
    amqp_queue: str = _setting("prog_image.jobs", "Durable job queue; <queue>.dead is its dead-letter queue.")
    amqp_prefetch: int = _setting(4, "Unacked job messages one bridge holds (and works on) at once.", POSITIVE)
    job_retries: int = _setting(3, "Attempts for a job that meets a transient failure, then dead-letter.", POSITIVE)
    public_url: str = _setting("", "Base URL put in job results. Empty: http://HTTP_HOST:HTTP_PORT.")
    ray_address: str = _setting("", "Ray cluster to join (e.g. ray://head:10001 or auto). Empty: start a local Ray.")
    http_host: str = _setting("127.0.0.1", "Address the HTTP proxy listens on (0.0.0.0 to serve other machines).")
    http_port: int = _setting(8000, "HTTP port.", between(1, 65535))
    metrics_port: int = _setting(0, "Port of Ray's Prometheus endpoint for a local Ray (0: Ray picks one).")
    fast_path: bool = _setting(True, "Start a local Ray with Serve's HAProxy ingress and throughput-optimised "
                                     "mode (RAY_SERVE_ENABLE_HA_PROXY, RAY_SERVE_THROUGHPUT_OPTIMIZED); bench/ "
                                     "measured 2-3x the request rate of the default proxy.")
    access_log: bool = _setting(False, "Serve's log line for every request, in every replica. Off: it cost about 4 % "
                                       "of a cached answer's CPU, and the prog_image_http_* metrics count and time "
                                       "every request by route and status (errors are logged either way).")
    transform_min_replicas: int = _setting(2, "Autoscaling lower bound for the transform deployment (two: "
                                              "both cores busy from the first request; bench/ measured +10-15 "
                                              "points of the ceiling at concurrency 2).")
    transform_max_replicas: int = _setting(4, "Autoscaling upper bound for the transform deployment.")
    transform_target_ongoing: float = _setting(1.5, "Autoscaling target of ongoing requests per transform replica "
                                                    "(below transform_max_ongoing: replicas kept full, as a batch "
                                                    "job keeps them, are added to).")
    scale_up_delay_s: float = _setting(30.0, "How long load must stay above an autoscaling target before replicas "
                                             "are added (both deployments; Serve's default).", POSITIVE)
    scale_down_delay_s: float = _setting(600.0, "How long load must stay below the target before replicas are "
                                                "removed (Serve's default).", POSITIVE)
    transform_max_ongoing: int = _setting(2, "Requests one transform replica runs at once (two overlap one's I/O "
                                             "with the other's codec work; more oversubscribes the cores).", POSITIVE)
    transform_num_cpus: float = _setting(0.4, "CPUs reserved per transform replica (4 x 0.4 + 4 ingresses x 0.1 "
                                              "fit 2 cores).", POSITIVE)
    transform_max_queued: int = _setting(32, "Requests waiting for a transform replica beyond which the "
                                             "ingress answers 503 with Retry-After.", POSITIVE)
    transform_max_per_node: int = _setting(0, "Most transform replicas on one node (0: no limit); 1 spreads them "
                                              "over the cluster's nodes as it scales up.", NOT_NEGATIVE)
    transform_resource: str = _setting("", "Custom Ray resource a transform replica needs one unit of "
                                           "(placement: give nodes e.g. --resources='{\"prog_image_transform\": 4}').")
    ingress_min_replicas: int = _setting(2, "Autoscaling lower bound for the HTTP ingress, which renders typical "
                                            "originals itself (see ingress_render_max_pixels). Two: one replica's "
                                            "Python (one GIL) held uncached 1 MP renders to about one core.")
    ingress_max_replicas: int = _setting(4, "Autoscaling upper bound for the HTTP ingress: render capacity grows "
                                            "with the cluster (set it to about 2 per node).")
    ingress_target_ongoing: float = _setting(4.0, "Autoscaling target of ongoing requests per ingress replica "
                                                  "(renders waiting for a slot count; cache hits barely do).", POSITIVE)
    ingress_num_cpus: float = _setting(0.1, "CPUs reserved per ingress replica.", POSITIVE)
    ingress_max_ongoing: int = _setting(64, "Requests one ingress replica holds at once.", POSITIVE)
    ingress_max_queued: int = _setting(256, "Requests waiting for the ingress beyond which the proxy answers 503.",
                                       POSITIVE)
    ingress_render_max_pixels: int = _setting(
        16_000_000, "The placement rule: originals up to this many pixels render in the ingress replica that "
                    "took the request (no hop to a transform replica, no copy of the result through Ray; bench: "
                    "1.1-1.4x the uncached rate at 1 MP); larger ones, and every batch item, on the transform "
                    "deployment. 0: always the transform deployment.", NOT_NEGATIVE)
    ingress_render_slots: int = _setting(2, "Renders one ingress replica runs at once; more wait their turn there "
                                            "(and count toward its autoscaling).", POSITIVE)
    ingress_cache_bytes: int = _setting(64 * 2**20, "Memory for recently served variants (up to 1 MiB each) in each "
                                                    "ingress replica, so a hit needs no database round trip; 0: off.",
                                        NOT_NEGATIVE)
    ingress_cache_ttl_s: float = _setting(60.0, "How long a variant or original stays in an ingress's memory (another "
                                                "replica forgets a deleted image within a second anyway).", POSITIVE)
    ingress_originals_bytes: int = _setting(64 * 2**20, "Memory for originals (up to 16 MiB each) that each ingress "
                                                        "replica took as uploads or read to render, so the renders "
                                                        "after an upload (a page's sizes) read no GridFS; 0: off.",
                                            NOT_NEGATIVE)
    variant_store_min_uses: int = _setting(2, "Requests for a variant in one ingress replica before it is stored in "
                                              "GridFS (nginx's proxy_cache_min_uses): one-off variants cost no "
                                              "write. 1: store every variant at its first request. Batch results "
                                              "are always stored.", POSITIVE)
    max_upload_bytes: int = _setting(50_000_000, "Largest accepted upload body (413 beyond).", POSITIVE)
    max_pixels: int = _setting(50_000_000, "Largest accepted image, width x height of a frame (422 beyond).", POSITIVE)
    max_output_pixels: int = _setting(50_000_000, "Largest image a pipeline may make, intermediates included: "
                                                  "upscaling stops here (422 output_too_large beyond).", POSITIVE)
    max_frames: int = _setting(500, "Most frames (animation) or pages (TIFF) an upload may have, counted "
                                    "before decoding (422 image_too_complex beyond).", POSITIVE)
    max_animation_pixels: int = _setting(500_000_000, "Most pixels of all frames together, frames x canvas "
                                                      "(422 image_too_complex beyond).", POSITIVE)
    max_scans: int = _setting(100, "Most progressive JPEG scans (cameras write 1, encoders about 10; a scan "
                                   "bomb has thousands). 422 image_too_complex beyond.", POSITIVE)
    render_memory_mb: int = _setting(0, "Memory for renders in one replica, shared by its concurrent renders "
                                        "(one may use all of it; a render that needs more is a 422 over_budget, "
                                        "one that must wait too long a 503). 0: half the node's memory divided "
                                        "by the replicas that may render (INGRESS_ and TRANSFORM_MAX_REPLICAS).",
                                   NOT_NEGATIVE)
    request_timeout_s: float = _setting(30.0, "Processing time allowed per request (503 timeout beyond; the "
                                              "render stops at its next stage and nothing of it is stored).", POSITIVE)
    upload_timeout_s: float = _setting(60.0, "Time allowed to receive an upload's body (408 beyond).", POSITIVE)
    upload_idle_s: float = _setting(10.0, "Longest pause in an upload's body (408 beyond): idle clients let go.",
                                    POSITIVE)
    max_concurrent_uploads: int = _setting(8, "Uploads one ingress replica receives at once (503 overloaded "
                                              "beyond, before reading the body).", POSITIVE)
    api_keys: str = _setting("", "Comma-separated API keys; when set, upload and delete need one (X-API-Key).")
    signing_keys: str = _setting("", "Comma-separated HMAC keys; when set, image URLs must be signed (the first "
                                     "signs, all verify: rotate by prepending a new one).")
    cors_origins: str = _setting("", "Comma-separated origins allowed by CORS (* for any). Empty: no CORS headers.")
    jpeg_quality: int = _setting(85, "JPEG output quality, 1-95.", between(1, 95))
    png_compression: str = _setting("fast", "PNG output policy: fast (numpy filters, run-length deflate; "
                                    "several times faster than Pillow's default, about the same size) or small "
                                    "(Pillow at zlib level 9). Per request: ?compression=.")
    webp_quality: int = _setting(80, "WebP output quality, 1-100.", between(1, 100))
    jpeg_lossless: str = _setting("auto", "JPEG originals asked for as JPEG, mirrored or in grayscale, with no "
                                          "other step: answered from their own DCT coefficients (moved, or the "
                                          "luma alone; EXIF orientation applied so; no metadata but ICC) instead of "
                                          "decoded and encoded again. auto: when the original's quality is at most "
                                          "the output's; always; never.")
    shutdown_timeout_s: float = _setting(20.0, "How long a replica being stopped (scale-down, redeploy) may finish "
                                               "its requests before it is killed.", POSITIVE)
    presets: str = _setting("", "Named pipelines, ';'-separated: name=<ops>[&format=<f>][&quality=<q>], e.g. "
                                "avatar=resize:w=128:h=128:fit=cover:g=smart&format=webp. PUT /presets adds more.")

    def __post_init__(self) -> None:
        problems = [f"{_PREFIX}{f.name.upper()} {f.metadata['check'][1]}" for f in fields(self)
                    if f.metadata["check"] and not f.metadata["check"][0](getattr(self, f.name))]
        for deployment in ("transform", "ingress"):
            if not 1 <= getattr(self, f"{deployment}_min_replicas") <= getattr(self, f"{deployment}_max_replicas"):
                problems.append(f"need 1 <= {deployment.upper()}_MIN_REPLICAS <= {deployment.upper()}_MAX_REPLICAS")
        if self.jpeg_lossless not in POLICIES:
            problems.append(f"JPEG_LOSSLESS must be one of {', '.join(POLICIES)}")
        if self.png_compression not in PNG_COMPRESSIONS:
            problems.append(f"PNG_COMPRESSION must be one of {', '.join(PNG_COMPRESSIONS)}")
        try:
            self.preset_map  # noqa: B018  (parsed and checked here, once)
        except ValueError as exc:
            problems.append(f"PRESETS: {exc}")
        if problems:
            raise ValueError("invalid configuration: " + "; ".join(problems))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(_PREFIX + f.name.upper())
            if raw is not None:
                kind = type(f.default)
                try:
                    values[f.name] = _parse_bool(raw) if kind is bool else kind(raw)
                except ValueError:
                    raise ValueError(f"{_PREFIX}{f.name.upper()}={raw!r} is not a valid {kind.__name__}") from None
        return cls(**{**values, **overrides})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @staticmethod
    def _list(value: str) -> tuple[str, ...]:
        return tuple(item.strip() for item in value.split(",") if item.strip())

    @functools.cached_property  # read on every request; settings never change
    def api_key_list(self) -> tuple[str, ...]:
        return self._list(self.api_keys)

    @functools.cached_property  # read on every request; settings never change
    def signing_key_list(self) -> tuple[str, ...]:
        return self._list(self.signing_keys)

    @functools.cached_property  # read on every request; settings never change
    def cors_origin_list(self) -> tuple[str, ...]:
        return self._list(self.cors_origins)

    @property
    def render_memory_bytes(self) -> int:
        """One replica's render memory (see render_memory_mb): derived from the node's memory by default."""
        if self.render_memory_mb:
            return self.render_memory_mb << 20
        node = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return node // 2 // (self.ingress_max_replicas + self.transform_max_replicas)

    @property  # not cached: render_memory_bytes is the node's, and settings travel to other nodes
    def limits(self) -> Limits:
        return Limits(self.max_pixels, self.max_output_pixels, self.max_frames, self.max_animation_pixels,
                      self.max_scans, self.render_memory_bytes)

    @property
    def preset_map(self) -> dict[str, Preset]:
        """The configured presets, each checked against the grammar."""
        presets = {}
        for entry in filter(None, (part.strip() for part in self.presets.split(";"))):
            name, sep, query = entry.partition("=")
            params = dict(urllib.parse.parse_qsl(f"ops={query}", keep_blank_values=True))
            if not sep or not PRESET_NAME.fullmatch(name):
                raise ValueError(f"{entry!r} is not name=<ops>[&format=..][&quality=..] with a lowercase name")
            preset = Preset(params.get("ops", ""), params.get("format"), params.get("quality"))
            parse(preset.ops, preset.format, preset.quality)  # raises PipelineError (a ValueError)
            presets[name] = preset
        return presets

    @functools.cached_property  # read on every request; settings never change
    def encode_options(self) -> EncodeOptions:
        return EncodeOptions(self.jpeg_quality, self.png_compression, self.webp_quality, self.jpeg_lossless)


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


def describe() -> str:
    """The settings table, for `prog-image config` and the README."""
    current = Settings.from_env()
    rows = [f"{_PREFIX}{f.name.upper():<28} {getattr(current, f.name)!s:<14} {f.metadata['doc']}"
            for f in fields(Settings)]
    return "\n".join(rows)
