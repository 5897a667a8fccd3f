"""Compose the Serve application: HTTP ingress -> transform deployment, bound with .bind()."""

from __future__ import annotations

from typing import Any

from ray.serve import Application
from ray.serve.config import RequestRouterConfig

from deployments.batch.bridge import Bridge
from deployments.config import Settings
from deployments.http.ingress import Api
from deployments.render.transformer import Transformer


def build_app(settings: Settings) -> Application:
    delays = {"upscale_delay_s": settings.scale_up_delay_s, "downscale_delay_s": settings.scale_down_delay_s}
    logs = {"enable_access_log": settings.access_log}
    transformer = Transformer.options(
        autoscaling_config={
            "min_replicas": settings.transform_min_replicas,
            "max_replicas": settings.transform_max_replicas,
            "target_ongoing_requests": settings.transform_target_ongoing,
            **delays,
        },
        max_ongoing_requests=settings.transform_max_ongoing,
        # Requests wait in their caller's router while every replica is busy (a batch job's calls do): Serve's
        # default backoff (up to 0.5 s between tries) left the replicas idle 0.2 s after each wave of calls.
        request_router_config=RequestRouterConfig(max_backoff_s=0.025),
        **({"max_replicas_per_node": settings.transform_max_per_node} if settings.transform_max_per_node else {}),
        graceful_shutdown_timeout_s=settings.shutdown_timeout_s,
        logging_config=logs,
        # Bounded: past this the handle raises BackPressureError and the ingress answers 503 at once.
        max_queued_requests=settings.transform_max_queued,
        ray_actor_options={"num_cpus": settings.transform_num_cpus,
                           **({"resources": {settings.transform_resource: 1}} if settings.transform_resource else {})},
    ).bind(settings)
    # The bridge consumes batch jobs on the same transform deployment as HTTP.
    bridge = Bridge.options(num_replicas=1, ray_actor_options={"num_cpus": 0}, logging_config=logs,
                            graceful_shutdown_timeout_s=settings.shutdown_timeout_s).bind(transformer, settings) \
        if settings.amqp_url else None
    return Api.options(
        autoscaling_config={
            "min_replicas": settings.ingress_min_replicas,
            "max_replicas": settings.ingress_max_replicas,
            "target_ongoing_requests": settings.ingress_target_ongoing,
            **delays,
        },
        graceful_shutdown_timeout_s=settings.shutdown_timeout_s,
        logging_config=logs,
        # Must not cap the transforms: room for every transform replica to be busy, plus cache hits.
        max_ongoing_requests=settings.ingress_max_ongoing,
        max_queued_requests=settings.ingress_max_queued,
        ray_actor_options={"num_cpus": settings.ingress_num_cpus},
    ).bind(transformer, bridge, settings)


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for `serve run` / `serve deploy`: settings from the environment, overridden by args."""
    return build_app(Settings.from_env(**args))
