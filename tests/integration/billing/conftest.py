"""Billing integration fixtures: the twin contract served from memory, and the billing app on a port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pymongo import AsyncMongoClient

from twinbill_billing.app import create_app
from twinbill_billing.context import CONTEXT
from twinbill_billing.settings import BillingSettings
from twinbill_common.bus import Bus
from twinbill_common.mongo import free_port

from .fake_twin import TwinData, create_fake_twin


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """Run an aiohttp app on a free local port; returns the runner and base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def twin() -> AsyncIterator[tuple[TwinData, str]]:
    """The twin contract on a local port, backed by a TwinData the test fills."""
    data = TwinData()
    runner, url = await serve(create_fake_twin(data))
    yield data, url
    await runner.cleanup()


@dataclass
class Billing:
    """A running billing service and handles on its stores."""

    url: str
    app: web.Application
    settings: BillingSettings
    db: Any
    bus: Bus
    http: aiohttp.ClientSession


@pytest.fixture
def billing_settings(mongo_url: str, mongo_db_name: str, amqp_url: str, bus_namespace: str,
                     twin: tuple[TwinData, str]) -> BillingSettings:
    """Settings for one isolated billing service: own Mongo database and bus namespace."""
    return BillingSettings(mongo_url=mongo_url, mongo_db=mongo_db_name, amqp_url=amqp_url,
                           bus_namespace=bus_namespace, twin_url=twin[1], chunk_size=7,
                           queue_depth_interval=0.5)


@pytest.fixture
async def billing(billing_settings: BillingSettings) -> AsyncIterator[Billing]:
    """The billing app (HTTP + consumers) running in-process, a publisher bus and a DB handle."""
    app = create_app(billing_settings)
    runner, url = await serve(app)
    bus = Bus(billing_settings.amqp_url.get_secret_value(), namespace=billing_settings.bus_namespace)
    await bus.connect()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(billing_settings.mongo_url, tz_aware=True)
    session = aiohttp.ClientSession()
    assert app[CONTEXT] is not None
    yield Billing(url, app, billing_settings, client[billing_settings.mongo_db], bus, session)
    await session.close()
    await client.close()
    await bus.close()
    await runner.cleanup()


async def wait_for(check: Callable[[], Awaitable[Any]], *, timeout: float = 30.0,
                   what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)
