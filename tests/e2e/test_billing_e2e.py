"""End to end: the real twin service (PostgreSQL, telemetry consumer) feeds the billing worker.

Meters report over the telemetry bus as the ingest gateway publishes; the twin stores samples;
a RunBilling makes the billing worker list the devices and read the last readings from the twin
over HTTP; the bills and the seed-000 history show the registry's address and residents.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pymongo import AsyncMongoClient

from tests.servicetokens import as_service
from twinbill_billing.app import create_app as create_billing
from twinbill_billing.domain.periods import to_epoch_ms
from twinbill_billing.settings import BillingSettings
from twinbill_common.bus import Bus
from twinbill_common.schemas.billing import RunBilling
from twinbill_common.topology import BILLING, TELEMETRY, telemetry_key
from twinbill_devstack.ports import free_port
from twinbill_twin.app import create_app as create_twin
from twinbill_twin.keys import POOL
from twinbill_twin.settings import TwinSettings

START = datetime(2024, 2, 29, 16, tzinfo=UTC)  # 2024-03-01 00:00 Asia/Shanghai
END = datetime(2024, 3, 31, 16, tzinfo=UTC)


@pytest.fixture
async def twin(pg_dsn: str, amqp_url: str, bus_namespace: str) -> AsyncIterator[TestClient[Any, Any]]:
    """The real twin app in a schema of its own, consuming telemetry in the test's namespace."""
    settings = TwinSettings(pg_dsn=pg_dsn, amqp_url=amqp_url, schema_name=f"e2eb_{uuid.uuid4().hex[:8]}",
                            bus_namespace=bus_namespace, pg_pool_max=4)
    client: TestClient[Any, Any] = TestClient(TestServer(create_twin(settings)), headers=as_service("twin"))
    await client.start_server()
    yield client
    await client.close()


async def make_registry(pool: asyncpg.Pool) -> tuple[int, str, dict[str, int]]:
    """A project with a flat's address and residents, and three electricity meters."""
    tag = uuid.uuid4().hex[:8]
    async with pool.acquire() as conn, conn.transaction():
        project = await conn.fetchval("INSERT INTO projects (name, timezone) VALUES ($1, "
                                      "'Asia/Shanghai') RETURNING id", f"e2e-{tag}")
        site = await conn.fetchval("INSERT INTO sites (project_id, name) VALUES ($1, 'Test Garden') "
                                   "RETURNING id", project)
        building = await conn.fetchval("INSERT INTO buildings (project_id, site_id, name) VALUES "
                                       "($1, $2, 'Block 3') RETURNING id", project, site)
        storey = await conn.fetchval("INSERT INTO storeys (project_id, building_id, name) VALUES "
                                     "($1, $2, 'F2') RETURNING id", project, building)
        space = await conn.fetchval("INSERT INTO spaces (project_id, storey_id, name) VALUES "
                                    "($1, $2, 'Room 201') RETURNING id", project, storey)
        await conn.execute("INSERT INTO residents (project_id, space_id, name, cellphone) VALUES "
                           "($1, $2, 'Sam Sample', '10000000042')", project, space)
        product = await conn.fetchval("INSERT INTO products (product_key, name, billing_register) "
                                      "VALUES ($1, 'meter', 'total') RETURNING id", f"pk{tag}")
        await conn.execute("INSERT INTO measurepoints (product_id, identifier, data_type, position) "
                           "VALUES ($1, 'total', $2::jsonb, 0)", product, json.dumps({"type": "double"}))
        template = await conn.fetchval("INSERT INTO templates (product_id, name) VALUES ($1, 'meter') "
                                       "RETURNING id", product)
        devices: dict[str, int] = {}
        for key, multiplier, register_max in (("plain", 1, None), ("ct", 40, None), ("wrap", 1, 10000)):
            device = await conn.fetchval(
                "INSERT INTO devices (product_id, device_key, name, secret, project_id, device_type, "
                "multiplier, register_max, space_id) VALUES ($1, $2, $2, 's', $3, 2, $4, $5, $6) "
                "RETURNING id", product, f"{key}-{tag}", project, multiplier, register_max, space)
            instance = await conn.fetchval("INSERT INTO instances (template_id, device_id, name) "
                                           "VALUES ($1, $2, $3) RETURNING id", template, device, key)
            await conn.execute(
                "INSERT INTO attributes (instance_id, name, displayname, attrtype, datatype, "
                "measurepoint, metric, value) VALUES ($1, 'total', 'total', 'Stream', 'Number', "
                "'total', 'total', '')", instance)
            devices[key] = device
    return project, f"pk{tag}", devices


