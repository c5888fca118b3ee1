"""Every service's HTTP metrics and process metrics, and /healthz failing once a loop stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from twinbill_common.background import add_background_loops
from twinbill_common.health import add_health_routes
from twinbill_common.http import envelope_middleware, render_management
from twinbill_common.metrics import new_registry


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def app_with_routes(registry: CollectorRegistry) -> web.Application:
    app = web.Application(middlewares=[envelope_middleware([], default=render_management)])
    add_health_routes(app, registry=registry)

    async def device(request: web.Request) -> web.Response:
        if request.match_info["id"] == "0":
            raise web.HTTPNotFound(text="no such device")
        return web.json_response({"id": request.match_info["id"]})

    async def broken(_: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app.router.add_get("/api/v1/devices/{id}", device)
    app.router.add_post("/broken", broken)
    return app


async def test_requests_are_counted_by_route_template_method_and_final_status() -> None:
    registry = new_registry()
    async with TestClient(TestServer(app_with_routes(registry))) as client:
        for device_id in ("1", "2", "0"):
            await (await client.get(f"/api/v1/devices/{device_id}")).read()
        broken = await client.post("/broken")
        assert broken.status == 500
        await (await client.get("/no/such/path/42")).read()
    route = "/api/v1/devices/{id}"
    assert sample(registry, "twinbill_http_requests_total", route=route, method="GET", status="200") == 2
    assert sample(registry, "twinbill_http_requests_total", route=route, method="GET", status="404") == 1
    # the envelope middleware rendered the bug as a 500: that is the status counted
    assert sample(registry, "twinbill_http_requests_total", route="/broken", method="POST", status="500") == 1
    assert sample(registry, "twinbill_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert sample(registry, "twinbill_http_request_duration_seconds_count", route=route, method="GET") == 3
    assert sample(registry, "twinbill_http_requests_in_flight") == 0


async def test_in_flight_counts_a_request_being_handled() -> None:
    registry = new_registry()
    app = web.Application()
    add_health_routes(app, registry=registry)
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.Response(text="done")

    app.router.add_get("/slow", slow)
    async with TestClient(TestServer(app)) as client:
        pending = asyncio.ensure_future(client.get("/slow"))
        await asyncio.wait_for(entered.wait(), 10)
        assert sample(registry, "twinbill_http_requests_in_flight") == 1
        release.set()
        await (await pending).read()
    assert sample(registry, "twinbill_http_requests_in_flight") == 0


async def test_metrics_include_process_and_http_series() -> None:
    registry = new_registry()
    async with TestClient(TestServer(app_with_routes(registry))) as client:
        await (await client.get("/healthz")).read()
        text = await (await client.get("/metrics")).text()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds",
                 "python_gc_collections_total", "python_info",
                 'twinbill_http_requests_total{method="GET",route="/healthz",status="200"}'):
        assert name in text, name


async def test_healthz_fails_once_a_background_loop_stopped() -> None:
    app = web.Application()
    add_health_routes(app, registry=new_registry())
    loops = add_background_loops(app)

    async def consumer() -> None:
        raise ConnectionError("channel closed")

    async def lifespan(_: web.Application) -> AsyncIterator[None]:
        async with loops:
            yield

    app.cleanup_ctx.append(lifespan)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/healthz")).status == 200
        loops.start("telemetry_consumer", consumer())
        await asyncio.wait_for(loops.failed.wait(), 10)
        answer = await client.get("/healthz")
        assert answer.status == 503
        assert "telemetry_consumer" in str(await answer.json())
        assert (await client.get("/readyz")).status == 503
