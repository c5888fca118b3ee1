"""The billing service's Prometheus metrics, on the service's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo import monitoring


class BillingMetrics:
    """Jobs and bills by outcome, run duration, and the job queue depth the workers see."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "billing_runs_total",
            "RunBilling messages by outcome (split, duplicate)",
            ["outcome"],
            registry=registry,
        )
        self.runs_finished = Counter(
            "billing_runs_finished_total",
            "Runs finished, by outcome: clean, or with_failures (a device failed, an exception "
            "in the run, or a job dead-lettered); the run report lists them",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("clean", "with_failures"):  # from 0, so the first such run is an increase
            self.runs_finished.labels(outcome)
        self.jobs = Counter(
            "billing_jobs_total",
            "Billing jobs by outcome (done, redelivered, retried, dead_lettered)",
            ["outcome"],
            registry=registry,
        )
        self.bills = Counter(
            "billing_bills_total",
            "Devices by outcome (billed, already_billed, skipped, failed, exception, estimated)",
            ["outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "billing_dead_letters_total",
            "billing.jobs.dlq messages drained (recorded, already_recorded, parked)",
            ["outcome"],
            registry=registry,
        )
        self.run_duration = Histogram(
            "billing_run_duration_seconds",
            "From a run's split to its last job's outcome",
            registry=registry,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
        )
        self.job_duration = Histogram(
            "billing_job_duration_seconds",
            "Time to bill one job (chunk of devices)",
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.store_operations = Counter(
            "billing_store_operations_total",
            "MongoDB commands the service sent (each a round trip: find, getMore, insert, ...), by "
            "command; bench_billing divides them by the bills made",
            ["command"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "billing_jobs_queue_depth",
            "Ready messages in billing.jobs (passive declare): what an autoscaler scales on",
            registry=registry,
        )


class StoreOperations(monitoring.CommandListener):
    """Counts every MongoDB command the client sends (pymongo command monitoring), by name."""

    def __init__(self, metrics: BillingMetrics) -> None:
        self.counter = metrics.store_operations

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.counter.labels(event.command_name).inc()

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
