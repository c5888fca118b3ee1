"""Run reports and the audit read API on billing itself (real MongoDB wire server and RabbitMQ):
which meters of a run were skipped, estimated or failed and why; tariff changes audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId

from twinbill_common.topology import BILLING

from .conftest import Billing
from .fake_twin import TwinData
from .test_billing_run import P_END, P_START, PROJECT, create_tariff, finished_run, run_message, simulate


async def get_json(billing: Billing, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
    async with billing.http.get(billing.url + path, headers=headers) as response:
        return response.status, await response.json(), response.headers.get("X-Pagination", "")


async def test_run_reports_list_and_per_device_outcomes(billing: Billing, twin: tuple[TwinData, str]) -> None:
    """The list shows the project's runs newest first with counts; a run lists each device that was
    skipped, estimated or failed (exception) with its reason, paged and filterable by outcome."""
    data, _ = twin
    simulate(data)
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat", "unit_price": "0.55",
                                  "effective_from": "2000-01-01T00:00:00Z"})
    await billing.bus.publish(BILLING, "run.requested", run_message("task1:1"))
    await finished_run(billing, "task1:1")
    # an estimated bill as the ledger writes it (flag on the bill, this run's id)
    await billing.db.bills.insert_one({
        "_id": ObjectId(), "project_id": PROJECT, "device_id": 99, "device_key": "M00000099", "device_type": 2,
        "from_time": P_START, "to_time": P_END, "consumption": "3", "charge": "1.65", "estimated": True,
        "estimate_reason": "no reading at the period end: 30-day average", "run_id": "task1:1", "job_id": "task1:1:0",
        "created_at": datetime(2024, 4, 1, tzinfo=UTC), "timezone": "Asia/Shanghai"})
    await billing.db.runs.insert_one({"_id": "other:1", "project_id": PROJECT + 1, "device_type": 2,
                                      "task_key": "other", "fire_time": P_END, "status": "running"})

    status, runs, pages = await get_json(billing, f"/api/v1/billing/runs/?project_id={PROJECT}")
    assert status == 200 and json.loads(pages)["total"] == 1
    (run,) = runs
    assert (run["run_id"], run["project_id"], run["task_key"], run["status"], run["finished"]) == (
        "task1:1", PROJECT, "task1", "finished", True)
    assert (run["devices_expected"], run["billed"], run["skipped"], run["exceptions"], run["failed"],
            run["estimated"]) == (20, 17, 2, 1, 0, 1)
    assert run["period_end"] == P_END.isoformat()
    assert (await get_json(billing, f"/api/v1/billing/runs/?project_id={PROJECT}&task=nope"))[1] == []

    status, report, pages = await get_json(billing, "/api/v1/billing/runs/task1:1")
    assert status == 200 and report["project_id"] == PROJECT
    outcomes = {d["device_id"]: (d["outcome"], d["reason"]) for d in report["devices"]}
    assert set(outcomes) == {17, 18, 19, 99} and json.loads(pages)["total"] == 4
    assert outcomes[17][0] == "exception" and outcomes[18][0] == outcomes[19][0] == "skipped"
    assert all(reason for _, reason in outcomes.values())
    assert outcomes[99] == ("estimated", "no reading at the period end: 30-day average")
    _, skipped, pages = await get_json(billing, "/api/v1/billing/runs/task1:1?outcome=skipped&page_size=1&page=2")
    assert [d["outcome"] for d in skipped["devices"]] == ["skipped"] and json.loads(pages)["total"] == 2

    status, body, _ = await get_json(billing, "/api/v1/billing/runs/nope:1")
    assert status == 404
    status, body, _ = await get_json(billing, "/api/v1/billing/runs/task1:1?outcome=billed&page=0")
    assert status == 400 and set(body["errors"]["query"]) == {"outcome", "page"}
    status, body, _ = await get_json(billing, "/api/v1/billing/runs/?project_id=x&device_type=3")
    assert status == 400 and set(body["errors"]["query"]) == {"project_id", "device_type"}
    # no project: every project's runs (administrators; the gateway refuses anyone else)
    _, everything, _ = await get_json(billing, "/api/v1/billing/runs/")
    assert {r["run_id"] for r in everything} == {"task1:1", "other:1"}


async def test_tariff_changes_are_audited_with_the_gateway_user(billing: Billing) -> None:
    """Create, update and delete of a tariff each leave an audit entry readable per project: the
    actor is `user:{X-Twinbill-User}`, or `system` for a direct call; the reason from X-Twinbill-Reason."""
    body = {"project_id": PROJECT, "device_type": 2, "kind": "flat", "unit_price": "0.55",
            "effective_from": "2000-01-01T00:00:00Z"}
    async with billing.http.post(f"{billing.url}/api/v1/tariffs/", json=body,
                                 headers={"X-Twinbill-User": "7", "X-Twinbill-Reason": "新电价 2024"}) as response:
        assert response.status == 201
        tariff = await response.json()
    async with billing.http.put(f"{billing.url}/api/v1/tariffs/{tariff['id']}",
                                json={"kind": "flat", "unit_price": "0.60",
                                      "effective_from": "2000-01-01T00:00:00Z"}) as response:
        assert response.status == 200, await response.text()
    async with billing.http.delete(f"{billing.url}/api/v1/tariffs/{tariff['id']}",
                                   headers={"X-Twinbill-User": "8"}) as response:
        assert response.status == 204
    status, entries, pages = await get_json(
        billing, f"/api/v1/billing/audit/?project_id={PROJECT}&entity=tariff&entity_id={tariff['id']}")
    assert status == 200 and json.loads(pages)["total"] == 3
    assert [(e["action"], e["actor"], e["reason"]) for e in entries] == [
        ("deleted", "user:8", ""), ("updated", "system", ""), ("created", "user:7", "新电价 2024")]
    created = entries[2]
    assert created["entity"] == "tariff" and created["project_id"] == PROJECT and created["published"] is True
    assert created["data"]["tariff"]["unit_price"] == "0.55"
    assert entries[1]["data"]["previous"]["unit_price"] == "0.55"
    assert entries[1]["data"]["tariff"]["unit_price"] == "0.60"
    assert datetime.fromisoformat(created["at"]).tzinfo is not None
    assert (await get_json(billing, f"/api/v1/billing/audit/?project_id={PROJECT + 1}"))[1] == []
    status, body, _ = await get_json(billing, "/api/v1/billing/audit/?project_id=0&page_size=0")
    assert status == 400 and set(body["errors"]["query"]) == {"project_id", "page_size"}
