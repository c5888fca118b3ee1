"""/healthz (alive), /readyz (stores and broker answer) and /metrics for every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from twinbill_common.http import json_response
from twinbill_common.logging import get_logger

log = get_logger(__name__)

Check = Callable[[], Awaitable[object]]
READINESS = web.AppKey("readiness_checks", dict[str, Check])
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


async def healthz(_: web.Request) -> web.Response:
    """The process answers."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Every dependency answers within two seconds; 503 names the ones that do not."""
    checks = request.app[READINESS]
    failures: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout=2.0)
        except Exception as err:  # noqa: BLE001  # any failure means "not ready"; the reason is reported
            failures[name] = f"{type(err).__name__}: {err}"
    if failures:
        return json_response({"status": "unavailable", "failures": failures}, status=503)
    return json_response({"status": "ok", "checks": sorted(checks)})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this service's registry."""
    body = generate_latest(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def watch_task(checks: dict[str, Check], name: str, task: asyncio.Task[object]) -> None:
    """Make /readyz fail, and the log say why, if a long-lived background task ever stops."""

    async def still_running() -> None:
        if task.done():
            raise RuntimeError(f"background task {name} stopped")

    def report(done: asyncio.Task[object]) -> None:
        if done.cancelled():
            return
        if (error := done.exception()) is not None:
            log.error("background task failed", task=name, error=repr(error), exc_info=error)
        else:
            log.error("background task ended", task=name)

    checks[name] = still_running
    task.add_done_callback(report)


def add_health_routes(app: web.Application, *, registry: CollectorRegistry) -> dict[str, Check]:
    """Mount the three routes; the returned dict is where the lifespan registers its checks."""
    checks: dict[str, Check] = {}
    app[READINESS] = checks
    app[METRICS_REGISTRY] = registry
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return checks