async def report(bus: Bus, product_key: str, device_key: str, points: list[tuple[datetime, str]]) -> None:
    """Publish readings as the ingest gateway does: numbers keep their decimal text."""
    now = datetime.now(UTC)
    encoded = ",".join(
        f'{{"product_key":"{product_key}","device_key":"{device_key}","time":{to_epoch_ms(at)},'
        f'"measurepoints":{{"total":{value}}}}}' for at, value in points)
    body = (f'{{"schema_version":1,"message_id":"{uuid.uuid4().hex}","produced_at":"{now.isoformat()}",'
            f'"product_key":"{product_key}","device_key":"{device_key}","request_id":"1",'
            f'"method":"thing.measurepoint.resume.batch","received_at":{to_epoch_ms(now)},'
            f'"points":[{encoded}]}}')
    await bus.publish_raw(TELEMETRY, telemetry_key(product_key, device_key), body.encode(),
                          message_id=uuid.uuid4().hex, headers={"type": "MeasurementsAccepted"})


async def wait_for(check: Any, *, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll until `check()` is truthy, or fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := await check()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return result


async def test_run_bills_real_samples_from_the_twin(
    twin: TestClient[Any, Any], mongo_url: str, mongo_db_name: str, amqp_url: str, bus_namespace: str
) -> None:
    """Exact bills from samples stored by the real twin, with its address and residents."""
    project, product_key, devices = await make_registry(twin.app[POOL])
    keys = {name: f"{name}-{product_key[2:]}" for name in devices}
    bus = Bus(amqp_url, namespace=bus_namespace)
    await bus.connect()
    hour = timedelta(hours=1)
    await report(bus, product_key, keys["plain"], [(START - hour, "1000.10"), (START + hour, "1001"),
                                                   (END - hour, "1234.567"), (END + hour, "2000")])
    await report(bus, product_key, keys["ct"], [(START, "10.125"), (END, "10.250")])
    await report(bus, product_key, keys["wrap"], [(START - hour, "9990.5"), (END - hour, "20.25")])
    ids = sorted(devices.values())

    async def stored() -> bool:
        response = await twin.post("/internal/v1/readings/last",
                                   json={"device_ids": ids, "at": to_epoch_ms(END)})
        return len((await response.json())["readings"]) == 3
    await wait_for(stored, what="the twin to store the samples")

    settings = BillingSettings(mongo_url=mongo_url, mongo_db=mongo_db_name, amqp_url=amqp_url,
                               bus_namespace=bus_namespace, twin_url=str(twin.make_url("")).rstrip("/"),
                               http_port=free_port())
    runner = web.AppRunner(create_billing(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.http_port).start()
    base = f"http://127.0.0.1:{settings.http_port}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[mongo_db_name]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/api/v1/tariffs/", json={
                    "project_id": project, "device_type": 2, "kind": "tiered",
                    "effective_from": "2000-01-01T00:00:00Z",
                    "blocks": [{"up_to": "100", "price": "0.50"}, {"up_to": None, "price": "0.80"}]}
                    ) as response:
                assert response.status == 201, await response.text()
            await bus.publish(BILLING, "run.requested", RunBilling(
                run_id="e2e:1", project_id=project, device_type=2, task_key="e2e",
                period_start=START, period_end=END, fire_time=END))

            async def finished() -> dict[str, Any] | None:
                run = await db.runs.find_one({"_id": "e2e:1"})
                return run if run and run.get("status") == "finished" else None
            run = await wait_for(finished, what="the run to finish")
            bills = {b["device_key"]: b for b in await db.bills.find({"run_id": "e2e:1"}).to_list()}
            plain, ct, wrap = bills[keys["plain"]], bills[keys["ct"]], bills[keys["wrap"]]
            # 1000.10 -> 1234.567: 234.467 = 100 x 0.50 + 134.467 x 0.80 = 157.5736 -> 157.57
            assert (plain["opening_reading"], plain["closing_reading"]) == ("1000.10", "1234.567")
            assert (plain["consumption"], plain["charge"]) == ("234.467", "157.57")
            # 10.125 -> 10.250 x 40 = 5.000 at 0.50
            assert (ct["consumption"], ct["charge"]) == ("5.000", "2.50")
            # 9990.5 -> 20.25 past 10000: 29.75 at 0.50 = 14.875 -> 14.88
            assert wrap["rolled_over"] and (wrap["consumption"], wrap["charge"]) == ("29.75", "14.88")
            assert plain["house_address"] == ["Test Garden", "Block 3", "F2", "", "Room 201"]
            assert plain["residents"] == [{"name": "Sam Sample", "cellphone": "10000000042"}]
            assert run["summary"]["billed"] == 3 and run["summary"]["devices_expected"] == 3
            async with http.get(f"{base}/api/v1/scheduler/history/time/", params={
                    "project_id": project, "device_type": "0", "device_id": keys["plain"],
                    "start_date": "2024-4-1", "end_date": "2024-4-1"}) as response:
                body = await response.json()
            assert body["meta"] == {"code": 0, "message": "success"}
            [item] = body["data"]
            assert item["previous_reading_data"] == "1000.10" and item["reading_data"] == "1234.57"
            assert (item["from_time"], item["to_time"]) == ("2024-03-01T00:00:00", "2024-04-01T00:00:00")
            assert item["house_address"] == plain["house_address"] and item["device_type"] == 0
    finally:
        await client.close()
        await runner.cleanup()
        await bus.close()
