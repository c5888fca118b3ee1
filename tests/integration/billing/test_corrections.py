"""Void, credit note and re-bill on the real RabbitMQ and MongoDB: history lists both with their
links, the chain stays exact, and every change has an audit entry naming who and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from twinbill_common.topology import BILLING

from .conftest import Billing, wait_for
from .fake_twin import TwinData, meter
from .test_billing_run import P_END, P_START, PROJECT, create_tariff, finished_run, ms, run_message

D = Decimal


async def post(billing: Billing, path: str, body: Any = None, user: str | None = "alice@example.com"
               ) -> tuple[int, Any]:
    headers = {"X-Twinbill-User": user} if user else {}
    async with billing.http.post(billing.url + path, json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_void_issues_a_credit_note_and_the_period_is_billed_again(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """A wrong closing reading: the bill is voided with a reason (credit note, links, audit), the
    reading is corrected, the re-bill bills the period again from the previous closing; history
    shows bill, credit note and new bill; the net consumption is the true one."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "0.5", "effective_from": "2000-01-01T00:00:00Z"})
    data.add_device(PROJECT, meter(1, key="000090502121"))
    data.add_reading(1, ms(P_START - timedelta(hours=1)), "100")
    data.add_reading(1, ms(P_END - timedelta(hours=1)), "1100")  # mis-keyed: should be 110
    await billing.bus.publish(BILLING, "run.requested", run_message("v:1"))
    await finished_run(billing, "v:1")
    wrong = await billing.db.bills.find_one({"run_id": "v:1"})
    assert wrong["charge"] == "500.00"

    status, answer = await post(billing, f"/api/v1/bills/{wrong['_id']}/void", {})
    assert status == 422 and "reason" in answer["errors"]["json"], answer
    status, answer = await post(billing, f"/api/v1/bills/{wrong['_id']}/rebill")
    assert status == 409, answer  # not void yet
    status, answer = await post(billing, f"/api/v1/bills/{wrong['_id']}/void", {"reason": "meter mis-read"})
    assert status == 200, answer
    bill, note = answer["bill"], answer["credit_note"]
    assert bill["status"] == "void" and bill["credit_note_id"] == note["id"]
    assert bill["void"]["reason"] == "meter mis-read" and bill["void"]["by"] == "user:alice@example.com"
    assert note["kind"] == "credit_note" and note["credits_bill_id"] == str(wrong["_id"])
    assert note["charge"] == "-500.00" and note["consumption"] == "-1000" and note["charge_minor"] == -50000
    async with billing.http.get(f"{billing.url}/api/v1/bills/{note['id']}") as response:
        assert response.status == 200 and (await response.json())["project_id"] == PROJECT
    status, again = await post(billing, f"/api/v1/bills/{wrong['_id']}/void", {"reason": "twice"})
    assert status == 409 and "already void" in again["message"], again

    data.readings[1] = [(t, "110" if v == "1100" else v) for t, v in data.readings[1]]  # corrected
    status, answer = await post(billing, f"/api/v1/bills/{wrong['_id']}/rebill")
    assert status == 202 and answer["run_id"] == f"rebill:{wrong['_id']}", answer
    await finished_run(billing, answer["run_id"])
    right = await billing.db.bills.find_one({"run_id": answer["run_id"]})
    assert (right["opening_reading"], right["closing_reading"], right["charge"]) == ("100", "110", "5.00")
    assert right["from_time"] == wrong["from_time"] and right["to_time"] == wrong["to_time"]

    async with billing.http.get(f"{billing.url}/api/v1/scheduler/history/?project_id={PROJECT}&device_type=2"
                                ) as response:
        history = (await response.json())["data"]
    assert history["count"] == 3
    by_kind = {(r["kind"], r["status"]): r for r in history["results"]}
    assert by_kind[("credit_note", "issued")]["charge"] == "-500.00"
    assert by_kind[("credit_note", "issued")]["credits_bill_id"] == str(wrong["_id"])
    assert by_kind[("bill", "void")]["credit_note_id"] == note["id"]
    assert by_kind[("bill", "issued")]["charge"] == "5.00"
    net = sum(D(r["charge"]) for r in history["results"])
    assert net == D("5.00")

    audit = await billing.db.audit.find({"entity": {"$in": ["bill", "credit_note"]}}).to_list()
    assert {(a["action"], a["entity"], a["actor"]) for a in audit} == {
        ("voided", "bill", "user:alice@example.com"), ("issued", "credit_note", "user:alice@example.com"),
        ("rebill_requested", "bill", "user:alice@example.com")}
    assert all(a["reason"] == "meter mis-read" for a in audit)


async def test_only_the_latest_bill_of_a_meter_can_be_voided_and_the_next_run_rebills(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """Voiding a bill with a later one on the chain is refused naming the later bill; once the
    later one is voided too, the next scheduled run bills the whole span again, once."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "1", "effective_from": "2000-01-01T00:00:00Z"})
    data.add_device(PROJECT, meter(1))
    second_end = P_END + timedelta(days=30)
    third_end = second_end + timedelta(days=31)
    for at, value in ((P_START, "0"), (P_END, "10"), (second_end, "25"), (third_end, "45")):
        data.add_reading(1, ms(at - timedelta(hours=1)), value)
    await billing.bus.publish(BILLING, "run.requested", run_message("n:1"))
    await finished_run(billing, "n:1")
    await billing.bus.publish(BILLING, "run.requested", run_message("n:2", start=P_END, end=second_end))
    await finished_run(billing, "n:2")
    first = await billing.db.bills.find_one({"run_id": "n:1"})
    second = await billing.db.bills.find_one({"run_id": "n:2"})
    status, answer = await post(billing, f"/api/v1/bills/{first['_id']}/void", {"reason": "x"}, user=None)
    assert status == 409 and str(second["_id"]) in answer["message"], answer
    # Not while a run of the project is in progress: a job may be extending the chain from it.
    await billing.db.runs.insert_one({"_id": "busy", "project_id": PROJECT, "device_type": 2,
                                      "status": "running", "started_at": datetime.now(UTC)})
    status, answer = await post(billing, f"/api/v1/bills/{second['_id']}/void", {"reason": "x"}, user=None)
    assert status == 409 and "run busy of project 42 is in progress" in answer["message"], answer
    await billing.db.runs.delete_one({"_id": "busy"})
    for bill in (second, first):
        status, answer = await post(billing, f"/api/v1/bills/{bill['_id']}/void", {"reason": "tariff wrong"},
                                    user=None)
        assert status == 200 and answer["bill"]["void"]["by"] == "system", answer
    await billing.bus.publish(BILLING, "run.requested", run_message("n:3", start=second_end, end=third_end))
    await finished_run(billing, "n:3")

    async def issued() -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = await billing.db.bills.find({"status": "issued", "kind": "bill"}).to_list()
        return docs
    [rebilled] = await wait_for(issued, what="the re-bill")
    assert rebilled["from_time"] == first["from_time"] and rebilled["consumption"] == "45"
    assert rebilled["catch_up"] and len(rebilled["periods"]) == 3
    credits = await billing.db.bills.find({"kind": "credit_note"}).to_list()
    assert sorted(c["consumption"] for c in credits) == ["-10", "-15"]
