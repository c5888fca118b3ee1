"""The scheduler's Prometheus metrics, on the service's own registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from twinbill_common.metrics import latency_histogram


@dataclass(frozen=True)
class SchedulerMetrics:
    """Fires claimed and published, how late they were, and how many tasks are enabled."""

    fires_claimed: Counter
    fires_published: Counter
    fires_retaken: Counter
    publish_failures: Counter
    lateness: Histogram
    tasks_enabled: Gauge


def scheduler_metrics(registry: CollectorRegistry) -> SchedulerMetrics:
    """Create the metrics on `registry`."""
    return SchedulerMetrics(
        fires_claimed=Counter("scheduler_fires_claimed", "Fire times claimed by this replica",
                              registry=registry),
        fires_published=Counter("scheduler_fires_published",
                                "Run messages confirmed by RabbitMQ", registry=registry),
        fires_retaken=Counter("scheduler_fires_retaken",
                              "Fires taken over after their lease ran out", registry=registry),
        publish_failures=Counter("scheduler_publish_failures",
                                 "Run messages RabbitMQ did not confirm", registry=registry),
        lateness=latency_histogram("scheduler_fire_lateness_seconds",
                                   "Confirmed publish time minus scheduled fire time", registry),
        tasks_enabled=Gauge("scheduler_tasks_enabled", "Enabled tasks", registry=registry),
    )
