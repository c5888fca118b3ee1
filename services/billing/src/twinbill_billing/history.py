"""Seed 000's bill history: GET /api/v1/scheduler/history/ and /api/v1/scheduler/history/time/.

Shapes follow the seed exactly (see README.md for the choices where it is inconsistent): readings
and charges are strings with two decimals, times are naive ISO in the project's time zone (kept on
each bill at billing time), `device_id` is the meter number (device key). The history/time day
window is in the project's zone as the twin says it now (cached), else the bills' zone.
Additions to the seed's items (after its keys): `kind`, `status`, `credits_bill_id`,
`credit_note_id`, `estimated`. `format=csv` answers the same filters as a streamed CSV (export.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from aiohttp import web

from twinbill_billing.domain.periods import (
    PeriodError,
    local_day_bounds,
    parse_seed_date,
    render_local,
)
from twinbill_billing.domain.pricing import CENT
from twinbill_billing.errors import BillingError
from twinbill_billing.export import bill_kind, bill_status, link, stream_bills_csv
from twinbill_billing.history_schemas import MAX_PAGE_SIZE, HistoryPage, HistoryQuery, TimeItem, TimeQuery
from twinbill_billing.store import BillStore
from twinbill_billing.twin import TwinClient
from twinbill_common.apidocs import documented
from twinbill_common.errors import ValidationFailed
from twinbill_common.http import json_response, meta_ok
from twinbill_common.logging import get_logger
from twinbill_common.paging import one_of, query_choice, query_int, query_page

log = get_logger(__name__)
STORE = web.AppKey("bill_store", BillStore)
TWIN = web.AppKey("twin_client", TwinClient)
# history/time has its own device-type codes: 10 all, 0 electricity, 1 water (seed 000).
TIME_DEVICE_TYPES = {10: None, 0: 2, 1: 1}
TIME_CODE_OF = {2: 0, 1: 1}
WM_TYPES = {"自来水表": "tap", "纯净水表": "purified"}
FORMATS = ("json", "csv")


def two_decimals(text: str) -> str:
    """A stored decimal string as the seed shows it: two decimals, half-up."""
    return format(Decimal(text).quantize(CENT, rounding=ROUND_HALF_UP), "f")


def _format(query: Mapping[str, str], errors: dict[str, list[str]]) -> str:
    """`format`: json (the seed's envelope, the default) or csv (an export of every match)."""
    value = query.get("format", "").strip().lower() or "json"
    if value not in FORMATS:
        errors["format"] = [one_of(FORMATS)]
    return value


def links(bill: dict[str, Any]) -> dict[str, Any]:
    """Additions to the seed's item: what the document is, its status, and the bills it links."""
    return {
        "kind": bill_kind(bill),
        "status": bill_status(bill),
        "credits_bill_id": link(bill.get("credits_bill_id")),
        "credit_note_id": link(bill.get("credit_note_id")),
        "estimated": bool(bill.get("estimated")),
    }


def device_filter(device_id: str) -> dict[str, Any]:
    """`device_id` matches the meter number (device key) or, when numeric, the registry id."""
    if device_id.isdigit():
        return {"$or": [{"device_key": device_id}, {"device_id": int(device_id)}]}
    return {"device_key": device_id}


async def project_zone(request: web.Request, project_id: int, *, recorded: str) -> str:
    """The project's zone from the twin (cached by the client); the bills' `recorded` zone when
    the twin cannot say (unreachable, 5xx, unknown project)."""
    try:
        return await request.app[TWIN].project_timezone(project_id)
    except BillingError as err:
        log.warning("project zone unavailable, using the bills' zone", project_id=project_id,
                    zone=recorded, error=str(err))
        return recorded


def _time(value: datetime, tz: str) -> str:
    return render_local(value, tz=tz)


def history_item(bill: dict[str, Any]) -> dict[str, Any]:
    """One result of GET /history/, in the seed's key order."""
    tz = bill.get("timezone", "UTC")
    return {
        "id": str(bill["_id"]),
        "device_id": bill["device_key"],
        "device_type": bill["device_type"],
        "charge": two_decimals(bill["charge"]),
        "reading_data": two_decimals(bill["closing_reading"]),
        "from_time": _time(bill["from_time"], tz),
        "to_time": _time(bill["to_time"], tz),
        "created_at": _time(bill["created_at"], tz),
        **links(bill),
    }


def time_item(bill: dict[str, Any]) -> dict[str, Any]:
    """One entry of GET /history/time/, in the seed's key order and device-type codes."""
    tz = bill.get("timezone", "UTC")
    return {
        "id": str(bill["_id"]),
        "house_address": bill.get("house_address", ["", "", "", "", ""]),
        "residents": [
            {"name": r.get("name", ""), "cellphone": r.get("cellphone", "")} for r in bill.get("residents", [])
        ],
        "device_id": bill["device_key"],
        "device_type": TIME_CODE_OF.get(bill["device_type"], bill["device_type"]),
        "charge": two_decimals(bill["charge"]),
        "previous_reading_data": two_decimals(bill["opening_reading"]),
        "reading_data": two_decimals(bill["closing_reading"]),
        "from_time": _time(bill["from_time"], tz),
        "to_time": _time(bill["to_time"], tz),
        "created_at": _time(bill["created_at"], tz),
        **links(bill),
    }


@documented(summary="A page of bills, newest first (seed 000)", query=HistoryQuery, response=HistoryPage,
            envelope="meta", tags=("bills",))
async def get_history(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/scheduler/history/: a page of bills, newest first ("info list")."""
    query = request.query
    errors: dict[str, list[str]] = {}
    project_id = query_int(query, "project_id", errors=errors, required=True)
    device_type = query_choice(query, "device_type", errors=errors, choices={0, 1, 2})
    window = query_page(query, errors=errors, default_size=10, max_size=MAX_PAGE_SIZE)
    page, page_size = window.page, window.page_size
    output = _format(query, errors)
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    assert project_id is not None and device_type is not None  # checked above
    conditions: list[dict[str, Any]] = [{"project_id": project_id}]
    if device_type in (1, 2):
        conditions.append({"device_type": device_type})
    if device_id := query.get("device_id", "").strip():
        conditions.append(device_filter(device_id))
    mongo_query = conditions[0] if len(conditions) == 1 else {"$and": conditions}
    store = request.app[STORE]
    if output == "csv":  # the whole filtered history: page and page_size do not apply to an export
        kind = {0: "all", 1: "water", 2: "electricity"}[device_type]
        return await stream_bills_csv(request, store, mongo_query,
                                      filename=f"twinbill-bills-project{project_id}-{kind}.csv")
    count = await store.count_bills(mongo_query)
    bills = await store.find_bills(mongo_query, skip=window.offset, limit=page_size)
    # The seed writes this endpoint's meta as {"message", "code"} (the others {"code", "message"}).
    return json_response(
        {
            "meta": {"message": "info list", "code": 0},
            "data": {
                "count": count,
                "page_size": page_size,
                # The seed shows `null` for an absent next page and `true` for a present one: kept so.
                "next": True if page * page_size < count else None,
                "previous": True if page > 1 else None,
                "results": [history_item(bill) for bill in bills],
            },
        }
    )


@documented(summary="Bills whose period ends within the dates (seed 000)", query=TimeQuery,
            response=list[TimeItem], envelope="meta", tags=("bills",))
async def get_history_time(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/scheduler/history/time/: bills whose period ends within [start_date, end_date]."""
    query = request.query
    errors: dict[str, list[str]] = {}
    project_id = query_int(query, "project_id", errors=errors, required=True)
    code = query_choice(query, "device_type", errors=errors, choices=TIME_DEVICE_TYPES)
    kind: str | None = None
    if wm_type := query.get("wm_type", "").strip():
        if wm_type not in WM_TYPES:
            errors["wm_type"] = [one_of(WM_TYPES)]
        kind = WM_TYPES.get(wm_type)
    dates = {}
    for name in ("start_date", "end_date"):
        text = query.get(name, "").strip()
        if not text:
            errors[name] = ["Missing data for required field."]
            continue
        try:
            dates[name] = parse_seed_date(text)
        except PeriodError as err:
            errors[name] = [str(err)]
    if not errors and dates["end_date"] < dates["start_date"]:
        errors["end_date"] = ["Must not be before start_date."]
    output = _format(query, errors)
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    assert project_id is not None and code is not None  # checked above
    store = request.app[STORE]
    sample = await store.find_bills({"project_id": project_id}, limit=1)
    filename = (f"twinbill-bills-project{project_id}-{dates['start_date'].isoformat()}"
                f"_{dates['end_date'].isoformat()}.csv")
    if not sample:
        if output == "csv":
            return await stream_bills_csv(request, store, {"project_id": project_id}, filename=filename)
        return meta_ok([], "success")
    zone = await project_zone(request, project_id, recorded=sample[0].get("timezone", "UTC"))
    start, end = local_day_bounds(dates["start_date"], dates["end_date"], tz=zone)
    conditions: list[dict[str, Any]] = [
        {"project_id": project_id},
        {"to_time": {"$gte": start, "$lt": end}},
    ]
    device_type = TIME_DEVICE_TYPES[code]
    if device_type is not None:
        conditions.append({"device_type": device_type})
    if kind is not None and device_type == 1:
        conditions.append({"water_meter_kind": kind})
    elif kind is not None and device_type is None:  # "all": the kind narrows water meters only
        conditions.append({"$or": [{"device_type": 2}, {"water_meter_kind": kind}]})
    if device_id := query.get("device_id", "").strip():
        conditions.append(device_filter(device_id))
    if output == "csv":
        return await stream_bills_csv(request, store, {"$and": conditions}, filename=filename)
    bills = await store.find_bills({"$and": conditions})
    return meta_ok([time_item(bill) for bill in bills], "success")


def add_history_routes(app: web.Application) -> None:
    """Mount the two seed-000 history routes (with and without the trailing slash)."""
    for path, handler in (
        ("/api/v1/scheduler/history/", get_history),
        ("/api/v1/scheduler/history/time/", get_history_time),
    ):
        app.router.add_get(path, handler)
        app.router.add_get(path.rstrip("/"), handler)
