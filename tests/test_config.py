"""Settings: every value is checked where it is declared, and a bad one names its variable."""

from __future__ import annotations

from dataclasses import fields

import pytest

from deployments.app import build_app
from deployments.config import Settings


def test_defaults_are_valid_and_every_setting_is_documented():
    settings = Settings.from_env({})
    assert settings == Settings()
    assert all(f.metadata["doc"] for f in fields(Settings))


@pytest.mark.parametrize(("changes", "message"), [
    ({"http_port": 0}, "PROG_IMAGE_HTTP_PORT must be 1-65535"),
    ({"jpeg_quality": 96}, "PROG_IMAGE_JPEG_QUALITY must be 1-95"),
    ({"webp_quality": 0}, "PROG_IMAGE_WEBP_QUALITY must be 1-100"),
    ({"request_timeout_s": 0.0}, "PROG_IMAGE_REQUEST_TIMEOUT_S must be positive"),
    ({"max_pixels": -1}, "PROG_IMAGE_MAX_PIXELS must be positive"),
    ({"render_memory_mb": -1}, "PROG_IMAGE_RENDER_MEMORY_MB must not be negative"),
    ({"ingress_render_max_pixels": -5}, "PROG_IMAGE_INGRESS_RENDER_MAX_PIXELS must not be negative"),
    ({"ingress_min_replicas": 5}, "need 1 <= INGRESS_MIN_REPLICAS <= INGRESS_MAX_REPLICAS"),
    ({"transform_min_replicas": 0}, "need 1 <= TRANSFORM_MIN_REPLICAS <= TRANSFORM_MAX_REPLICAS"),
    ({"png_compression": "tiny"}, "PNG_COMPRESSION must be one of fast, small"),
    ({"presets": "Bad Name=mirror"}, "PRESETS:"),
])
def test_a_bad_value_is_refused_with_its_variable(changes, message):
    with pytest.raises(ValueError, match="invalid configuration") as refused:
        Settings(**changes)
    assert message in str(refused.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError) as refused:
        Settings(http_port=0, jpeg_quality=0, upload_idle_s=-1.0)
    assert str(refused.value).count("PROG_IMAGE_") == 3


def test_zero_is_allowed_where_it_means_off():
    settings = Settings(ingress_cache_bytes=0, ingress_render_max_pixels=0, transform_max_per_node=0)
    assert settings.ingress_cache_bytes == settings.ingress_render_max_pixels == 0


def test_environment_values_are_parsed_by_their_type():
    settings = Settings.from_env({"PROG_IMAGE_HTTP_PORT": "8080", "PROG_IMAGE_FAST_PATH": "off",
                                  "PROG_IMAGE_REQUEST_TIMEOUT_S": "2.5"})
    assert (settings.http_port, settings.fast_path, settings.request_timeout_s) == (8080, False, 2.5)
    with pytest.raises(ValueError, match="PROG_IMAGE_HTTP_PORT='eighty' is not a valid int"):
        Settings.from_env({"PROG_IMAGE_HTTP_PORT": "eighty"})


@pytest.mark.parametrize("access_log", [False, True])
def test_every_deployment_logs_requests_only_when_asked(access_log):
    deployments, pending = [], [build_app(Settings(access_log=access_log))._bound_deployment]
    while pending:  # the ingress, then what it is bound to (the transform deployment, the bridge)
        deployment = pending.pop()
        deployments.append(deployment)
        pending += [arg._bound_deployment for arg in deployment.init_args if hasattr(arg, "_bound_deployment")]
    assert {d.name for d in deployments} == {"Api", "Bridge", "Transformer"}
    assert {d.logging_config["enable_access_log"] for d in deployments} == {access_log}
