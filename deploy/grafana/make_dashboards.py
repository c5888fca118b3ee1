"""Writes twinbill's Grafana dashboards (dashboards/*.json) from the panel lists below.

`python deploy/grafana/make_dashboards.py` after changing a panel; tests/deploy checks that the
committed JSON is what this writes and that every query is valid PromQL (promtool). Compose
provisions the JSON files (provisioning/); on Kubernetes deploy/k8s/monitoring puts them in
ConfigMaps labelled grafana_dashboard=1 (the Grafana sidecar convention of kube-prometheus-stack).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
Panel = tuple[str, str, list[tuple[str, str]]]  # title, unit, [(legend, PromQL)]


def quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    """p50, p95 and p99 of a histogram over 5 minutes."""
    group = f"le{', ' + by if by else ''}"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [(f"{prefix}p{q}", f"histogram_quantile(0.{q}, sum by ({group}) (rate({metric}_bucket[5m])))")
            for q in ("50", "95", "99")]


DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "ingest": ("twinbill / Ingest", [
        ("Measurepoint values per second", "ops", [
            ("accepted", "sum(rate(ingest_points_accepted_total[5m]))"),
            ("refused", "sum(rate(ingest_points_rejected_total[5m]))")]),
        ("Replies by code", "reqps", [
            ("{{code}}", "sum by (code) (rate(ingest_requests_total[5m]))")]),
        ("Replies by request kind and code", "reqps", [
            ("{{kind}} {{code}}", "sum by (kind, code) (rate(ingest_requests_total[5m]))")]),
        ("Refused share", "percentunit", [
            ("refused", "sum(rate(ingest_points_rejected_total[5m])) / clamp_min(sum(rate(ingest_points_accepted_total[5m])) + sum(rate(ingest_points_rejected_total[5m])), 1e-9)")]),
        ("Publish confirm latency", "s", quantiles("ingest_publish_confirm_seconds")),
        ("Online sub-devices, requests awaiting a confirm", "short", [
            ("online", "sum(ingest_online_sub_devices)"),
            ("awaiting confirm", "sum(ingest_requests_inflight)")]),
        ("Reverse-control commands", "ops", [
            ("{{outcome}}", "sum by (outcome) (rate(ingest_commands_total[5m]))")]),
    ]),
    "twin": ("twinbill / Twin", [
        ("Write lag (gateway received -> samples committed)", "s", quantiles("twin_telemetry_write_lag_seconds")),
        ("Backlog in twin.telemetry", "short", [
            ("messages", "max(twin_telemetry_queue_messages)")]),
        ("Write rate", "ops", [
            ("samples/s", "sum(rate(twin_samples_written_total[5m]))"),
            ("messages/s", "sum(rate(twin_telemetry_messages_total[5m]))")]),
        ("Dead letters of twin.telemetry", "short", [
            ("{{queue}}", 'max by (queue) (twinbill_dead_letter_messages{queue=~".*twin.telemetry.dlq"})')]),
    ]),
    "scheduler": ("twinbill / Scheduler", [
        ("Fire lateness (confirmed publish - scheduled time)", "s", quantiles("scheduler_fire_lateness_seconds")),
        ("Fires", "ops", [
            ("claimed", "sum(rate(scheduler_fires_claimed_total[5m]))"),
            ("published", "sum(rate(scheduler_fires_published_total[5m]))"),
            ("taken over", "sum(rate(scheduler_fires_retaken_total[5m]))"),
            ("publish failures", "sum(rate(scheduler_publish_failures_total[5m]))")]),
        ("Enabled tasks", "short", [("tasks", "max(scheduler_tasks_enabled)")]),
    ]),
    "billing": ("twinbill / Billing", [
        ("Runs finished (per hour)", "short", [
            ("{{outcome}}", "sum by (outcome) (increase(billing_runs_finished_total[1h]))")]),
        ("Devices by outcome (per hour): billed, skipped, estimated, failed, exceptions", "short", [
            ("{{outcome}}", "sum by (outcome) (increase(billing_bills_total[1h]))")]),
        ("Jobs by outcome", "ops", [
            ("{{outcome}}", "sum by (outcome) (rate(billing_jobs_total[5m]))")]),
        ("Run duration", "s", quantiles("billing_run_duration_seconds")),
        ("Job duration", "s", quantiles("billing_job_duration_seconds")),
        ("billing.jobs depth (what KEDA scales on) and workers", "short", [
            ("ready jobs", "max(billing_jobs_queue_depth)"),
            ("workers", 'count(up{job="twinbill", service="billing"} == 1)')]),
    ]),
    "bus": ("twinbill / Bus", [
        ("Ready messages by queue", "short", [
            ("{{queue}}", "sum by (queue) (rabbitmq_detailed_queue_messages_ready)")]),
        ("Unacknowledged messages by queue", "short", [
            ("{{queue}}", "sum by (queue) (rabbitmq_detailed_queue_messages_unacked)")]),
        ("Dead letters by queue", "short", [
            ("{{queue}}", "max by (queue) (twinbill_dead_letter_messages)")]),
        ("Dead letters added (15 min)", "short", [
            ("{{queue}}", "delta(max by (queue) (twinbill_dead_letter_messages)[15m:1m])")]),
    ]),
    "services": ("twinbill / Services (HTTP and processes)", [
        ("Up", "short", [("{{service}} {{instance}}", 'up{job="twinbill"}')]),
        ("Requests by service and status", "reqps", [
            ("{{service}} {{status}}", 'sum by (service, status) (rate(twinbill_http_requests_total{job="twinbill"}[5m]))')]),
        ("Server errors by route", "reqps", [
            ("{{service}} {{method}} {{route}}", 'sum by (service, method, route) (rate(twinbill_http_requests_total{job="twinbill", status=~"5.."}[5m]))')]),
        ("Latency p95 by service", "s", quantiles("twinbill_http_request_duration_seconds", "service")[1:2]),
        ("Slowest routes (p95)", "s", [
            ("{{service}} {{method}} {{route}}", 'topk(10, histogram_quantile(0.95, sum by (le, service, method, route) (rate(twinbill_http_request_duration_seconds_bucket{job="twinbill"}[5m]))))')]),
        ("Requests in flight", "short", [
            ("{{service}} {{instance}}", 'twinbill_http_requests_in_flight{job="twinbill"}')]),
        ("Gateway authentication", "ops", [
            ("{{scheme}} {{outcome}}", "sum by (scheme, outcome) (rate(gateway_auth_total[5m]))")]),
        ("CPU", "percentunit", [
            ("{{service}} {{instance}}", 'rate(process_cpu_seconds_total{job="twinbill"}[5m])')]),
        ("Resident memory", "bytes", [
            ("{{service}} {{instance}}", 'process_resident_memory_bytes{job="twinbill"}')]),
    ]),
}


def panel(number: int, title: str, unit: str, targets: list[tuple[str, str]]) -> dict[str, Any]:
    """One time-series panel, two to a row."""
    return {
        "id": number + 1, "type": "timeseries", "title": title, "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (number % 2), "y": 8 * (number // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (legend, expr) in enumerate(targets)],
    }


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    """A whole dashboard JSON model."""
    return {
        "uid": f"twinbill-{uid}", "title": title, "tags": ["twinbill"], "timezone": "browser",
        "schemaVersion": 39, "version": 1, "editable": True, "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": [panel(i, *spec) for i, spec in enumerate(panels)],
    }


def rendered() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {f"{uid}.json": json.dumps(dashboard(uid, title, panels), indent=2, ensure_ascii=False) + "\n"
            for uid, (title, panels) in DASHBOARDS.items()}


def main() -> None:
    """Write dashboards/*.json."""
    for name, text in rendered().items():
        (HERE / "dashboards" / name).write_text(text)


if __name__ == "__main__":
    main()
