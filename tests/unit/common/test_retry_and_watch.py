"""Transient failures are retried with backoff within a budget; a stopped background task makes
readiness fail; request bodies keep decimals exact."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from twinbill_common.background import BackgroundLoops
from twinbill_common.errors import PermanentError, StoreUnavailable
from twinbill_common.health import add_health_routes
from twinbill_common.http import json_response, read_json
from twinbill_common.metrics import new_registry
from twinbill_common.redelivery import retry_transient


async def test_transient_errors_are_retried_until_success() -> None:
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise StoreUnavailable("down")

    await retry_transient(call, what="probe", first_pause=0.001)
    assert calls == 4


async def test_other_errors_are_not_retried() -> None:
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise PermanentError("bad input")

    with pytest.raises(PermanentError):
        await retry_transient(call, what="probe", first_pause=0.001)
    assert calls == 1


async def test_transient_error_past_the_budget_propagates() -> None:
    async def call() -> None:
        raise ConnectionRefusedError("still down")

    with pytest.raises(ConnectionRefusedError):
        await retry_transient(call, what="probe", budget=0.05, first_pause=0.01)


async def test_readiness_fails_once_a_background_task_stops() -> None:
    app = web.Application()
    checks = add_health_routes(app, registry=new_registry())
    stop = asyncio.Event()

    async def loop() -> None:
        await stop.wait()
        raise RuntimeError("consumer crashed")

    loops = BackgroundLoops(checks)
    loops.start("consumer", loop())
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    try:
        async with loops:
            assert (await client.get("/readyz")).status == 200
            stop.set()
            await asyncio.wait_for(loops.failed.wait(), timeout=10)
            assert loops.failure == "consumer: RuntimeError: consumer crashed"
            response = await client.get("/readyz")
            assert response.status == 503
            assert "consumer" in (await response.json())["failures"]
    finally:
        await client.close()


async def test_request_bodies_keep_decimals_exact() -> None:
    async def echo(request: web.Request) -> web.Response:
        body = await read_json(request)
        exact = body["multiplier"] == Decimal("1234567890.123456789")
        return json_response({"multiplier": body["multiplier"], "exact": exact})

    app = web.Application()
    app.router.add_post("/", echo)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    try:
        response = await client.post("/", data=b'{"multiplier": 1234567890.123456789}',
                                     headers={"Content-Type": "application/json"})
        assert await response.json() == {"multiplier": "1234567890.123456789", "exact": True}
    finally:
        await client.close()
