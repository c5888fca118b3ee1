"""What the simulator sent and what the ingest gateway answered."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SimulatorStats:
    """What the simulator sent and what the gateway answered."""

    requests: int = 0
    points_sent: int = 0
    points_acked: int = 0
    retries: int = 0
    timeouts: int = 0
    relogins: int = 0
    reconnects: int = 0
    commands: int = 0  # reverse-control set requests applied and answered
    codes: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def percentile(self, q: float) -> float:
        """Publish-to-reply latency at quantile q, in seconds (0 if none)."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        """One line of counts."""
        elapsed = time.perf_counter() - self.started
        return (
            f"{elapsed:6.1f}s requests={self.requests} points sent={self.points_sent} "
            f"acked(200)={self.points_acked} ({self.points_acked / max(elapsed, 1e-9):,.0f}/s) "
            f"codes={dict(self.codes)} retries={self.retries} timeouts={self.timeouts} "
            f"relogins={self.relogins} reconnects={self.reconnects} commands={self.commands} "
            f"p50={self.percentile(0.5) * 1000:.1f}ms p99={self.percentile(0.99) * 1000:.1f}ms"
        )
