"""The real twin app (its telemetry consumer included) on the session database, in a schema and
bus namespace of its own; registry rows are created with SQL (the registry API is not needed)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.servicetokens import as_service
from twinbill_common.bus import Bus
from twinbill_common.schemas import MeasurementsAccepted
from twinbill_common.topology import TELEMETRY, telemetry_key
from twinbill_devstack.namespaces import delete_namespace
from twinbill_twin.app import create_app
from twinbill_twin.keys import POOL
from twinbill_twin.settings import TwinSettings
from twinbill_twin.store.samples import PartitionManager, SampleRecord, seal_hours, write_batch


@pytest.fixture(scope="module")
def ts_settings(pg_dsn: str, amqp_url: str) -> TwinSettings:
    """A twin service with its own schema and bus namespace."""
    tag = uuid.uuid4().hex[:10]
    return TwinSettings(pg_dsn=pg_dsn, amqp_url=amqp_url, schema_name=f"tts_{tag}",
                        bus_namespace=f"tts{tag}.", pg_pool_max=5)


@pytest.fixture(scope="module")
async def twin(ts_settings: TwinSettings) -> AsyncIterator[TestClient[Any, Any]]:
    """A client of the running twin app; its consumer is consuming telemetry."""
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(ts_settings)), headers=as_service("twin"))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture(scope="module")
async def publisher(ts_settings: TwinSettings, twin: TestClient[Any, Any]) -> AsyncIterator[Bus]:
    """A bus connection in the app's namespace, publishing as the ingest gateway does."""
    bus = Bus(ts_settings.amqp_url.get_secret_value(), namespace=ts_settings.bus_namespace)
    await bus.connect()
    yield bus
    await delete_namespace(bus.url, bus.namespace)
    await bus.close()


@pytest.fixture
def pool(twin: TestClient[Any, Any]) -> asyncpg.Pool:
    """The app's pool (search_path on its schema)."""
    return twin.app[POOL]


@dataclass
class Device:
    """A registry device with its instance and attribute ids by name."""

    id: int
    product_key: str
    device_key: str
    instance_id: int
    instance_name: str
    attributes: dict[str, int]


# (name, attrtype, datatype, measurepoint, data type) of the test product
ATTRIBUTES = [
    ("total", "Stream", "Number", "total", {"type": "double"}),
    ("humidity", "Stream", "Number", "humidity", {"type": "double"}),
    ("temps", "Stream", "Json Array", "temps", {"type": "array", "item": {"type": "double"}}),
    ("reading", "Stream", "Json Object", "reading",
     {"type": "struct", "fields": {"value": {"type": "double"}, "quality": {"type": "int"}}}),
    ("status", "Stream", "String", "status", {"type": "string"}),
    ("valve", "State", "Boolean", "valve", {"type": "bool"}),
    ("location", "Description", "String", None, None),
]


async def make_device(pool: asyncpg.Pool, *, timezone: str = "Asia/Shanghai") -> Device:
    """Project, product (billing register `total`), device, template, instance and attributes."""
    tag = uuid.uuid4().hex[:8]
    async with pool.acquire() as conn, conn.transaction():
        project = await conn.fetchval(
            "INSERT INTO projects (name, timezone) VALUES ($1, $2) RETURNING id", f"p-{tag}", timezone)
        product = await conn.fetchval(
            "INSERT INTO products (product_key, name, billing_register) VALUES ($1, 'meter', 'total') "
            "RETURNING id", f"pk{tag}")
        for position, (_, _, _, mp, data_type) in enumerate(ATTRIBUTES):
            if mp is not None:
                await conn.execute(
                    "INSERT INTO measurepoints (product_id, identifier, data_type, position) "
                    "VALUES ($1, $2, $3::jsonb, $4)", product, mp, json.dumps(data_type), position)
        template = await conn.fetchval(
            "INSERT INTO templates (product_id, name) VALUES ($1, 'meter') RETURNING id", product)
        device = await conn.fetchval(
            "INSERT INTO devices (product_id, device_key, name, secret, project_id) "
            "VALUES ($1, $2, $3, 's', $4) RETURNING id", product, f"device-{tag}", f"d-{tag}", project)
        name = f"计算机-{tag}"
        instance = await conn.fetchval(
            "INSERT INTO instances (template_id, device_id, name) VALUES ($1, $2, $3) RETURNING id",
            template, device, name)
        attributes = {}
        for attr, attrtype, datatype, mp, _ in ATTRIBUTES:
            attributes[attr] = await conn.fetchval(
                "INSERT INTO attributes (instance_id, name, displayname, attrtype, datatype, "
                "measurepoint, metric, value) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                instance, attr, f"显示-{attr}", attrtype, datatype, mp, attr if mp else "",
                "3rd floor" if attrtype == "Description" else "")
    return Device(device, f"pk{tag}", f"device-{tag}", instance, name, attributes)


def encode(value: Any) -> str:
    """JSON whose numbers keep their decimal text, as the ingest gateway publishes them."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime):
        return json.dumps(value.isoformat())
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def measurements(device: Device, points: list[tuple[int, dict[str, Any]]], *,
                 received_at: int = 1_700_000_000_000, message_id: str | None = None
                 ) -> MeasurementsAccepted:
    """A MeasurementsAccepted of the device's points [(time ms, measurepoints)]."""
    return MeasurementsAccepted.model_construct(
        schema_version=1, message_id=message_id or uuid.uuid4().hex,
        produced_at=datetime.fromtimestamp(received_at / 1000).astimezone(),
        product_key=device.product_key, device_key=device.device_key, request_id="1",
        method="thing.measurepoint.resume.batch", received_at=received_at,
        # built unvalidated: the values stay Decimals, published as exact number text
        points=[{"product_key": device.product_key, "device_key": device.device_key,
                 "time": ts, "measurepoints": mps} for ts, mps in points])  # type: ignore[misc]  # dicts, validated by the model on purpose


async def publish(bus: Bus, message: MeasurementsAccepted) -> None:
    """Publish with confirms, numbers as exact decimal text."""
    body = {name: getattr(message, name) for name in MeasurementsAccepted.model_fields}
    await bus.publish_raw(TELEMETRY, telemetry_key(message.product_key, message.device_key),
                          encode(body).encode(), message_id=message.message_id,
                          headers={"type": "MeasurementsAccepted"})


async def wait_for(check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0) -> None:
    """Poll a condition until it holds, or fail after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def count_samples(pool: asyncpg.Pool, attribute_id: int) -> int:
    """Stored samples of an attribute."""
    return int(await pool.fetchval("SELECT count(*) FROM samples WHERE attribute_id = $1", attribute_id))


async def write_samples(pool: asyncpg.Pool, records: list[SampleRecord], *, batch: int) -> None:
    """Store records through the write path, `batch` at a time (as the consumer would)."""
    partitions = PartitionManager()
    for index in range(0, len(records), batch):
        async with pool.acquire() as conn:
            await write_batch(conn, samples=records[index:index + batch], currents=[], devices={}, instances={},
                              partitions=partitions)


async def seal_all(pool: asyncpg.Pool) -> None:
    """Seal every marked hour, however recent (as the seal loop does once hours have ended)."""
    async with pool.acquire() as conn:
        while (await seal_hours(conn, now_ms=2**62))[0]:
            pass
