"""docker-compose.yml against the compose-spec schema and the stack's rules, and the image recipe."""

from __future__ import annotations

from typing import Any

import yaml

from .tools import DEPLOY, ROOT, VENV_BIN, run

COMPOSE = ROOT / "docker-compose.yml"
STORES = {"postgres": "/var/lib/postgresql/data", "rabbitmq": "/var/lib/rabbitmq", "mongo": "/data/db",
          "prometheus": "/prometheus", "grafana": "/var/lib/grafana"}
TWINBILL = ("twin", "scheduler", "billing", "ingest", "gateway")


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_compose_files_match_the_compose_spec_schema() -> None:
    """check-jsonschema's vendored copy of the compose-spec schema (no network)."""
    out = run(str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
              str(COMPOSE), str(DEPLOY / "compose" / "ops.yml"))
    assert "ok" in out


def test_every_service_has_a_healthcheck_and_waits_on_conditions() -> None:
    for name, service in services().items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for other, condition in depends.items():
            assert condition.get("condition") in {"service_healthy", "service_completed_successfully"}, \
                f"{name} -> {other}"
    for name in TWINBILL:
        assert services()[name]["restart"] == "unless-stopped", name  # a dead loop exits 1: back up


def test_only_the_gateway_and_mqtt_are_published() -> None:
    published = {name: service["ports"] for name, service in services().items() if service.get("ports")}
    assert published == {"gateway": ["8000:8000"], "mosquitto": ["1883:1883"]}


def test_billing_scales_with_scale() -> None:
    """No host port and no container name: `--scale billing=N` starts N containers."""
    billing = services()["billing"]
    assert "ports" not in billing and "container_name" not in billing
    assert not any("container_name" in service for service in services().values())


def test_every_store_keeps_its_data_in_a_named_volume() -> None:
    volumes = set(yaml.safe_load(COMPOSE.read_text())["volumes"])
    for name, path in STORES.items():
        mounts = services()[name]["volumes"]
        named = [m for m in mounts if m.endswith(":" + path) or f":{path}:" in m]
        assert named and named[0].split(":")[0] in volumes, f"{name}: {path} not in a named volume"
    assert "mqtt-auth" in volumes


def test_grafana_and_prometheus_load_the_project_files() -> None:
    prometheus = services()["prometheus"]["volumes"]
    assert "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus


def test_images_install_only_their_service_and_never_the_development_tools() -> None:
    """One recipe: libs/common and the one service, as a numeric non-root user; the build context
    (.dockerignore) holds neither tools/ (the embedded MongoDB nx-27017 and its helper) nor tests."""
    recipe = (DEPLOY / "docker" / "Dockerfile").read_text()
    copies = [line.split()[1] for line in recipe.splitlines() if line.startswith("COPY ") and "--from" not in line]
    assert copies == ["requirements.lock", "libs/common", "services/${SERVICE}"]
    assert "USER 65534:65534" in recipe
    instructions = "\n".join(line for line in recipe.splitlines() if not line.startswith("#"))
    assert "devstack" not in instructions and "nx-27017" not in instructions and "tools/" not in instructions
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "**" and set(ignore[1:4]) == {"!requirements.lock", "!libs/common/", "!services/"}
    for member in TWINBILL:
        deps = (ROOT / "services" / member / "pyproject.toml").read_text()
        assert "nx-27017" not in deps and "twinbill-devstack" not in deps, member
