"""Management of tariffs (seed-001 style: list/get/create/update/delete) and the internal run summary."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from bson import ObjectId
from bson.errors import InvalidId

from twinbill_billing.audit import record_request_change
from twinbill_billing.errors import BillingError
from twinbill_billing.history import STORE, TWIN
from twinbill_billing.runs import summarize
from twinbill_billing.tariffs import (
    TariffCreate,
    TariffUpdate,
    overlaps,
    parse_tariff,
    to_document,
    to_read,
)
from twinbill_common.apidocs import JsonSchema, documented
from twinbill_common.errors import Conflict, NotFound, ValidationFailed
from twinbill_common.http import json_response, read_json
from twinbill_common.paging import query_int, query_page, smorest_pagination

CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")


def _object_id(request: web.Request) -> ObjectId:
    try:
        return ObjectId(request.match_info["tariff_id"])
    except InvalidId:
        raise NotFound(f"tariff {request.match_info['tariff_id']!r} not found") from None


async def _check_overlap(request: web.Request, doc: dict[str, Any], *, own: ObjectId | None) -> None:
    """Two tariffs of one project, device type and kind may not be in force at the same instant."""
    for other in await request.app[STORE].tariffs_for(doc["project_id"], doc["device_type"]):
        if other["_id"] == own or other.get("water_meter_kind") != doc.get("water_meter_kind"):
            continue
        if overlaps(
            doc["effective_from"],
            doc["effective_to"],
            other["effective_from"],
            other.get("effective_to"),
        ):
            raise Conflict(f"tariff {other['_id']} is in force over part of the same dates")


async def _timezone(request: web.Request, body: TariffUpdate, project_id: int, *, current: str | None) -> str | None:
    """The zone a tariff's local dates are read in: as given, else as stored, else the project's
    (asked of the twin only when the tariff has reset dates or seasons)."""
    if body.timezone is not None:
        return body.timezone
    if current is not None or not body.needs_zone:
        return current
    try:
        return await request.app[TWIN].project_timezone(project_id)
    except BillingError as err:
        raise ValidationFailed(
            {"timezone": [f"the project's time zone could not be read ({err}); give timezone"]},
            data={"location": "json"},
        ) from None


INT32 = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}
TARIFF_QUERY = JsonSchema({"type": "object", "properties": {
    "page": {**INT32, "minimum": 1}, "page_size": {**INT32, "minimum": 1, "maximum": 1000},
    "project_id": INT32, "device_type": INT32, "water_meter_kind": {"type": "string"}}})
# to_read's shape: amounts are decimal strings, times ISO 8601
TARIFF = JsonSchema({"type": "object", "required": ["id", "project_id", "device_type", "kind", "effective_from"],
                     "properties": {"id": {"type": "string"}, "project_id": {"type": "integer"},
                                    "device_type": {"type": "integer"}, "kind": {"type": "string"},
                                    "effective_from": {"type": "string"}, "effective_to": {"type": ["string", "null"]},
                                    "blocks": {"type": "array"}, "seasons": {"type": "array"}}}, "TariffRead")
TARIFF_ID = {"tariff_id": str}


@documented(summary="A page of tariffs (X-Pagination)", query=TARIFF_QUERY, response=TARIFF.many(), tags=("billing",))
async def list_tariffs(request: web.Request) -> web.Response:
    """GET /api/v1/tariffs/: a page of tariffs; X-Pagination as flask-smorest writes it."""
    errors: dict[str, list[str]] = {}
    window = query_page(request.query, errors=errors, default_size=10, max_size=1000)
    query: dict[str, Any] = {}
    for name in ("project_id", "device_type"):
        if (value := query_int(request.query, name, errors=errors, minimum=0)) is not None:
            query[name] = value
    if (kind := request.query.get("water_meter_kind")) is not None:
        query["water_meter_kind"] = kind
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    total, docs = await request.app[STORE].list_tariffs(query, skip=window.offset, limit=window.page_size)
    pagination = smorest_pagination(total=total, page=window.page, page_size=window.page_size)
    return json_response([to_read(doc) for doc in docs], headers={"X-Pagination": json.dumps(pagination)})


@documented(summary="Create a tariff", body=TariffCreate, response=TARIFF, status=201, tags=("billing",))
async def create_tariff(request: web.Request) -> web.Response:
    """POST /api/v1/tariffs/: validate and store a tariff (201)."""
    body = parse_tariff(TariffCreate, await read_json(request))
    now = request.app[CLOCK]()
    timezone = await _timezone(request, body, body.project_id, current=None)
    doc = {
        "project_id": body.project_id,
        "device_type": int(body.device_type),
        **to_document(body, now=now, timezone=timezone),
        "created_at": now,
    }
    await _check_overlap(request, doc, own=None)
    doc["_id"] = await request.app[STORE].insert_tariff(doc)
    await record_request_change(request, action="created", entity="tariff", entity_id=str(doc["_id"]),
                                data={"project_id": doc["project_id"], "tariff": to_read(doc)})
    return json_response(to_read(doc), status=201)


@documented(summary="One tariff", response=TARIFF, path_types=TARIFF_ID, tags=("billing",))
async def get_tariff(request: web.Request) -> web.Response:
    """GET /api/v1/tariffs/{id}."""
    doc = await request.app[STORE].get_tariff(_object_id(request))
    if doc is None:
        raise NotFound(f"tariff {request.match_info['tariff_id']!r} not found")
    return json_response(to_read(doc))


@documented(summary="Replace a tariff's definition", body=TariffUpdate, response=TARIFF, path_types=TARIFF_ID,
            tags=("billing",))
async def update_tariff(request: web.Request) -> web.Response:
    """PUT /api/v1/tariffs/{id}: replace the definition (project and device type stay)."""
    tariff_id = _object_id(request)
    store = request.app[STORE]
    current = await store.get_tariff(tariff_id)
    if current is None:
        raise NotFound(f"tariff {request.match_info['tariff_id']!r} not found")
    body = parse_tariff(TariffUpdate, await read_json(request))
    if body.water_meter_kind is not None and current["device_type"] != 1:
        raise ValidationFailed({"water_meter_kind": ["applies to water meters (device_type 1) only"]})
    timezone = await _timezone(request, body, current["project_id"], current=current.get("timezone"))
    fields = to_document(body, now=request.app[CLOCK](), timezone=timezone)
    await _check_overlap(request, {**current, **fields}, own=tariff_id)
    await store.replace_tariff(tariff_id, {**current, **fields})
    await record_request_change(request, action="updated", entity="tariff", entity_id=str(tariff_id),
                                data={"project_id": current["project_id"], "previous": to_read(current),
                                      "tariff": to_read({**current, **fields})})
    return json_response(to_read({**current, **fields}))


@documented(summary="Delete a tariff", status=204, path_types=TARIFF_ID, tags=("billing",))
async def delete_tariff(request: web.Request) -> web.Response:
    """DELETE /api/v1/tariffs/{id} (204). Bills keep their own snapshot of the tariff they used."""
    tariff_id = _object_id(request)
    current = await request.app[STORE].get_tariff(tariff_id)
    if current is None or not await request.app[STORE].delete_tariff(tariff_id):
        raise NotFound(f"tariff {request.match_info['tariff_id']!r} not found")
    await record_request_change(request, action="deleted", entity="tariff", entity_id=str(tariff_id),
                                data={"project_id": current["project_id"], "previous": to_read(current)})
    return web.Response(status=204)


@documented(summary="A billing run and its summary (services)", response=dict[str, Any], tags=("internal",))
async def get_run(request: web.Request) -> web.Response:
    """GET /internal/v1/runs/{run_id}: the run and its summary, derived live from job outcomes."""
    store = request.app[STORE]
    run_id = request.match_info["run_id"]
    run = await store.get_run(run_id)
    if run is None:
        raise NotFound(f"run {run_id!r} not found")
    summary = summarize(run, await store.job_outcomes(run_id))
    body = {
        key: (value.isoformat() if isinstance(value, datetime) else value)
        for key, value in run.items()
        if key not in ("_id", "summary")
    }
    body["jobs_published"] = bool(run.get("jobs_published"))  # nx-27017 returns a $set bool as 1
    return json_response({"run_id": run_id, **body, "summary": summary})


def add_management_routes(app: web.Application) -> None:
    """Mount /api/v1/tariffs/ and /internal/v1/runs/{run_id}."""
    app.router.add_get("/api/v1/tariffs/", list_tariffs)
    app.router.add_post("/api/v1/tariffs/", create_tariff)
    for path in ("/api/v1/tariffs/{tariff_id}", "/api/v1/tariffs/{tariff_id}/"):
        app.router.add_get(path, get_tariff)
        app.router.add_put(path, update_tariff)
        app.router.add_delete(path, delete_tariff)
    app.router.add_get("/internal/v1/runs/{run_id}", get_run)
