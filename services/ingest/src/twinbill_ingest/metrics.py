"""The gateway's Prometheus metrics, on the service's own registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from twinbill_common.metrics import latency_histogram


@dataclass
class IngestMetrics:
    """Requests by topic kind and reply code, points, confirm latency, online devices."""

    requests: Counter
    points_accepted: Counter
    points_rejected: Counter
    confirm_latency: Histogram
    online_devices: Gauge
    inflight: Gauge
    store_refusing: Gauge
    commands: Counter
    commands_pending: Gauge
    command_replies: Counter
    command_reply_latency: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IngestMetrics:
        """Register every metric on `registry`."""
        return cls(
            requests=Counter(
                "ingest_requests_total",
                "MQTT requests answered, by topic kind and reply code",
                ("kind", "code"),
                registry=registry,
            ),
            points_accepted=Counter(
                "ingest_points_accepted_total", "Measurepoint values published and confirmed", registry=registry
            ),
            points_rejected=Counter(
                "ingest_points_rejected_total", "Measurepoint values refused or dropped as invalid", registry=registry
            ),
            confirm_latency=latency_histogram(
                "ingest_publish_confirm_seconds", "Time from publishing to RabbitMQ's confirm", registry
            ),
            online_devices=Gauge(
                "ingest_online_sub_devices", "Sub-devices logged in through a gateway", registry=registry
            ),
            inflight=Gauge("ingest_requests_inflight", "Requests awaiting a publisher confirm", registry=registry),
            store_refusing=Gauge(
                "ingest_twin_store_refusing",
                "1 while the twin reports its time-series store refuses writes (measurepoints get 500)",
                registry=registry,
            ),
            commands=Counter(
                "ingest_commands_total",
                "Reverse-control commands by outcome (delivered, expired, superseded, requeued, invalid)",
                ("outcome",),
                registry=registry,
            ),
            commands_pending=Gauge(
                "ingest_commands_pending", "Commands held for a device that is not online yet", registry=registry
            ),
            command_replies=Counter(
                "ingest_command_replies_total", "Devices' set_reply answers by code", ("code",), registry=registry
            ),
            command_reply_latency=latency_histogram(
                "ingest_command_reply_seconds", "Time from publishing a set request to the device's set_reply", registry
            ),
        )
