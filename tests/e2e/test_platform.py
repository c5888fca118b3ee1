"""The whole platform end to end, as a user sees it: five service processes, real protocols.

The five services run as `python -m twinbill_<name>` processes (what `make run` does; fixture
`platform` in conftest.py), each with its own PostgreSQL schema or MongoDB database and this
test's bus namespace. Through the API gateway only, the test creates a project with a flat and
its residents, a water-meter product, a gateway product, a gateway with two water meters, a
tiered tariff and a seed-000 task firing every minute. As the gateway device over real MQTT it
logs the meters in (combine.login.batch, signed) and reports readings around the first fire's
period (resume/batch). Then it waits for the scheduler to fire and the billing worker to bill,
and checks the bills (computed here independently with Decimal), the seed-000 history endpoints
and the twin's seed-002 view of the readings, all through the gateway.

MQTT goes through a private Mosquitto started with the project's deploy/mosquitto configuration
(device auth and topic ACLs), not the shared broker on 1883: any other ingest gateway subscribed
there (a `make run`, say) answers every request too, with its own registry's verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import aiomqtt
import pytest
from pymongo import AsyncMongoClient

from tests.e2e.clients import Api, GatewayDevice, epoch_ms, poll
from tests.e2e.conftest import MQTT_HOST, ZONE, Platform
from twinbill_devstack.broker import DevBroker

# Tiered water tariff: the first 10 m3 at 3.50, the rest at 4.55.
BLOCKS = ((Decimal("10"), Decimal("3.50")), (None, Decimal("4.55")))
# Readings must be stored before the fire: the fire chosen is at least this far away.
LEAD = timedelta(seconds=8)
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
NAIVE_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
CENT = Decimal("0.01")
# The dead-letter queues each service watches (twinbill_dead_letter_messages{queue}).
DEAD_LETTER_GAUGES = {
    "twin": ("twin.telemetry.dlq",),
    "ingest": ("ingest.commands.dlq",),
    "scheduler": ("scheduler.registry.dlq",),
    "billing": ("billing.runs.dlq", "billing.jobs.dlq", "billing.jobs.parked"),
}


def charge_of(consumption: Decimal) -> Decimal:
    """The graduated tariff over a consumption, rounded once half-up to cents."""
    total, lower = Decimal(0), Decimal(0)
    for up_to, price in BLOCKS:
        upper = consumption if up_to is None else min(consumption, up_to)
        if upper > lower:
            total += (upper - lower) * price
            lower = upper
    return total.quantize(CENT, rounding=ROUND_HALF_UP)


def local(at: datetime) -> str:
    """An instant as seed 000 shows it: naive ISO in the project's zone."""
    return at.astimezone(ZoneInfo(ZONE)).replace(tzinfo=None).isoformat(timespec="seconds")


@dataclass
class Registry:
    """What the test created through the gateway."""

    project_id: int
    gateway: dict[str, Any]
    meters: list[dict[str, Any]]
    residents: list[dict[str, str]]


