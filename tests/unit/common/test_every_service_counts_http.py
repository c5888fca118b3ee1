"""Every service's app (built, not started: no store is reached) has the HTTP metrics middleware
outermost and the process metrics on the registry its /metrics serves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from twinbill_billing.app import create_app as billing_app
from twinbill_billing.settings import BillingSettings
from twinbill_common.health import HTTP_METRICS, METRICS_REGISTRY
from twinbill_gateway.app import create_app as gateway_app
from twinbill_gateway.settings import GatewaySettings
from twinbill_ingest.app import create_app as ingest_app
from twinbill_ingest.settings import IngestSettings
from twinbill_scheduler.app import create_app as scheduler_app
from twinbill_scheduler.settings import SchedulerSettings
from twinbill_twin.app import create_app as twin_app
from twinbill_twin.settings import TwinSettings

SERVICES: dict[str, Callable[[], web.Application]] = {
    "twin": lambda: twin_app(TwinSettings()),
    "scheduler": lambda: scheduler_app(SchedulerSettings()),
    "billing": lambda: billing_app(BillingSettings()),
    "ingest": lambda: ingest_app(IngestSettings()),
    "gateway": lambda: gateway_app(GatewaySettings()),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_metrics_middleware_is_outermost(service: str) -> None:
    app = SERVICES[service]()
    first: Any = app.middlewares[0]
    assert first.__name__ == "count_requests", [m.__name__ for m in app.middlewares]  # type: ignore[attr-defined]  # aiohttp types middlewares as callables
    assert app[HTTP_METRICS] is not None
    names = {family.name for family in app[METRICS_REGISTRY].collect()}
    assert {"process_cpu_seconds", "twinbill_http_requests", "twinbill_http_request_duration_seconds"} <= names
