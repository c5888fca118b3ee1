"""Whether PostgreSQL refuses the telemetry consumer's writes for lack of a resource (SQLSTATE
class 53: disk full, out of memory, a configuration limit), since when and why.

The consumer records each refused and each successful write here. While writes are refused the
twin's /readyz names the reason (check `timeseries_store`), `/metrics` says so
(`twin_store_refusing_writes`, `twin_store_refused_writes_total{sqlstate}`), and
`GET /internal/v1/telemetry/store` answers `{"writable": false, ...}`: the ingest gateway polls it
and stops acknowledging new points until the twin can store again (docs/architecture.md, "Fault
campaign"). The refused batch itself stays unacked on `twin.telemetry` and is retried in place,
so the first write that succeeds again is what clears the state.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge

# What each class-53 code means, for the reason a person reads in /readyz.
REASONS = {
    "53100": "disk full",
    "53200": "out of memory",
    "53400": "configuration limit exceeded",
}


def refuses_writes(err: BaseException) -> bool:
    """A write refused for lack of a resource: class 53 except too-many-connections (53300, a
    connect-time condition of the pool, not the store refusing what it is given)."""
    return isinstance(err, asyncpg.InsufficientResourcesError) and not isinstance(
        err, asyncpg.TooManyConnectionsError)


class WriteRefusals:
    """The store's write state as the telemetry consumer last saw it."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.reason: str | None = None
        self.sqlstate: str | None = None
        self.since_ms: int | None = None
        self.refused_total = 0
        registry = registry if registry is not None else CollectorRegistry()
        self._gauge = Gauge("twin_store_refusing_writes",
                            "1 while PostgreSQL refuses the telemetry consumer's writes (SQLSTATE class 53)",
                            registry=registry)
        self._counter = Counter("twin_store_refused_writes",
                                "Telemetry batches PostgreSQL refused for lack of a resource, by SQLSTATE",
                                labelnames=("sqlstate",), registry=registry)

    @property
    def writable(self) -> bool:
        return self.reason is None

    def refused(self, err: asyncpg.PostgresError) -> None:
        """A batch write failed with a class-53 error."""
        sqlstate = str(getattr(err, "sqlstate", "53000") or "53000")
        if self.reason is None:
            self.since_ms = time.time_ns() // 1_000_000
        self.sqlstate = sqlstate
        self.reason = f"{REASONS.get(sqlstate, 'insufficient resources')} (SQLSTATE {sqlstate}): {err}"
        self.refused_total += 1
        self._gauge.set(1)
        self._counter.labels(sqlstate).inc()

    def stored(self) -> None:
        """A batch write succeeded: the store takes writes again."""
        if self.reason is not None:
            self.reason = self.sqlstate = self.since_ms = None
            self._gauge.set(0)

    async def check(self) -> None:
        """The readiness check: raise, naming the reason, while writes are refused."""
        if self.reason is not None:
            seconds = (time.time_ns() // 1_000_000 - (self.since_ms or 0)) / 1000
            raise RuntimeError(f"PostgreSQL refuses time-series writes for {seconds:.0f}s: {self.reason}")

    def status(self) -> dict[str, Any]:
        """The body of GET /internal/v1/telemetry/store."""
        return {"writable": self.writable, "reason": self.reason, "sqlstate": self.sqlstate,
                "since": self.since_ms}
