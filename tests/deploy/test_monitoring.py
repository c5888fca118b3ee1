"""Prometheus configuration, alert rules and their unit tests, and the Grafana dashboards."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

from .tools import DEPLOY, promtool, run

PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"


def test_prometheus_config_is_valid() -> None:
    """promtool check config (it also checks the rule files the config loads)."""
    out = run(promtool(), "check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert "SUCCESS" in out


def test_alert_rules_are_valid_and_each_has_a_runbook() -> None:
    run(promtool(), "check", "rules", str(PROMETHEUS / "alerts.yml"))
    rules = [rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]]
    assert len(rules) >= 7
    for rule in rules:
        assert len(rule["annotations"]["runbook"]) > 100, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]


def test_every_alert_has_a_promtool_test_case() -> None:
    """promtool test rules passes, and names every alert of alerts.yml in an alert_rule_test
    that expects it to fire (a rule never shown firing is not tested)."""
    out = run(promtool(), "test", "rules", str(PROMETHEUS / "alerts.test.yml"))
    assert "SUCCESS" in out
    alerts = {rule["alert"] for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
              for rule in group["rules"]}
    cases = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    fired = {check["alertname"] for case in cases for check in case.get("alert_rule_test", [])
             if check.get("exp_alerts")}
    quiet = {check["alertname"] for case in cases for check in case.get("alert_rule_test", [])
             if not check.get("exp_alerts")}
    assert alerts == fired, f"alerts never shown firing: {alerts - fired}"
    assert alerts == quiet, f"alerts never shown quiet: {alerts - quiet}"


def test_dashboards_are_what_the_generator_writes() -> None:
    sys.path.insert(0, str(GRAFANA))
    try:
        import make_dashboards  # type: ignore[import-not-found]  # a script beside the JSON, not a package
    finally:
        sys.path.remove(str(GRAFANA))
    expected = make_dashboards.rendered()
    committed = {path.name: path.read_text() for path in (GRAFANA / "dashboards").glob("*.json")}
    assert committed == expected, "run `python deploy/grafana/make_dashboards.py`"
    assert {"ingest.json", "twin.json", "scheduler.json", "billing.json", "bus.json"} <= set(committed)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """Each panel's expression, loaded as a recording rule, passes promtool's parser."""
    rules: list[dict[str, str]] = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                rules.append({"record": f"check:{path.stem}:{len(rules)}", "expr": target["expr"]})
    assert len(rules) > 30
    file = tmp_path / "dashboard-queries.yml"
    file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    run(promtool(), "check", "rules", str(file))


def test_compose_grafana_provisions_the_dashboards_folder() -> None:
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    volumes = compose["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in volumes
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in volumes
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "twinbill.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def exported_names() -> set[str]:
    """Every sample name the services can export, from their own metric definitions."""
    from prometheus_client import CollectorRegistry

    from twinbill_billing.metrics import BillingMetrics
    from twinbill_common.deadletters import dead_letter_gauge
    from twinbill_common.metrics import HttpMetrics, new_registry
    from twinbill_gateway.metrics import auth_counter
    from twinbill_ingest.metrics import IngestMetrics
    from twinbill_scheduler.metrics import scheduler_metrics
    from twinbill_twin.metrics import TwinMetrics

    registry: CollectorRegistry = new_registry()
    HttpMetrics.create(registry)
    dead_letter_gauge(registry)
    auth_counter(registry)
    TwinMetrics.create(registry)
    scheduler_metrics(registry)
    BillingMetrics(registry)
    IngestMetrics.create(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",),
                "info": ("_info",), "summary": ("_count", "_sum")}
    names = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


# scraped from elsewhere: Prometheus itself, RabbitMQ's rabbitmq_prometheus plugin
EXTERNAL = {"up", "rabbitmq_detailed_queue_messages_ready", "rabbitmq_detailed_queue_messages_unacked"}
METRIC = re.compile(r"\b(?:twinbill|ingest|twin|scheduler|billing|gateway|process|python|rabbitmq)_[a-z0-9_]+\b|\bup\b")


def test_every_metric_the_alerts_and_dashboards_read_is_exported() -> None:
    """A misspelt metric in a rule or a panel would stay silent forever: each name must be one a
    service defines (or Prometheus / RabbitMQ export)."""
    exprs = [rule["expr"] for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]]
    for path in (GRAFANA / "dashboards").glob("*.json"):
        exprs += [target["expr"] for panel in json.loads(path.read_text())["panels"] for target in panel["targets"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert len(used) > 25
    unknown = used - exported_names() - EXTERNAL
    assert not unknown, f"not exported by any service: {sorted(unknown)}"