async def create_registry(api: Api, tag: str) -> Registry:
    """A project with a flat (address, two residents), the products, a gateway with two water
    meters in the flat (multipliers 1 and 2), and the tiered water tariff: all through the gateway."""
    project = await api.create("projects", {"name": f"e2e-{tag}", "timezone": ZONE, "description": "e2e"})
    pid = project["id"]
    site = await api.create("sites", {"project_id": pid, "name": "E2E Garden"})
    building = await api.create("buildings", {"site_id": site["id"], "name": "Block 7"})
    storey = await api.create("storeys", {"building_id": building["id"], "name": "F3"})
    zone = await api.create("zones", {"project_id": pid, "name": "East"})
    space = await api.create("spaces", {"storey_id": storey["id"], "name": "Room 301", "zone_id": zone["id"]})
    residents = [{"name": "Pat Placeholder", "cellphone": "10000000301"},
                 {"name": "Kim Placeholder", "cellphone": "10000000302"}]
    for resident in residents:
        await api.create("residents", {"space_id": space["id"], **resident})
    meter_product = await api.create("products", {
        "product_key": f"e2ewm{tag}", "name": "e2e water meter", "billing_register": "total",
        "measurepoints": [{"identifier": "total", "name": "total", "unit": "m3", "data_type": {"type": "double"}}]})
    gateway_product = await api.create("products", {
        "product_key": f"e2egw{tag}", "name": "e2e gateway", "is_gateway": True, "measurepoints": []})
    gateway = await api.create("devices", {
        "product_key": gateway_product["product_key"], "device_key": f"gw-{tag}", "name": f"gw-{tag}",
        "project_id": pid, "secret": uuid.uuid4().hex})
    meters = [await api.create("devices", {
        "product_key": meter_product["product_key"], "device_key": f"wm{n}-{tag}", "name": f"wm{n}-{tag}",
        "project_id": pid, "secret": uuid.uuid4().hex, "device_type": 1, "water_meter_kind": "tap",
        "gateway_id": gateway["id"], "space_id": space["id"], "multiplier": multiplier})
        for n, multiplier in ((1, "1"), (2, "2"))]
    await api.create("tariffs", {
        "project_id": pid, "device_type": 1, "name": "e2e water", "kind": "tiered",
        "blocks": [{"up_to": None if up_to is None else str(up_to), "price": str(price)} for up_to, price in BLOCKS],
        "effective_from": "2000-01-01T00:00:00Z"})
    return Registry(pid, gateway, meters, residents)


Readings = dict[str, list[tuple[datetime, str]]]


async def report_over_mqtt(broker: DevBroker, registry: Registry, tag: str) -> tuple[datetime, Readings]:
    """As the gateway device: log the meters in, then report readings around the next fire F (a
    minute boundary at least LEAD away, period (F - 1 min, F]) in two resume/batch requests.
    Returns F and the readings sent (device key -> [(device time, value text)])."""
    loop = asyncio.get_running_loop()
    gateway = registry.gateway
    # The broker authenticates the gateway as {pk}/{dk} with its secret (added, then SIGHUP).
    username = f"{gateway['product_key']}/{gateway['device_key']}"
    await asyncio.to_thread(broker.add_users, {username: gateway["secret"]})

    def mqtt_client() -> aiomqtt.Client:
        return aiomqtt.Client(MQTT_HOST, broker.port, username=username, password=gateway["secret"],
                              identifier=f"e2e-{tag}", protocol=aiomqtt.ProtocolVersion.V5)

    async def accepted() -> bool:  # the broker reloads its password file asynchronously
        try:
            async with mqtt_client():
                return True
        except aiomqtt.MqttError:
            return False
    await poll(accepted, until=loop.time() + 10, what="the broker to accept the gateway's credentials")

    async with mqtt_client() as client:
        device = GatewayDevice(client, gateway["product_key"], gateway["device_key"])
        await client.subscribe(f"/sys/{device.pk}/{device.dk}/#", qos=1)
        await client.subscribe(f"/ext/session/{device.pk}/{device.dk}/#", qos=1)
        reader = asyncio.create_task(device.read())
        try:
            # The ingest cache learns the new devices from registry events: retry until it knows them.
            async def logged_in() -> bool:
                reply = await device.login_batch(registry.meters)
                return bool(reply["code"] == 200)
            await poll(logged_in, until=loop.time() + 20, what="the sub-devices' login to succeed")
            logged_in_at = len(device.replies)

            fire = (datetime.now(UTC) + LEAD).replace(second=0, microsecond=0) + timedelta(minutes=1)
            second = timedelta(seconds=1)
            wm1, wm2 = registry.meters
            readings = {
                wm1["device_key"]: [(fire - 90 * second, "1000.25"),  # opening: before the period
                                    (fire - 45 * second, "1005.50"),
                                    (fire - 5 * second, "1012.62")],  # closing: the last inside
                wm2["device_key"]: [(fire - 75 * second, "20.00"),
                                    (fire - 1 * second, "23.51")],
            }
            by_key = {m["device_key"]: m for m in registry.meters}
            points = [(by_key[k], at, v) for k, series in readings.items() for at, v in series]
            start = fire - timedelta(minutes=1)
            for batch in ([p for p in points if p[1] <= start], [p for p in points if p[1] > start]):
                reply = await device.resume_batch(batch)
                assert reply["code"] == 200, reply
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    # Every reply since the login: exactly the two reports', both 200 (another ingest answering on
    # the same broker would show up here as extra replies).
    assert [reply["code"] for _, reply in device.replies[logged_in_at:]] == [200, 200], device.replies
    return fire, readings


