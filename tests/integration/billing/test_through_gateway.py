"""Billing's exports, run reports and audit through the real API gateway (PostgreSQL identities, the
billing service on MongoDB and RabbitMQ): same auth, and a member of another project never gets the
data (403/404)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.integration.gateway.test_gateway import ADMIN, basic, login, start_gateway
from twinbill_client import TwinbillAPIAuthorizationError, TwinbillAPIClient
from twinbill_common.topology import BILLING

from .conftest import Billing
from .fake_twin import TwinData
from .test_billing_run import PROJECT, create_tariff, finished_run, run_message, simulate
from .test_history_csv import CREDIT, ORIGINAL, REBILL, WATER, insert_ledger, rows_of
from .test_history_csv import PROJECT as LEDGER_PROJECT

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def gateway(pg_dsn: str, billing: Billing, twin: tuple[TwinData, str]) -> AsyncIterator[Client]:
    """The gateway in front of this billing service (the fake twin stands for the other services)."""
    client = await start_gateway(pg_dsn, twin[1], billing_url=billing.url)
    yield client
    await client.close()


async def member(gateway: Client, email: str, projects: list[int]) -> tuple[dict[str, str], int]:
    """A non-administrator of `projects`: their Bearer header and user id."""
    created = await gateway.post("/api/v1/users/", headers=basic(*ADMIN), json={
        "name": email, "email": email, "password": "member-pass", "projects": projects})
    assert created.status == 201, await created.text()
    user_id = int((await created.json())["id"])
    tokens = await login(gateway, email, "member-pass")
    return {"Authorization": f"Bearer {tokens['access_token']}"}, user_id


async def test_csv_export_through_the_gateway_is_project_scoped(gateway: Client, billing: Billing) -> None:
    """A member gets the streamed CSV (BOM, attachment name, every row); another project's member
    and a caller naming no project get 403 and no file; format=xml is a 400 naming `format`."""
    await insert_ledger(billing)
    mine, _ = await member(gateway, "a@example.test", [LEDGER_PROJECT])
    theirs, _ = await member(gateway, "b@example.test", [LEDGER_PROJECT + 1])
    path = f"/api/v1/scheduler/history/?project_id={LEDGER_PROJECT}&device_type=0&format=csv"
    response = await gateway.get(path, headers=mine)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    assert response.headers.get("Transfer-Encoding") == "chunked"  # relayed as it comes, not buffered
    rows = rows_of(await response.read())
    assert [r["bill_id"] for r in rows] == [str(REBILL), str(CREDIT), str(ORIGINAL), str(WATER)]
    assert rows[1]["credits_bill_id"] == str(ORIGINAL) and rows[2]["house_address"] == "安心e家 / 1号楼 / 空调房"
    time_path = (f"/api/v1/scheduler/history/time/?project_id={LEDGER_PROJECT}&device_type=10"
                 "&start_date=2026-1-1&end_date=2026-2-28&format=csv")
    response = await gateway.get(time_path, headers=mine)
    assert response.status == 200 and len(rows_of(await response.read())) == 4

    for headers, query in ((theirs, path), (theirs, time_path), (theirs, path.replace(f"project_id={LEDGER_PROJECT}&",
                                                                                      ""))):
        refused = await gateway.get(query, headers=headers)
        body = await refused.read()
        assert refused.status == 403 and b"\xef\xbb\xbf" not in body and str(ORIGINAL).encode() not in body
    assert (await gateway.get(path)).status == 401
    bad = await gateway.get(path.replace("csv", "xml"), headers=mine)
    assert bad.status == 400 and set((await bad.json())["data"]["errors"]) == {"format"}


async def test_run_reports_through_the_gateway_are_project_scoped(
    gateway: Client, billing: Billing, twin: tuple[TwinData, str]
) -> None:
    """Members list and read their project's runs with per-device reasons; a member of another
    project is refused the list (403) and the run (403 whatever project_id they name); unknown: 404."""
    data, _ = twin
    simulate(data)
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat", "unit_price": "0.55",
                                  "effective_from": "2000-01-01T00:00:00Z"})
    await billing.bus.publish(BILLING, "run.requested", run_message("task1:1"))
    await finished_run(billing, "task1:1")
    mine, _ = await member(gateway, "pm@example.test", [PROJECT])
    theirs, _ = await member(gateway, "other@example.test", [PROJECT + 1])

    listed = await gateway.get(f"/api/v1/billing/runs/?project_id={PROJECT}&task=task1", headers=mine)
    assert listed.status == 200 and json.loads(listed.headers["X-Pagination"])["total"] == 1
    assert [(r["run_id"], r["skipped"], r["exceptions"]) for r in await listed.json()] == [("task1:1", 2, 1)]
    report = await gateway.get("/api/v1/billing/runs/task1:1?outcome=skipped", headers=mine)
    assert report.status == 200
    body: dict[str, Any] = await report.json()
    assert sorted(d["device_id"] for d in body["devices"]) == [18, 19] and all(d["reason"] for d in body["devices"])

    for path in (f"/api/v1/billing/runs/?project_id={PROJECT}", "/api/v1/billing/runs/",
                 "/api/v1/billing/runs/task1:1", f"/api/v1/billing/runs/task1:1?project_id={PROJECT + 1}"):
        refused = await gateway.get(path, headers=theirs)
        text = await refused.text()
        assert refused.status == 403, (path, text)
        assert "devices" not in text and "M000000" not in text
    assert (await gateway.get("/api/v1/billing/runs/nope:1", headers=mine)).status == 404
    admin = await gateway.get("/api/v1/billing/runs/task1:1", headers=basic(*ADMIN))
    assert admin.status == 200


async def test_audit_through_the_gateway_records_the_user_and_is_project_scoped(
    gateway: Client, billing: Billing
) -> None:
    """A tariff created through the gateway is audited with the gateway's user; only members of the
    tariff's project read the entry."""
    mine, user_id = await member(gateway, "pm@example.test", [PROJECT])
    theirs, _ = await member(gateway, "other@example.test", [PROJECT + 1])
    created = await gateway.post("/api/v1/tariffs/", headers={**mine, "x-twinbill-reason": "annual review"}, json={
        "project_id": PROJECT, "device_type": 2, "kind": "flat", "unit_price": "0.55",
        "effective_from": "2000-01-01T00:00:00Z"})
    assert created.status == 201, await created.text()
    tariff_id = (await created.json())["id"]
    audit = await gateway.get(f"/api/v1/billing/audit/?project_id={PROJECT}&entity=tariff&entity_id={tariff_id}",
                              headers=mine)
    assert audit.status == 200
    (entry,) = await audit.json()
    assert (entry["actor"], entry["action"], entry["reason"]) == (f"user:{user_id}", "created", "annual review")
    for path in (f"/api/v1/billing/audit/?project_id={PROJECT}", "/api/v1/billing/audit/"):
        refused = await gateway.get(path, headers=theirs)
        assert refused.status == 403 and tariff_id not in await refused.text()


