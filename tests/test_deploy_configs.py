"""compose.yaml, ray-cluster.yaml and the Serve config: valid against their own schemas, and in
agreement with the project's configuration. (Docker can't run here, so the schema is the check.)"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from deployments.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {f"PROG_IMAGE_{f.name.upper()}" for f in fields(Settings)}


def test_compose_validates_against_the_compose_spec():
    schema = json.loads(resources.files("check_jsonschema.builtin_schemas.vendor")
                        .joinpath("compose-spec.json").read_text())
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    jsonschema.validate(compose, schema)


def test_compose_services_ports_and_env_agree_with_the_project():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"mongodb", "rabbitmq", "ray-head", "ray-worker"} <= set(services)
    assert services["mongodb"]["image"].startswith("mongo:") and services["mongodb"]["volumes"]
    assert "management" in services["rabbitmq"]["image"]
    head, worker = services["ray-head"], services["ray-worker"]
    env = head["environment"]
    assert worker["environment"] == env
    # every PROG_IMAGE_* variable is a real setting, and the values parse
    used = {k for k in env if k.startswith("PROG_IMAGE_")}
    used |= set(re.findall(r"PROG_IMAGE_[A-Z_]+", head["command"] + worker["command"]))
    assert used <= SETTINGS, used - SETTINGS
    settings = Settings.from_env({k: str(v) for k, v in env.items()})
    assert f"{settings.http_port}:{settings.http_port}" in head["ports"]
    assert settings.http_host == "0.0.0.0"
    assert settings.mongo_url.startswith("mongodb://mongodb:") and "@rabbitmq:" in settings.amqp_url
    # start order by health, and workers that scale (no fixed name or host port)
    for service in ("mongodb", "rabbitmq", "ray-head"):
        assert services[service]["healthcheck"]["test"]
    assert head["depends_on"] == {"mongodb": {"condition": "service_healthy"},
                                  "rabbitmq": {"condition": "service_healthy"}}
    assert worker["depends_on"] == {"ray-head": {"condition": "service_healthy"}}
    assert "container_name" not in worker and "ports" not in worker
    assert "ray-head:6379" in worker["command"] and "--port=6379" in head["command"]
    assert (ROOT / head["build"] / "Dockerfile").is_file()
    # the HTTP cache in front: the shipped nginx.conf, pointed at the head's HTTP port
    cache = services["cache"]
    assert cache["image"].startswith("nginx:") and cache["depends_on"] == {"ray-head": {"condition": "service_healthy"}}
    assert "./deployments/nginx.conf:/etc/nginx/nginx.conf:ro" in cache["volumes"]
    assert f"server ray-head:{settings.http_port};" in (ROOT / "deployments" / "nginx.conf").read_text()


def test_ray_cluster_validates_against_rays_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / "ray-cluster.yaml").read_text())
    schema = json.loads(resources.files("ray.autoscaler").joinpath("ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(prepare_config(config))  # Ray's own check, with defaults filled as `ray up` does
    assert config["provider"]["type"] == "local"
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        assert command.lstrip().startswith(("~/prog-image-venv/bin/ray", "RAY_")), command
        if " start " in command:
            assert "--disable-usage-stats" in command


def test_serve_config_is_a_valid_deploy_schema():
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(yaml.safe_load((ROOT / "deployments/serve_config.yaml").read_text()))
    [app] = config.applications
    assert app.import_path == "deployments.app:app_builder"
    from deployments.app import app_builder

    app_builder(dict(app.args))  # builds with these args
