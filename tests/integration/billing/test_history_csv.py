"""`format=csv` on seed 000's history endpoints: UTF-8 with a BOM, one row per bill or credit note
with its links, residents (names only) and house address, the same filters as the JSON answer."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from bson import ObjectId

from twinbill_billing.export import COLUMNS

from .conftest import Billing

PROJECT = 61
ORIGINAL = ObjectId("65a000000000000000000001")
CREDIT = ObjectId("65a000000000000000000002")
REBILL = ObjectId("65a000000000000000000003")
WATER = ObjectId("65a000000000000000000004")
OTHER_PROJECT = ObjectId("65a000000000000000000005")
RESIDENTS = [{"name": "=HYPERLINK(\"x\")", "cellphone": "1"}, {"name": "卢博腾", "cellphone": "13336915622"}]


def bill(oid: ObjectId, **fields: Any) -> dict[str, Any]:
    """A stored bill of meter 000090502121 for January 2026 (Asia/Shanghai), as the worker writes it."""
    doc: dict[str, Any] = {
        "_id": oid, "project_id": PROJECT, "device_id": 7001, "device_key": "000090502121",
        "product_key": "pk", "device_name": "空调房电表", "device_type": 2, "water_meter_kind": None,
        "house_address": ["安心e家", "1号楼", "", "", "空调房"], "residents": RESIDENTS,
        "opening_reading": "394.83", "closing_reading": "414.950", "consumption": "20.120", "charge": "10.06",
        "charge_minor": 1006, "estimated": False, "timezone": "Asia/Shanghai",
        "from_time": datetime(2025, 12, 31, 16, tzinfo=UTC), "to_time": datetime(2026, 1, 31, 16, tzinfo=UTC),
        "created_at": datetime(2026, 1, 31, 16, 0, 5, tzinfo=UTC), "run_id": "r", "job_id": "r:0",
    }
    doc.update(fields)
    return doc


async def insert_ledger(billing: Billing) -> None:
    """A voided bill, its credit note (negative, linked), the re-bill, a water bill, another project's."""
    voided_at = datetime(2026, 2, 3, 2, tzinfo=UTC)
    # The ledger's own keys (a credit note and a re-bill share the voided bill's period) are not what
    # this test is about, and their index is the ledger's to define: the export reads without them.
    await billing.db.bills.drop_indexes()
    await billing.db.bills.insert_many([
        bill(ORIGINAL, status="void", credit_note_id=str(CREDIT),
             void={"reason": "读数错误 misread", "by": "7", "at": voided_at}),
        bill(CREDIT, kind="credit_note", credits_bill_id=str(ORIGINAL), consumption="-20.120", charge="-10.06",
             charge_minor=-1006, created_at=voided_at, run_id=None, job_id=None),
        bill(REBILL, closing_reading="404.83", consumption="10.00", charge="5.00", charge_minor=500,
             estimated=True, created_at=datetime(2026, 2, 3, 3, tzinfo=UTC)),
        bill(WATER, device_id=7002, device_key="W-1", device_name="自来水表", device_type=1,
             water_meter_kind="tap", house_address=["安心e家", "", "", "", "厨房"], residents=[],
             to_time=datetime(2026, 1, 15, 16, tzinfo=UTC)),
        bill(OTHER_PROJECT, project_id=PROJECT + 1),
    ])


async def get_csv(billing: Billing, path: str) -> tuple[int, dict[str, str], bytes]:
    async with billing.http.get(billing.url + quote(path, safe="/?&=.:-")) as response:
        return response.status, dict(response.headers), await response.read()


def rows_of(body: bytes) -> list[dict[str, str]]:
    """The CSV as dicts, after checking the BOM and the header row."""
    assert body.startswith(b"\xef\xbb\xbf"), body[:10]
    reader = csv.reader(io.StringIO(body[3:].decode("utf-8"), newline=""))
    header = next(reader)
    assert tuple(header) == COLUMNS
    return [dict(zip(header, row, strict=True)) for row in reader]


