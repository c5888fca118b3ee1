"""Prometheus helpers: each service builds its metrics on its own registry (no import-time globals).

Every registry carries the process metrics (CPU, memory, open files, start time; Python's GC
and version), and every service's HTTP requests are counted by `http_metrics_middleware`, which
`twinbill_common.health.add_health_routes` installs as the outermost middleware.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Methods outside this set are counted as OTHER, so a client cannot grow the label set.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # 404s and 405s: the path is not a label (unbounded)
CLIENT_CLOSED = "499"  # the client went away before the answer (nginx's code for it)


def new_registry() -> CollectorRegistry:
    """A fresh registry for one service instance (tests build several in one process), with the
    process and Python runtime collectors registered on it."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    registry.register(PLATFORM_COLLECTOR)
    registry.register(GC_COLLECTOR)
    return registry


def latency_histogram(name: str, documentation: str, registry: CollectorRegistry,
                      labelnames: tuple[str, ...] = ()) -> Histogram:
    """A seconds histogram with buckets from 1 ms to 10 s."""
    return Histogram(name, documentation, labelnames=labelnames, registry=registry,
                     buckets=LATENCY_BUCKETS)


@dataclass(frozen=True)
class HttpMetrics:
    """Requests by route template, method and status; latency; requests being handled."""

    requests: Counter
    latency: Histogram
    in_flight: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> HttpMetrics:
        """Register the three metrics on `registry`."""
        return cls(
            requests=Counter("twinbill_http_requests", "HTTP requests answered, by route template, "
                             "method and status", ("route", "method", "status"), registry=registry),
            latency=latency_histogram("twinbill_http_request_duration_seconds",
                                      "Time to answer an HTTP request, by route template and method",
                                      registry, ("route", "method")),
            in_flight=Gauge("twinbill_http_requests_in_flight", "HTTP requests being handled",
                            registry=registry),
        )


def route_template(request: web.Request) -> str:
    """The matched route's template (`/api/v1/devices/{id}`), never the raw path."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED_ROUTE
    return resource.canonical


def http_metrics_middleware(metrics: HttpMetrics) -> Middleware:
    """A middleware that counts and times every request; outermost, so the status is the one the
    client got (the envelope middleware has already rendered errors)."""

    @web.middleware
    async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        started = time.perf_counter()
        status = "500"
        metrics.in_flight.inc()
        try:
            response = await handler(request)
            status = str(response.status)
            return response
        except web.HTTPException as exc:
            status = str(exc.status)
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            metrics.in_flight.dec()
            route = route_template(request)
            metrics.requests.labels(route, method, status).inc()
            metrics.latency.labels(route, method).observe(time.perf_counter() - started)

    return count_requests
