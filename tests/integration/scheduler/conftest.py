"""Scheduler fixtures: the app on a real PostgreSQL schema of its own and a bus namespace."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aio_pika
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from twinbill_common.schemas import RunBilling
from twinbill_common.topology import BILLING_RUNS
from twinbill_scheduler.app import create_app
from twinbill_scheduler.settings import SchedulerSettings
from twinbill_scheduler.zones import StaticZones


@pytest.fixture
def schema_name() -> str:
    """A PostgreSQL schema no other test uses."""
    return f"sched_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(pg_dsn: str, amqp_url: str, bus_namespace: str, schema_name: str) -> SchedulerSettings:
    """API-only settings (the firing loop off) on this test's schema and namespace."""
    return SchedulerSettings(pg_dsn=pg_dsn, amqp_url=amqp_url, bus_namespace=bus_namespace,
                             schema_name=schema_name, firing_enabled=False, http_port=0)


@pytest.fixture
async def client(settings: SchedulerSettings) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]  # aiohttp's generic TestClient
    """An HTTP client on the scheduler app; projects default to Asia/Shanghai, 7 is in Paris."""
    app = create_app(settings, zones=StaticZones({7: "Europe/Paris"}, default="Asia/Shanghai"))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def db(pg_dsn: str, schema_name: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to this test's schema (for arranging downtime and checking fires)."""
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": schema_name})
    yield conn
    await conn.close()


async def wait_until(check: Callable[[], Awaitable[bool]], *, timeout: float,
                     what: str) -> None:
    """Poll `check` until it holds, failing the test after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def drain_runs(amqp_url: str, namespace: str) -> list[RunBilling]:
    """Every RunBilling waiting on the namespace's billing.runs queue, in queue order."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{namespace}{BILLING_RUNS.name}", ensure=True)
        runs = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            runs.append(RunBilling.model_validate_json(message.body))
        return runs
    finally:
        await connection.close()
