"""CSV export of the seed-000 history endpoints (`format=csv`): one row per bill or credit note.

UTF-8 with a byte-order mark (Excel then reads Chinese text right), `\\r\\n` line ends, a header row,
streamed from a MongoDB cursor in batches (memory stays flat however many bills match), with an
`attachment` Content-Disposition. Residents are listed by name only: phone numbers are personal data
that a spreadsheet carries out of the platform's access control (the JSON of history/time still has
them for members of the project). Text cells that a spreadsheet would run as a formula (starting
with `=`, `+`, `-`, `@`, tab or CR) are prefixed with `'`; numbers are written as they are stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from pymongo import DESCENDING

from twinbill_billing.domain.periods import render_local
from twinbill_billing.store import BillStore
from twinbill_common.http import REQUEST_ID

BOM = "\ufeff"
BATCH = 500  # bills read per cursor batch and rows written per chunk
COLUMNS = (
    "bill_id", "kind", "status", "credits_bill_id", "credit_note_id", "void_reason", "project_id",
    "device_key", "device_name", "device_type", "water_meter_kind", "house_address", "residents",
    "from_time", "to_time", "timezone", "opening_reading", "closing_reading", "consumption", "charge",
    "estimated", "created_at",
)
DEVICE_TYPE_NAMES = {1: "water", 2: "electricity"}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def bill_kind(bill: Mapping[str, Any]) -> str:
    """`bill` or `credit_note` (a document without `kind` is a bill)."""
    return str(bill.get("kind") or "bill")


def bill_status(bill: Mapping[str, Any]) -> str:
    """`issued` or `void` (a document without `status` is issued)."""
    return str(bill.get("status") or "issued")


def link(value: Any) -> str | None:
    """A linked bill id as hex text (stored as hex or as an ObjectId), or None."""
    return None if value in (None, "") else str(value)


def safe_text(value: Any) -> str:
    """Text for a cell, defused if a spreadsheet would read it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _time(value: Any, tz: str) -> str:
    if not isinstance(value, datetime):
        return ""
    return render_local(value, tz=tz).replace("T", " ")  # a form Excel reads as a date and time


def csv_row(bill: Mapping[str, Any]) -> list[str]:
    """One bill or credit note as a CSV row, in COLUMNS order."""
    tz = str(bill.get("timezone") or "UTC")
    raw_void = bill.get("void")
    void: Mapping[str, Any] = raw_void if isinstance(raw_void, Mapping) else {}
    address = [str(part) for part in bill.get("house_address") or [] if part]
    names = [str(r.get("name", "")) for r in bill.get("residents") or [] if isinstance(r, Mapping)]
    return [
        str(bill["_id"]),
        bill_kind(bill),
        bill_status(bill),
        link(bill.get("credits_bill_id")) or "",
        link(bill.get("credit_note_id")) or "",
        safe_text(void.get("reason")),
        str(bill.get("project_id", "")),
        safe_text(bill.get("device_key")),
        safe_text(bill.get("device_name")),
        DEVICE_TYPE_NAMES.get(int(bill.get("device_type", 0)), str(bill.get("device_type", ""))),
        str(bill.get("water_meter_kind") or ""),
        safe_text(" / ".join(address)),
        safe_text("; ".join(name for name in names if name)),
        _time(bill.get("from_time"), tz),
        _time(bill.get("to_time"), tz),
        tz,
        str(bill.get("opening_reading") or ""),
        str(bill.get("closing_reading") or ""),
        str(bill.get("consumption") or ""),
        str(bill.get("charge") or ""),
        "true" if bill.get("estimated") else "false",
        _time(bill.get("created_at"), tz),
    ]


async def stream_bills_csv(
    request: web.Request, store: BillStore, query: Mapping[str, Any], *, filename: str
) -> web.StreamResponse:
    """Answer with every bill matching `query`, newest first, as a streamed CSV attachment."""
    cursor = store.bills.find(dict(query)).sort([("to_time", DESCENDING), ("_id", DESCENDING)]).batch_size(BATCH)
    rows = aiter(cursor)
    try:
        # The first batch is read before answering: a MongoDB failure is still an error response.
        bill = await anext(rows, None)
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{filename}"',
                "X-Request-Id": str(request.get(REQUEST_ID, "")),
            },
        )
        await response.prepare(request)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        buffer.write(BOM)
        writer.writerow(COLUMNS)
        written = 0
        while bill is not None:
            writer.writerow(csv_row(bill))
            written += 1
            if written % BATCH == 0:
                await response.write(buffer.getvalue().encode("utf-8"))
                buffer.seek(0)
                buffer.truncate()
            bill = await anext(rows, None)
        await response.write(buffer.getvalue().encode("utf-8"))
        await response.write_eof()
    finally:
        await cursor.close()
    return response
