"""How the seeds write instants (pure: no I/O, no clock)."""

from __future__ import annotations

from datetime import datetime, tzinfo


def seed000_time(instant: datetime, tz: tzinfo) -> str:
    """Seed 000's time text: naive ISO-8601 local time in the project's zone, to the second."""
    return instant.astimezone(tz).replace(tzinfo=None).isoformat(timespec="seconds")
