"""Which service owns a public path (project access is in `access`)."""

from __future__ import annotations

from typing import Literal

Upstream = Literal["twin", "scheduler", "billing"]

# First match wins; anything under /internal/ is never exposed.
ROUTES: tuple[tuple[str, Upstream], ...] = (
    ("/api/v1/scheduler/history/", "billing"),
    ("/api/v1/scheduler/", "scheduler"),
    ("/api/v1/tariffs/", "billing"),
    ("/api/v1/billing/", "billing"),
    ("/api/v1/bills/", "billing"),
    ("/dt/open/", "twin"),
    ("/api/v1/", "twin"),
)


def upstream_for(path: str) -> Upstream | None:
    """The service that serves `path`, or None when the gateway does not expose it."""
    if path.startswith("/internal/"):
        return None
    for prefix, upstream in ROUTES:
        if path.startswith(prefix) or path + "/" == prefix:
            return upstream
    return None

