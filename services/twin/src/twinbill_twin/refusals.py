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
    """The store's write state as the telemetry consumer sees it: refusing while it holds a batch
    that PostgreSQL refused and that has not been stored since.

    Each held batch is recorded under a key (the consumer's batch); its successful retry takes it
    out. Another batch that happens to fit (free space left in a page) does not: near a full disk
    writes succeed and fail by turns, and the state must not flap with them. A held batch is
    retried at least every few seconds; one not heard of for `stale_after` seconds was given back
    to the queue (past the retry budget) and no longer counts (its messages come back as new
    batches and are recorded again if they still fail).
    """

    def __init__(self, registry: CollectorRegistry | None = None, *, stale_after: float = 30.0) -> None:
        self.stale_after = stale_after
        self.reason: str | None = None  # the newest refusal's reason
        self.sqlstate: str | None = None
        self.since_ms: int | None = None
        self.refused_total = 0
        self._held: dict[int, float] = {}  # batch key -> monotonic time of its last refusal
        registry = registry if registry is not None else CollectorRegistry()
        gauge = Gauge("twin_store_refusing_writes",
                      "1 while PostgreSQL refuses the telemetry consumer's writes (SQLSTATE class 53)",
                      registry=registry)
        gauge.set_function(lambda: 0.0 if self.writable else 1.0)
        self._counter = Counter("twin_store_refused_writes",
                                "Telemetry batches PostgreSQL refused for lack of a resource, by SQLSTATE",
                                labelnames=("sqlstate",), registry=registry)

    @property
    def writable(self) -> bool:
        now = time.monotonic()
        for key, at in list(self._held.items()):
            if now - at > self.stale_after:
                del self._held[key]
        if not self._held:
            self.since_ms = None
        return not self._held

    def refused(self, err: asyncpg.PostgresError, *, batch: int = 0) -> None:
        """A write of `batch` failed with a class-53 error."""
        sqlstate = str(getattr(err, "sqlstate", "53000") or "53000")
        if self.writable:
            self.since_ms = time.time_ns() // 1_000_000
        self._held[batch] = time.monotonic()
        self.sqlstate = sqlstate
        self.reason = f"{REASONS.get(sqlstate, 'insufficient resources')} (SQLSTATE {sqlstate}): {err}"
        self.refused_total += 1
        self._counter.labels(sqlstate).inc()

    def stored(self, *, batch: int = 0) -> None:
        """A write of `batch` succeeded: if it was held, it is no longer."""
        self._held.pop(batch, None)

    async def check(self) -> None:
        """The readiness check: raise, naming the reason, while writes are refused."""
        if not self.writable:
            seconds = (time.time_ns() // 1_000_000 - (self.since_ms or 0)) / 1000
            raise RuntimeError(f"PostgreSQL refuses time-series writes for {seconds:.0f}s "
                               f"({len(self._held)} batch(es) waiting): {self.reason}")

    def status(self) -> dict[str, Any]:
        """The body of GET /internal/v1/telemetry/store."""
        writable = self.writable
        return {"writable": writable, "reason": None if writable else self.reason,
                "sqlstate": None if writable else self.sqlstate, "since": self.since_ms}
