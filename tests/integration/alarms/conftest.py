"""The real twin app with its alarm consumer and offline sweep (0.2 s), on the session database,
in a schema and bus namespace of its own; devices are made with SQL as in twin_timeseries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from twinbill_common.bus import Bus
from twinbill_devstack.namespaces import delete_namespace
from twinbill_twin.app import create_app
from twinbill_twin.settings import TwinSettings


@pytest.fixture(scope="module")
async def alarm_settings(pg_dsn: str, amqp_url: str) -> AsyncIterator[TwinSettings]:
    """Rules re-read on every batch, offline sweeps and alarm shard balancing every 0.2 s. The
    bus namespace is deleted after the module, once every twin app its tests started has stopped
    (deleted while one runs, its robust channels would declare the queues again)."""
    tag = uuid.uuid4().hex[:10]
    settings = TwinSettings(pg_dsn=pg_dsn, amqp_url=amqp_url, schema_name=f"alarm_{tag}",
                            bus_namespace=f"al{tag}.", pg_pool_max=6, alarm_rules_ttl=0,
                            alarm_sweep_interval=0.2, notifier_interval=0.1, alarm_lease_ttl=1.0,
                            alarm_balance_interval=0.2)
    yield settings
    await delete_namespace(amqp_url, settings.bus_namespace)


@pytest.fixture(scope="module")
async def twin(alarm_settings: TwinSettings) -> AsyncIterator[TestClient[Any, Any]]:
    """The running twin app."""
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(alarm_settings)))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def publisher(alarm_settings: TwinSettings, twin: TestClient[Any, Any]) -> AsyncIterator[Bus]:
    """Publishes as the ingest gateway does (alarm_settings deletes the namespace)."""
    bus = Bus(alarm_settings.amqp_url.get_secret_value(), namespace=alarm_settings.bus_namespace)
    await bus.connect()
    yield bus
    await bus.close()
