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
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from twinbill_common.apidocs import documented
from twinbill_common.http import json_response
from twinbill_common.logging import get_logger
from twinbill_common.metrics import HttpMetrics, http_metrics_middleware

Check = Callable[[], Awaitable[object]]
READINESS = web.AppKey("readiness_checks", dict[str, Check])
Liveness = Callable[[], str | None]
LIVENESS = web.AppKey("liveness_checks", list[Liveness])
METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
HTTP_METRICS = web.AppKey("http_metrics", HttpMetrics)
# False on a port clients reach (the API gateway's): /readyz names failing checks without the
# exception's text (addresses, driver wording), which goes to the log instead.
READINESS_DETAIL = web.AppKey("readiness_detail", bool)
log = get_logger(__name__)


@documented(summary="The process answers (503 names a liveness fault: a background loop stopped)",
            response=dict[str, Any], tags=("operations",))
async def healthz(request: web.Request) -> web.Response:
    """The process answers and none of its liveness checks names a fault (503 names them)."""
    faults = [reason for check in request.app.get(LIVENESS, []) if (reason := check()) is not None]
    if faults:
        return json_response({"status": "failing", "failures": faults}, status=503)
    return json_response({"status": "ok"})


@documented(summary="Stores, broker and background loops answer (503 names those that do not)",
            response=dict[str, Any], tags=("operations",))
async def readyz(request: web.Request) -> web.Response:
    """Every dependency answers within two seconds; 503 names the ones that do not."""
    checks = request.app[READINESS]
    failures: dict[str, str] = {}
    for name, check in checks.items():
        try:
            await asyncio.wait_for(check(), timeout=2.0)
        except Exception as err:  # noqa: BLE001  # any failure means "not ready"; the reason is reported
            failures[name] = f"{type(err).__name__}: {err}"
            if not request.app.get(READINESS_DETAIL, True):
                log.warning("not ready", check=name, reason=failures[name])
                failures[name] = "unavailable"
    if failures:
        return json_response({"status": "unavailable", "failures": failures}, status=503)
    return json_response({"status": "ok", "checks": sorted(checks)})


@documented(summary="Prometheus text exposition", content_type="text/plain", tags=("operations",))
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this service's registry."""
    body = generate_latest(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_health_routes(app: web.Application, *, registry: CollectorRegistry,
                      metrics_route: bool = True, public: bool = False) -> dict[str, Check]:
    """Mount the three routes and the HTTP metrics middleware (outermost); the returned dict is
    where the lifespan registers its readiness checks. `public=True` (a port clients reach)
    leaves /metrics out (serve `metrics_app` elsewhere) and keeps failure texts out of /readyz;
    `metrics_route=False` only leaves /metrics out."""
    checks: dict[str, Check] = {}
    app[READINESS] = checks
    app[LIVENESS] = []
    app[READINESS_DETAIL] = not public
    metrics_route = metrics_route and not public
    app[METRICS_REGISTRY] = registry
    app[HTTP_METRICS] = HttpMetrics.create(registry)
    app.middlewares.insert(0, http_metrics_middleware(app[HTTP_METRICS]))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if metrics_route:
        app.router.add_get("/metrics", metrics)
    return checks


def metrics_app(registry: CollectorRegistry) -> web.Application:
    """An application serving only /metrics of `registry`, for a listener of its own."""
    app = web.Application()
    app[METRICS_REGISTRY] = registry
    app.router.add_get("/metrics", metrics)
    return app
