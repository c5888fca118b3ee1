"""Writes deploy/k8s/components/monitoring's copies of the alert rules and dashboards.

kustomize reads files only below a kustomization, so the component carries copies:
prometheusrule.yaml (the groups of alerts.yml in a PrometheusRule) and dashboards/*.json.
Run `python deploy/prometheus/to_k8s.py` after changing either; tests/deploy checks the copies.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
COMPONENT = DEPLOY / "k8s" / "components" / "monitoring"
HEADER = "# Written by deploy/prometheus/to_k8s.py from deploy/prometheus/alerts.yml: edit that file.\n"


def prometheus_rule() -> str:
    """The PrometheusRule text for alerts.yml's groups."""
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "twinbill", "labels": {"release": "prometheus"}},
            "spec": {"groups": groups}}
    return HEADER + yaml.safe_dump(rule, sort_keys=False, width=100, allow_unicode=True)


def main() -> None:
    """Write prometheusrule.yaml and copy the dashboards."""
    (COMPONENT / "prometheusrule.yaml").write_text(prometheus_rule())
    for old in (COMPONENT / "dashboards").glob("*.json"):
        old.unlink()
    for dashboard in (DEPLOY / "grafana" / "dashboards").glob("*.json"):
        shutil.copy(dashboard, COMPONENT / "dashboards" / dashboard.name)


if __name__ == "__main__":
    main()
