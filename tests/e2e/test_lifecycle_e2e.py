"""End to end: a meter exchange entered in the real twin (its final reading checked against the
stored samples) is billed by the billing worker as two segments, the new meter with its own
multiplier, and a new meter's first bill runs from its installation reading."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient
from pymongo import AsyncMongoClient

from twinbill_billing.app import create_app as create_billing
from twinbill_billing.domain.periods import to_epoch_ms
from twinbill_billing.settings import BillingSettings
from twinbill_common.bus import Bus
from twinbill_common.mongo import free_port
from twinbill_common.schemas.billing import RunBilling
from twinbill_common.topology import BILLING
from twinbill_twin.keys import POOL

from .test_billing_e2e import END, START, make_registry, report, twin, wait_for

__all__ = ["twin"]  # the fixture, imported for this module's tests


async def test_exchange_and_installation_through_the_twin(
    twin: TestClient[Any, Any], mongo_url: str, mongo_db_name: str, amqp_url: str, bus_namespace: str
) -> None:
    """The old meter's final reading below its last stored sample is refused (422 naming it); the
    exchange with a x40 meter is recorded; the bill adds 99990 - 99950 at x1 and 0 -> 2.5 at x40;
    the `plain` meter installed mid-period at 7 is billed from there."""
    project, product_key, devices = await make_registry(twin.app[POOL])
    keys = {name: f"{name}-{product_key[2:]}" for name in devices}
    bus = Bus(amqp_url, namespace=bus_namespace)
    await bus.connect()
    mid = START + timedelta(days=10)
    hour = timedelta(hours=1)
    await report(bus, product_key, keys["wrap"], [(START - hour, "9950"), (mid - hour, "9980")])
    await report(bus, product_key, keys["plain"], [(mid + hour, "7.5"), (END - hour, "19")])

    async def stored() -> bool:
        response = await twin.post("/internal/v1/readings/last",
                                   json={"device_ids": [devices["wrap"], devices["plain"]], "at": to_epoch_ms(END)})
        return len((await response.json())["readings"]) == 2
    await wait_for(stored, what="the twin to store the samples")

    exchange = {"kind": "exchange", "at": mid.isoformat(), "final_reading": "9970", "initial_reading": "0",
                "multiplier": "40", "register_digits": 6}
    response = await twin.post(f"/api/v1/devices/{devices['wrap']}/lifecycle/", json=exchange)
    assert response.status == 422
    assert "below the last reading 9980" in (await response.json())["errors"]["json"]["final_reading"][0]
    response = await twin.post(f"/api/v1/devices/{devices['wrap']}/lifecycle/",
                               json={**exchange, "final_reading": "9990"})
    assert response.status == 201, await response.text()
    response = await twin.post(f"/api/v1/devices/{devices['plain']}/lifecycle/", json={
        "kind": "installation", "at": mid.isoformat(), "initial_reading": "7"})
    assert response.status == 201, await response.text()
    await report(bus, product_key, keys["wrap"], [(END - hour, "2.5")])

    async def new_meter_stored() -> bool:
        response = await twin.post("/internal/v1/readings/last",
                                   json={"device_ids": [devices["wrap"]], "at": to_epoch_ms(END)})
        return bool((await response.json())["readings"][0]["value"] == "2.5")
    await wait_for(new_meter_stored, what="the new meter's reading")

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
        async with aiohttp.ClientSession() as http, http.post(f"{base}/api/v1/tariffs/", json={
                "project_id": project, "device_type": 2, "kind": "flat", "unit_price": "1",
                "effective_from": "2000-01-01T00:00:00Z"}) as response:
            assert response.status == 201, await response.text()
        await bus.publish(BILLING, "run.requested", RunBilling(
            run_id="life:1", project_id=project, device_type=2, task_key="life",
            period_start=START, period_end=END, fire_time=END))

        async def finished() -> dict[str, Any] | None:
            run = await db.runs.find_one({"_id": "life:1"})
            return run if run and run.get("status") == "finished" else None
        await wait_for(finished, what="the run to finish")
        bills = {b["device_key"]: b for b in await db.bills.find({"run_id": "life:1"}).to_list()}
        wrap, plain = bills[keys["wrap"]], bills[keys["plain"]]
        assert [(s["opening_reading"], s["closing_reading"], s["multiplier"]) for s in wrap["segments"]] == [
            ("9950", "9990", "1"), ("0", "2.5", "40")]
        assert Decimal(wrap["consumption"]) == 40 + Decimal("2.5") * 40
        assert plain["opening_source"] == "installation" and plain["from_time"] == mid
        assert Decimal(plain["consumption"]) == 12
    finally:
        await client.close()
        await runner.cleanup()
        await bus.close()