def expected_bills(registry: Registry, readings: Readings, *, start: datetime, fire: datetime) -> dict[str, Any]:
    """The bills computed here: a first bill opens at the last reading at or before the period
    start and closes at the last at or before its end; consumption x multiplier; tiered charge."""
    expected: dict[str, dict[str, Decimal]] = {}
    for meter in registry.meters:
        series = readings[meter["device_key"]]
        opening = Decimal([v for at, v in series if at <= start][-1])
        closing = Decimal([v for at, v in series if at <= fire][-1])
        consumption = (closing - opening) * Decimal(meter["multiplier"])
        expected[meter["device_key"]] = {"opening": opening, "closing": closing, "consumption": consumption,
                                         "charge": charge_of(consumption)}
    return expected


@pytest.mark.timeout(200)
async def test_readings_over_mqtt_become_bills_through_the_gateway(
    platform: Platform, mongo_url: str, mongo_db_name: str
) -> None:
    """MQTT readings -> twin -> scheduled fire -> billing -> seed-000 history, via the gateway."""
    tag = uuid.uuid4().hex[:8]
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        api = Api(http, platform.url("gateway"))
        await api.login()
        registry = await create_registry(api, tag)
        pid = registry.project_id
        fire, readings = await report_over_mqtt(platform.broker, registry, tag)
        start = fire - timedelta(minutes=1)

        # The twin's seed-002 view: each meter's `total` attribute, every point stored before the fire.
        attributes: dict[str, int] = {}
        for meter in registry.meters:
            detail = await api.call("GET", f"/dt/open/v1/instance?ids={meter['instance_id']}")
            [instance] = detail["data"]
            [total] = [a for a in instance["attr"] if a["name"] == "total"]
            attributes[meter["device_key"]] = total["id"]
        first_ms = min(epoch_ms(at) for series in readings.values() for at, _ in series) - 1000

        async def count_points(key: str, *, end: int | None = None) -> int:
            query = f"start={first_ms}&downsample=0all-count" + (f"&end={end}" if end else "")
            body = await api.call("GET", f"/dt/open/v1/instance/attribute/{attributes[key]}?{query}")
            return sum(int(v) for series in body["data"]["value"] for v in series["dps"].values())

        async def all_stored() -> bool:
            counts = [await count_points(k, end=epoch_ms(fire) + 1000) for k in readings]
            return counts == [len(v) for v in readings.values()]
        await poll(all_stored, until=loop.time() + 15, what="the twin to store every reading")

        # The task (every minute, water meters), created before the fire chosen above.
        created = await api.call("POST", "/api/v1/scheduler/task/", json={
            "name": f"e2e-{tag}", "project_id": pid, "device_type": 1, "enabled": True, "description": "e2e",
            "crontab": {"month": "*", "day": "*", "hour": "*", "minute": "*"}})
        assert created["meta"] == {"code": 0, "message": "create crontab ok."}, created
        assert datetime.now(UTC) < fire - timedelta(seconds=0.5), (
            f"setup ran past the chosen fire {fire.isoformat()}: the task's first period would not be it")

        async def two_bills() -> dict[str, Any] | None:
            body = await api.call("GET", f"/api/v1/scheduler/history/?project_id={pid}&device_type=1")
            return body if body["data"]["count"] == 2 else None
        deadline = loop.time() + (fire - datetime.now(UTC)).total_seconds() + 30
        history = await poll(two_bills, until=deadline, what=f"two bills of the fire at {fire.isoformat()}")

        expected = expected_bills(registry, readings, start=start, fire=fire)
        wm1, wm2 = (m["device_key"] for m in registry.meters)
        assert expected[wm1]["charge"] == Decimal("45.78")  # 12.37: 10 x 3.50 + 2.37 x 4.55 = 45.7835
        assert expected[wm2]["charge"] == Decimal("24.57")  # 3.51 x 2 = 7.02 x 3.50

        assert history["meta"] == {"message": "info list", "code": 0}
        results = {item["device_id"]: item for item in history["data"]["results"]}
        assert set(results) == set(expected)
        for key, want in expected.items():
            item = results[key]
            assert OBJECT_ID.match(item["id"]), item
            assert item["device_type"] == 1
            assert item["charge"] == f"{want['charge']:.2f}"
            assert item["reading_data"] == f"{want['closing'].quantize(CENT, rounding=ROUND_HALF_UP)}"
            assert (item["from_time"], item["to_time"]) == (local(start), local(fire))
            assert NAIVE_ISO.match(item["created_at"]), item

        day = fire.astimezone(ZoneInfo(ZONE)).date()
        seed_day = f"{day.year}-{day.month}-{day.day}"
        by_time = await api.call("GET", f"/api/v1/scheduler/history/time/?project_id={pid}&device_type=1"
                                        f"&start_date={seed_day}&end_date={seed_day}")
        assert by_time["meta"] == {"code": 0, "message": "success"}
        items = {item["device_id"]: item for item in by_time["data"]}
        assert set(items) == set(expected)
        for key, want in expected.items():
            item = items[key]
            assert item["id"] == results[key]["id"]
            assert item["house_address"] == ["E2E Garden", "Block 7", "F3", "East", "Room 301"]
            assert item["residents"] == registry.residents
            assert item["device_type"] == 1
            assert item["previous_reading_data"] == f"{want['opening'].quantize(CENT, rounding=ROUND_HALF_UP)}"
            assert item["reading_data"] == results[key]["reading_data"]
            assert item["charge"] == results[key]["charge"]
            assert (item["from_time"], item["to_time"]) == (local(start), local(fire))

        # The twin: the latest reading is the register's current value; every point is stored once.
        for meter in registry.meters:
            key = meter["device_key"]
            detail = await api.call("GET", f"/dt/open/v1/instance?ids={meter['instance_id']}")
            [total] = [a for a in detail["data"][0]["attr"] if a["name"] == "total"]
            assert total["value"] == readings[key][-1][1]
            assert total["stime"] == epoch_ms(readings[key][-1][0])
            assert await count_points(key) == len(readings[key])

        # Nothing was dead-lettered, and each service says so for the queues it consumes.
        for name, queues in DEAD_LETTER_GAUGES.items():
            async with http.get(f"{platform.url(name)}/metrics") as response:
                text = await response.text()
            for queue in queues:
                assert f'twinbill_dead_letter_messages{{queue="{queue}"}} 0.0' in text, (name, queue)
            # every service counts its HTTP requests by route template, and its process
            assert 'twinbill_http_requests_total{method="GET",route="/readyz",status="200"}' in text, name
            assert "process_resident_memory_bytes" in text, name

    # Exact consumption and charge as billing stored them (seed 000's history does not show them).
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        bills = await mongo[mongo_db_name].bills.find({"project_id": pid}).to_list()
    finally:
        await mongo.close()
    assert len(bills) == 2
    for bill in bills:
        want = expected[bill["device_key"]]
        assert Decimal(bill["opening_reading"]) == want["opening"]
        assert Decimal(bill["closing_reading"]) == want["closing"]
        assert Decimal(bill["consumption"]) == want["consumption"]
        assert Decimal(bill["charge"]) == want["charge"]
        assert str(bill["_id"]) == results[bill["device_key"]]["id"]
