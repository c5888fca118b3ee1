"""/healthz (alive), /readyz (stores and broker answer) and /metrics for every service.

/healthz fails only when the process cannot go on: a liveness check returns a reason (a
background loop stopped, twinbill_common.background). The process then exits with status 1 by
itself (twinbill_common.service); /healthz failing meanwhile lets a liveness probe restart a
container whose shutdown hangs. A store or broker that does not answer fails /readyz only: a
restart would not bring it back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from twinbill_common.http import json_response
from twinbill_common.metrics import HttpMetrics, http_metrics_middleware

Check = Callable[[], Awaitable[object]]
READINESS = web.AppKey("readiness_checks", dict[str, Check])
Liveness = Callable[[], str | None]
LIVENESS = web.AppKey("liveness_checks", list[Liveness])
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)


async def healthz(request: web.Request) -> web.Response:
    """The process answers and none of its liveness checks names a fault (503 names them)."""
    faults = [reason for check in request.app.get(LIVENESS, []) if (reason := check()) is not None]
    if faults:
        return json_response({"status": "failing", "failures": faults}, status=503)
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


def add_health_routes(app: web.Application, *, registry: CollectorRegistry) -> dict[str, Check]:
    """Mount the three routes and the HTTP metrics middleware (outermost); the returned dict is
    where the lifespan registers its readiness checks."""
    checks: dict[str, Check] = {}
    app[READINESS] = checks
    app[LIVENESS] = []
    app[METRICS_REGISTRY] = registry
    app[HTTP_METRICS] = HttpMetrics.create(registry)
    app.middlewares.insert(0, http_metrics_middleware(app[HTTP_METRICS]))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return checks