async def test_history_csv_has_one_row_per_bill_and_credit_note(billing: Billing) -> None:
    """BOM, Chinese text intact, the credit note linked to the bill it credits, the voided bill's
    status, link and reason, local times, exact decimals; phone numbers left out; formula defused."""
    await insert_ledger(billing)
    status, headers, body = await get_csv(billing, f"/api/v1/scheduler/history/?project_id={PROJECT}"
                                                   "&device_type=0&format=csv")
    assert status == 200, body
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == f'attachment; filename="twinbill-bills-project{PROJECT}-all.csv"'
    assert headers.get("Transfer-Encoding") == "chunked"  # streamed: no length known up front
    assert b"\r\n" in body and b"13336915622" not in body
    rows = rows_of(body)
    # newest first: period end, then id (the same order as the JSON pages)
    assert [r["bill_id"] for r in rows] == [str(REBILL), str(CREDIT), str(ORIGINAL), str(WATER)]
    by_id = {r["bill_id"]: r for r in rows}
    original, credit, rebill, water = (by_id[str(o)] for o in (ORIGINAL, CREDIT, REBILL, WATER))
    assert original == {
        "bill_id": str(ORIGINAL), "kind": "bill", "status": "void", "credits_bill_id": "",
        "credit_note_id": str(CREDIT), "void_reason": "读数错误 misread", "project_id": str(PROJECT),
        "device_key": "000090502121", "device_name": "空调房电表", "device_type": "electricity",
        "water_meter_kind": "", "house_address": "安心e家 / 1号楼 / 空调房",
        "residents": "'=HYPERLINK(\"x\"); 卢博腾",
        "from_time": "2026-01-01 00:00:00", "to_time": "2026-02-01 00:00:00", "timezone": "Asia/Shanghai",
        "opening_reading": "394.83", "closing_reading": "414.950", "consumption": "20.120", "charge": "10.06",
        "estimated": "false", "created_at": "2026-02-01 00:00:05",
    }
    assert (credit["kind"], credit["status"], credit["credits_bill_id"], credit["credit_note_id"]) == (
        "credit_note", "issued", str(ORIGINAL), "")
    assert (credit["consumption"], credit["charge"], credit["created_at"]) == ("-20.120", "-10.06",
                                                                              "2026-02-03 10:00:00")
    assert (rebill["kind"], rebill["status"], rebill["estimated"], rebill["charge"]) == ("bill", "issued", "true",
                                                                                       "5.00")
    assert (water["device_type"], water["water_meter_kind"], water["residents"], water["house_address"]) == (
        "water", "tap", "", "安心e家 / 厨房")

    _, _, only_water = await get_csv(billing, f"/api/v1/scheduler/history/?project_id={PROJECT}"
                                              "&device_type=1&format=csv")
    assert [r["bill_id"] for r in rows_of(only_water)] == [str(WATER)]
    _, _, by_meter = await get_csv(billing, f"/api/v1/scheduler/history/?project_id={PROJECT}"
                                            "&device_type=0&device_id=W-1&format=CSV")
    assert [r["bill_id"] for r in rows_of(by_meter)] == [str(WATER)]


async def test_history_time_csv_uses_the_same_window_and_filters(billing: Billing, twin: Any) -> None:
    """history/time's whole-day window in the project's zone, device-type codes and wm_type apply;
    an empty answer is a header-only file."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    await insert_ledger(billing)
    base = f"/api/v1/scheduler/history/time/?project_id={PROJECT}&start_date=2026-2-1&end_date=2026-2-1&format=csv"
    status, headers, body = await get_csv(billing, base + "&device_type=10")
    assert status == 200
    assert headers["Content-Disposition"] == (
        f'attachment; filename="twinbill-bills-project{PROJECT}-2026-02-01_2026-02-01.csv"')
    assert {r["bill_id"] for r in rows_of(body)} == {str(ORIGINAL), str(CREDIT), str(REBILL)}
    _, _, water = await get_csv(billing, base.replace("2026-2-1&end", "2026-1-1&end")
                                + "&device_type=1&wm_type=自来水表")
    assert [r["bill_id"] for r in rows_of(water)] == [str(WATER)]
    _, _, nothing = await get_csv(billing, base.replace("2026-2-1", "2027-2-1") + "&device_type=10")
    assert rows_of(nothing) == []
    # the JSON answer lists the same documents, with the links as additions
    async with billing.http.get(billing.url + quote(base.replace("&format=csv", "") + "&device_type=0",
                                                    safe="/?&=.:-")) as response:
        items = (await response.json())["data"]
    shown = {item["id"]: item for item in items}
    assert shown[str(CREDIT)]["kind"] == "credit_note" and shown[str(CREDIT)]["credits_bill_id"] == str(ORIGINAL)
    assert shown[str(CREDIT)]["charge"] == "-10.06"
    assert shown[str(ORIGINAL)]["status"] == "void" and shown[str(ORIGINAL)]["credit_note_id"] == str(CREDIT)


async def test_csv_export_bad_format_names_the_parameter(billing: Billing) -> None:
    """format=xml is a 400 in the seed's envelope naming `format`, on both endpoints."""
    for path in ("/api/v1/scheduler/history/?project_id=1&device_type=0&format=xml",
                 "/api/v1/scheduler/history/time/?project_id=1&device_type=10&start_date=2026-1-1"
                 "&end_date=2026-1-2&format=xml"):
        async with billing.http.get(billing.url + path) as response:
            body = await response.json()
            assert response.status == 400 and body["meta"]["code"] == 400
            assert set(body["data"]["errors"]) == {"format"}


async def test_csv_export_streams_many_bills(billing: Billing) -> None:
    """More rows than one write batch: every bill once, in order, the file well formed."""
    docs = [bill(ObjectId(), device_id=10_000 + i, device_key=f"M{i:05d}",
                 to_time=datetime(2026, 1, 31, 16, tzinfo=UTC).replace(minute=i % 60, second=i // 60 % 60))
            for i in range(1234)]
    await billing.db.bills.insert_many(docs)
    _, _, body = await get_csv(billing, f"/api/v1/scheduler/history/?project_id={PROJECT}&device_type=2&format=csv")
    rows = rows_of(body)
    assert len(rows) == 1234 and len({r["bill_id"] for r in rows}) == 1234
    expected = sorted(docs, key=lambda d: (d["to_time"], d["_id"]), reverse=True)
    assert [r["bill_id"] for r in rows] == [str(d["_id"]) for d in expected]
