"""Billing across meter lifecycles on the real RabbitMQ and MongoDB: a new meter's first bill runs
from its installation reading, an exchange bills both segments (each with its own multiplier and
register), and a final reading below the last billed reading is an exception naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from twinbill_common.topology import BILLING

from .conftest import Billing
from .fake_twin import TwinData, meter
from .test_billing_run import P_END, P_START, PROJECT, create_tariff, finished_run, ms, run_message

D = Decimal


def event(kind: str, at: datetime, *, before: str | None = None, after: str | None = None,
          multiplier: str = "1", multiplier_before: str = "1", register_max: str | None = "100000",
          register_max_before: str | None = "100000") -> dict[str, Any]:
    """A lifecycle event in the twin's billing contract."""
    return {"id": 1, "kind": kind, "at": at.isoformat(), "reading_before": before, "reading_after": after,
            "multiplier": multiplier, "multiplier_before": multiplier_before,
            "register_max": register_max, "register_max_before": register_max_before}


async def test_installation_exchange_and_a_bad_final_reading(billing: Billing, twin: tuple[TwinData, str]) -> None:
    """Meter 1 installed mid-period at 5.5 (billed from there, not skipped); meter 2 exchanged
    mid-period for a CT meter (x40, 6 digits); meter 3's exchange final reading is below its
    last billed reading (an exception naming final_reading, no bill)."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    mid = P_START + timedelta(days=12)
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "0.55", "effective_from": "2000-01-01T00:00:00Z"})
    data.add_device(PROJECT, {**meter(1), "lifecycle": [event("installation", mid, after="5.5")]})
    data.add_reading(1, ms(mid + timedelta(hours=1)), "5.5")
    data.add_reading(1, ms(P_END - timedelta(hours=1)), "30.25")

    data.add_device(PROJECT, {**meter(2, multiplier="40", register_max="1000000"), "lifecycle": [
        event("exchange", mid, before="99990", after="0", multiplier="40", register_max="1000000")]})
    data.add_reading(2, ms(P_START - timedelta(hours=1)), "99950")
    data.add_reading(2, ms(mid - timedelta(hours=1)), "99980")  # old meter
    data.add_reading(2, ms(P_END - timedelta(hours=1)), "2.5")  # new meter

    data.add_device(PROJECT, {**meter(3), "lifecycle": [event("exchange", mid, before="40", after="0")]})
    data.add_reading(3, ms(P_START - timedelta(hours=1)), "50")
    data.add_reading(3, ms(P_END - timedelta(hours=1)), "3")

    await billing.bus.publish(BILLING, "run.requested", run_message("life:1"))
    run = await finished_run(billing, "life:1")
    bills = {b["device_id"]: b for b in await billing.db.bills.find({"run_id": "life:1"}).to_list()}
    first = bills[1]
    assert first["from_time"] == mid and first["opening_source"] == "installation"
    assert first["opening_reading"] == "5.5" and D(first["consumption"]) == D("24.75")

    exchanged = bills[2]
    assert [(s["opening_reading"], s["closing_reading"], s["multiplier"]) for s in exchanged["segments"]] == [
        ("99950", "99990", "1"), ("0", "2.5", "40")]
    assert D(exchanged["consumption"]) == D(40) + D("2.5") * 40 and "exchange" in exchanged["flags"]
    assert exchanged["closing_reading"] == "2.5"

    assert 3 not in bills
    [problem] = run["summary"]["exception_devices"]
    assert problem["device_id"] == 3 and "final_reading 40" in problem["reason"]
    assert "below the last billed reading 50" in problem["reason"]

    # The next period opens at the new meter's reading, and the chain carries on.
    nxt = P_END + timedelta(days=30)
    data.add_reading(2, ms(nxt - timedelta(hours=1)), "10")
    await billing.bus.publish(BILLING, "run.requested", run_message("life:2", start=P_END, end=nxt))
    await finished_run(billing, "life:2")
    second = await billing.db.bills.find_one({"run_id": "life:2", "device_id": 2})
    assert second["opening_reading"] == "2.5" and D(second["consumption"]) == D("7.5") * 40


async def test_removal_ends_the_chain(billing: Billing, twin: tuple[TwinData, str]) -> None:
    """A meter removed mid-period is billed to its removal reading and never again."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    gone = P_START + timedelta(days=5)
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "1", "effective_from": "2000-01-01T00:00:00Z"})
    data.add_device(PROJECT, {**meter(1), "lifecycle": [event("removal", gone, before="17")]})
    data.add_reading(1, ms(P_START - timedelta(hours=1)), "10")
    await billing.bus.publish(BILLING, "run.requested", run_message("rm:1"))
    await finished_run(billing, "rm:1")
    bill = await billing.db.bills.find_one({"run_id": "rm:1", "device_id": 1})
    assert bill["to_time"] == gone and bill["closing_reading"] == "17" and bill["consumption"] == "7"
    later = P_END + timedelta(days=30)
    await billing.bus.publish(BILLING, "run.requested", run_message("rm:2", start=P_END, end=later))
    run = await finished_run(billing, "rm:2")
    assert run["summary"]["skipped"] == 1 and "removed" in run["summary"]["skipped_devices"][0]["reason"]
