"""A billing run over simulated meters on the real RabbitMQ and MongoDB: exact bills, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from bson import ObjectId

from tests.servicetokens import as_service
from twinbill_billing.context import CONTEXT
from twinbill_billing.domain.periods import to_epoch_ms
from twinbill_common.schemas.billing import RunBilling
from twinbill_common.topology import BILLING

from .conftest import Billing, wait_for
from .fake_twin import TwinData, meter

D = Decimal
PROJECT = 42
P_START = datetime(2024, 2, 29, 16, tzinfo=UTC)   # 2024-03-01 00:00 Asia/Shanghai
P_END = datetime(2024, 3, 31, 16, tzinfo=UTC)     # 2024-04-01 00:00 Asia/Shanghai
FLAT_PRICE = D("0.55")


def ms(instant: datetime) -> int:
    return int(to_epoch_ms(instant))


def run_message(run_id: str, *, start: datetime = P_START, end: datetime = P_END,
                device_type: int = 2) -> RunBilling:
    return RunBilling(run_id=run_id, project_id=PROJECT, device_type=device_type, task_key="task1",
                      period_start=start, period_end=end, fire_time=end)


async def create_tariff(billing: Billing, body: dict[str, Any]) -> dict[str, Any]:
    async with billing.http.post(f"{billing.url}/api/v1/tariffs/", json=body) as response:
        assert response.status == 201, await response.text()
        result: dict[str, Any] = await response.json()
        return result


async def finished_run(billing: Billing, run_id: str, timeout: float = 60) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        doc = await billing.db.runs.find_one({"_id": run_id})
        return doc if doc and doc.get("status") == "finished" else None
    result: dict[str, Any] = await wait_for(check, timeout=timeout, what=f"run {run_id} to finish")
    return result


def simulate(twin: TwinData) -> dict[int, tuple[str, str]]:
    """20 electricity meters: 15 normal, plus rollover, backwards, silent, new, multiplied ones.

    Returns device id -> (expected opening, expected closing) for the ones that must be billed.
    """
    twin.timezones[PROJECT] = "Asia/Shanghai"
    expected: dict[int, tuple[str, str]] = {}
    for i in range(1, 16):
        twin.add_device(PROJECT, meter(i))
        opening, closing = D("100.5") + i, D("100.5") + i + D("12.25") * i
        twin.add_reading(i, ms(P_START - timedelta(hours=3)), str(opening))
        twin.add_reading(i, ms(P_START + timedelta(days=3)), str(opening + 1))
        twin.add_reading(i, ms(P_END - timedelta(minutes=5)), str(closing))
        twin.add_reading(i, ms(P_END + timedelta(minutes=5)), str(closing + 100))  # after: ignored
        expected[i] = (str(opening), str(closing))
    twin.add_device(PROJECT, meter(16))  # rollover: 99990 -> 20 is 30 units
    twin.add_reading(16, ms(P_START), "99990")
    twin.add_reading(16, ms(P_END), "20")
    expected[16] = ("99990", "20")
    twin.add_device(PROJECT, meter(17))  # backwards: an exception, no bill
    twin.add_reading(17, ms(P_START - timedelta(days=1)), "500.0")
    twin.add_reading(17, ms(P_END - timedelta(days=1)), "499.9")
    twin.add_device(PROJECT, meter(18))  # silent in the period: skipped
    twin.add_reading(18, ms(P_START - timedelta(days=10)), "42")
    twin.add_device(PROJECT, meter(19))  # new meter, first reading inside the period: skipped
    twin.add_reading(19, ms(P_START + timedelta(days=10)), "1")
    twin.add_device(PROJECT, meter(20, multiplier="40"))  # CT meter: multiplier 40
    twin.add_reading(20, ms(P_START - timedelta(days=1)), "10.125")
    twin.add_reading(20, ms(P_END), "10.250")
    expected[20] = ("10.125", "10.250")
    twin.add_device(PROJECT, meter(21, device_type=1, kind="tap"))  # other type: not in this run
    twin.add_reading(21, ms(P_END), "5")
    return expected


def expected_charge(opening: str, closing: str, *, multiplier: str = "1") -> tuple[str, str]:
    delta = D(closing) - D(opening)
    if delta < 0:
        delta += D("100000")
    consumption = delta * D(multiplier)
    return str(consumption), str((consumption * FLAT_PRICE).quantize(D("0.01"), ROUND_HALF_UP))


async def test_run_bills_every_meter_exactly(billing: Billing, twin: tuple[TwinData, str]) -> None:
    """Exact readings, consumption and charge per meter; skipped, exceptions and summary correct."""
    data, _ = twin
    expected = simulate(data)
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "0.55", "effective_from": "2000-01-01T00:00:00Z"})
    await billing.bus.publish(BILLING, "run.requested", run_message("task1:1711900800"))
    run = await finished_run(billing, "task1:1711900800")
    bills = {b["device_id"]: b for b in await billing.db.bills.find({"run_id": "task1:1711900800"}).to_list()}
    assert set(bills) == set(expected)
    for device_id, (opening, closing) in expected.items():
        bill = bills[device_id]
        multiplier = "40" if device_id == 20 else "1"
        consumption, charge = expected_charge(opening, closing, multiplier=multiplier)
        assert (bill["opening_reading"], bill["closing_reading"]) == (opening, closing), device_id
        assert D(bill["consumption"]) == D(consumption), device_id
        assert bill["charge"] == charge and bill["charge_minor"] == int(D(charge) * 100), device_id
        assert bill["opening_source"] == "period_start_reading"
        assert bill["from_time"] == P_START and bill["to_time"] == P_END
        assert bill["house_address"][4] == f"Room {device_id}"
        assert bill["residents"] == [{"name": "Alex Example", "cellphone": "10000000000"}]
        assert bill["tariff"][0]["unit_price"] == "0.55"
    assert bills[16]["rolled_over"] is True and bills[16]["consumption"] == "30"
    assert bills[20]["consumption"] == "5.000" and bills[20]["charge"] == "2.75"
    summary = run["summary"]
    assert summary["devices_expected"] == 20
    assert summary["billed"] == 17 and summary["newly_billed"] == 17
    assert [e["device_id"] for e in summary["exception_devices"]] == [17]
    assert sorted(e["device_id"] for e in summary["skipped_devices"]) == [18, 19]
    assert summary["failed"] == 0 and summary["jobs_done"] == summary["jobs_total"] == 3
    async with billing.http.get(f"{billing.url}/internal/v1/runs/task1:1711900800",
                                headers=as_service("billing")) as response:
        live = await response.json()
    assert live["summary"]["billed"] == 17 and live["status"] == "finished"
    async with billing.http.get(f"{billing.url}/metrics") as response:
        text = await response.text()
    # device 17's exception makes this a run a person must look at (TwinbillBillingRunWithFailures)
    assert 'billing_runs_finished_total{outcome="with_failures"} 1.0' in text

    # The next period opens at this bill's closing reading.
    nxt_end = P_END + timedelta(days=30)
    data.add_reading(1, ms(nxt_end - timedelta(days=1)), str(D(expected[1][1]) + 7))
    await billing.bus.publish(BILLING, "run.requested", run_message("task1:next", start=P_END, end=nxt_end))
    await finished_run(billing, "task1:next")
    second = await billing.db.bills.find_one({"run_id": "task1:next", "device_id": 1})
    assert second["opening_reading"] == expected[1][1] and second["opening_source"] == "previous_bill"
    assert second["consumption"] == "7.00"


async def test_same_run_twice_makes_no_duplicate(billing: Billing, twin: tuple[TwinData, str]) -> None:
    """RunBilling delivered twice (and its jobs re-run): one bill per meter, summary unchanged."""
    data, _ = twin
    expected = simulate(data)
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "0.55", "effective_from": "2000-01-01T00:00:00Z"})
    message = run_message("task1:twice")
    await billing.bus.publish(BILLING, "run.requested", message)
    await billing.bus.publish(BILLING, "run.requested", message)
    first = await finished_run(billing, "task1:twice")
    # Force a re-split as if the first delivery had crashed before marking it published, with a
    # meter added to the registry meanwhile: saved chunks are kept, only the new meter is added.
    await billing.db.runs.update_one({"_id": "task1:twice"},
                                     {"$set": {"jobs_published": False, "status": "running"}})
    data.add_device(PROJECT, meter(22))
    data.add_reading(22, ms(P_START), "1")
    data.add_reading(22, ms(P_END), "3")
    await billing.bus.publish(BILLING, "run.requested", message)

    async def re_finished() -> bool:
        doc = await billing.db.runs.find_one({"_id": "task1:twice"})
        return bool(doc and doc.get("status") == "finished" and doc.get("jobs_published"))
    await wait_for(re_finished, what="re-split run to finish")
    assert first["summary"]["billed"] == len(expected)
    assert await billing.db.bills.count_documents({"project_id": PROJECT}) == len(expected) + 1
    again = await billing.db.runs.find_one({"_id": "task1:twice"})
    assert again["summary"]["billed"] == len(expected) + 1
    assert again["summary"]["devices_expected"] == 21 and again["summary"]["jobs_total"] == 4
    assert await billing.db.run_jobs.count_documents({"run_id": "task1:twice"}) == 4


async def test_chunk_whose_insert_partly_hits_taken_chain_positions(
        billing: Billing, twin: tuple[TwinData, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker (or an attempt that crashed mid-`insert_many` on a real MongoDB) took the
    chain positions of two meters of a chunk between its ledger read and its `insert_many`: the
    unordered insert stores the chunk's other bills, the two duplicates are refused by the unique
    chain key, re-read and counted already billed. One bill per meter and period, none lost."""
    data, _ = twin
    expected = simulate(data)
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "0.55", "effective_from": "2000-01-01T00:00:00Z"})
    store = billing.app[CONTEXT].store
    original = store.insert_bills
    taken = {2, 5}  # both in the first chunk (devices 1-7)
    calls: list[tuple[int, set[int]]] = []
    rivals: list[dict[str, Any]] = []

    async def rival_first(docs: list[dict[str, Any]]) -> tuple[int, set[int]]:
        if not rivals and any(doc["device_id"] in taken for doc in docs):
            rivals.extend({**doc, "_id": ObjectId(), "job_id": "rival", "run_id": "rival"}
                          for doc in docs if doc["device_id"] in taken)
            await billing.db.bills.insert_many(rivals)
        result = await original(docs)
        calls.append(result)
        return result

    monkeypatch.setattr(store, "insert_bills", rival_first)
    await billing.bus.publish(BILLING, "run.requested", run_message("task1:rival"))
    run = await finished_run(billing, "task1:rival")
    first_chunk = [c for c in calls if c[1]]
    assert len(first_chunk) == 1 and first_chunk[0][0] == 5 and len(first_chunk[0][1]) == 2
    bills = await billing.db.bills.find({"kind": "bill"}).to_list()
    per_device: dict[int, list[dict[str, Any]]] = {}
    for bill in bills:
        per_device.setdefault(bill["device_id"], []).append(bill)
    assert set(per_device) == set(expected)
    assert all(len(found) == 1 for found in per_device.values()), per_device
    assert {d for d, (b,) in per_device.items() if b["job_id"] == "rival"} == taken
    for device_id, (opening, closing) in expected.items():
        (bill,) = per_device[device_id]
        assert (bill["opening_reading"], bill["closing_reading"]) == (opening, closing), device_id
    outcome = await billing.db.run_jobs.find_one({"_id": "task1:rival:0"})
    assert (outcome["billed"], outcome["already_billed"]) == (5, 2)
    assert run["summary"]["billed"] == 17 and run["summary"]["newly_billed"] == 15
