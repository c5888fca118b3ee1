"""Scheduler fixtures: the app on a real PostgreSQL schema of its own and a bus namespace."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.integration.scheduler.helpers import StaticZones
from twinbill_scheduler.app import create_app
from twinbill_scheduler.settings import SchedulerSettings


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
def zones() -> StaticZones:
    """Project zones of the test: project 7 in Europe/Paris, the rest Asia/Shanghai."""
    return StaticZones({7: "Europe/Paris"}, default="Asia/Shanghai")


@pytest.fixture
async def client(zones: StaticZones,

        settings: SchedulerSettings) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """An HTTP client on the scheduler app; projects default to Asia/Shanghai, 7 is in Paris."""
    app = create_app(settings, zones=zones)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
async def db(pg_dsn: str, schema_name: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to this test's schema (for arranging downtime and checking fires)."""
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": schema_name})
    yield conn
    await conn.close()