async def test_python_client_exports_and_reads_runs(gateway: Client, billing: Billing) -> None:
    """The project's client streams the CSV export into a file object and lists runs and audit."""
    await insert_ledger(billing)
    await billing.db.runs.insert_one({"_id": "t:1", "project_id": LEDGER_PROJECT, "device_type": 2,
                                      "task_key": "t", "status": "running", "jobs_total": 0})
    await member(gateway, "c@example.test", [LEDGER_PROJECT])
    api = TwinbillAPIClient(f"127.0.0.1:{gateway.port}", use_ssl=False,
                            authentication_method=TwinbillAPIClient.make_http_basic("c@example.test", "member-pass"))
    out = io.BytesIO()
    exported = await asyncio.to_thread(api.history.export_csv, LEDGER_PROJECT, 0, out=out)
    assert exported.data == {"bytes": len(out.getvalue()),
                             "filename": f"twinbill-bills-project{LEDGER_PROJECT}-all.csv"}
    assert len(rows_of(out.getvalue())) == 4
    runs = await asyncio.to_thread(api.runs.getall, LEDGER_PROJECT)
    assert [r["run_id"] for r in runs.data] == ["t:1"] and runs.pagination["total"] == 1
    assert (await asyncio.to_thread(api.audit.getall, LEDGER_PROJECT)).data == []
    with pytest.raises(TwinbillAPIAuthorizationError):
        await asyncio.to_thread(api.history.export_csv, LEDGER_PROJECT + 1, 0, out=io.BytesIO())
