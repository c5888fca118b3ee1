"""The twin's Prometheus metrics, on the service's own registry: the telemetry consumer's write
rate and how far it is behind (consumer lag)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Write lag spans milliseconds (keeping up) to hours (a backlog after an outage).
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True)
class TwinMetrics:
    """Samples and messages stored, the write lag, and the depth of twin.telemetry."""

    samples_written: Counter
    messages_stored: Counter
    write_lag: Histogram
    queue_depth: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> TwinMetrics:
        """Register every metric on `registry`."""
        return cls(
            samples_written=Counter("twin_samples_written_total",
                                    "Samples newly stored by the telemetry consumer (repeats not counted)",
                                    registry=registry),
            messages_stored=Counter("twin_telemetry_messages_total",
                                    "MeasurementsAccepted messages committed by the telemetry consumer",
                                    registry=registry),
            write_lag=Histogram("twin_telemetry_write_lag_seconds",
                                "From the ingest gateway receiving a request to its samples' commit",
                                registry=registry, buckets=LAG_BUCKETS),
            queue_depth=Gauge("twin_telemetry_queue_messages",
                              "Ready messages in twin.telemetry (passive declare every 15 s): the "
                              "consumer's backlog", registry=registry),
        )
