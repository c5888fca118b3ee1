"""Meter lifecycle over the management API (seed 001 style): installation, exchange, removal and
multiplier changes of a device's meter.

`GET|POST /api/v1/devices/{id}/lifecycle/`, `DELETE /api/v1/devices/{id}/lifecycle/{event_id}`
(only the latest event: a mistaken entry). Errors name the field (422).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import AwareDatetime, Field

from twinbill_common.apidocs import documented
from twinbill_common.errors import NotFound, ValidationFailed
from twinbill_common.http import json_response
from twinbill_twin.api.common import path_id, pool_of, read_model, run_change
from twinbill_twin.domain.lifecycle import Recorded, check_event, digits_of
from twinbill_twin.errors import not_found
from twinbill_twin.events import change
from twinbill_twin.schemas import PositiveDecimal, Text, _In, _Out
from twinbill_twin.store import lifecycle
from twinbill_twin.store.series import fetch_last_readings

Reading = Annotated[Decimal, Field(ge=0, max_digits=30, decimal_places=10)]


class MeterEventCreate(_In):
    """POST body: what happened to the meter, when, and the readings taken."""

    kind: Literal["installation", "exchange", "removal", "multiplier_change"]
    at: AwareDatetime
    final_reading: Reading | None = None
    initial_reading: Reading | None = None
    reading: Reading | None = None
    multiplier: PositiveDecimal | None = None
    register_digits: Annotated[int, Field(ge=1, le=15)] | None = None
    meter_number: Annotated[str, Field(max_length=64)] = ""
    note: Text = ""


class MeterEventRead(_Out):
    """A recorded event, with the parameters in force before and after it."""

    id: int
    device_id: int
    kind: str
    at: datetime
    final_reading: Decimal | None
    initial_reading: Decimal | None
    reading: Decimal | None
    multiplier: Decimal
    multiplier_before: Decimal
    register_digits: int | None
    register_digits_before: int | None
    meter_number: str
    note: str
    created_at: datetime


def _render(row: dict[str, Any]) -> dict[str, Any]:
    return MeterEventRead.model_validate(row).model_dump(mode="json")


@documented(summary="A meter's lifecycle events, oldest first", response=list[MeterEventRead], tags=("management",))
async def list_events(request: web.Request) -> web.Response:
    """GET /api/v1/devices/{id}/lifecycle/: the device's events, oldest first."""
    device_id = path_id(request)
    async with pool_of(request).acquire() as conn:
        if await conn.fetchval("SELECT 1 FROM devices WHERE id = $1", device_id) is None:
            raise not_found("device", device_id)
        return json_response([_render(row) for row in await lifecycle.events_of(conn, device_id)])


@documented(summary="Record a meter installation, exchange, removal or multiplier change", body=MeterEventCreate,
            response=MeterEventRead, status=201, tags=("management",))
async def create_event(request: web.Request) -> web.Response:
    """POST /api/v1/devices/{id}/lifecycle/: record an event (201), checked against the earlier
    ones and the device's last reading (422 naming each bad field)."""
    device_id = path_id(request)
    body = await read_model(request, MeterEventCreate)

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        device = await lifecycle.device_for_event(conn, device_id)
        if device is None:
            raise not_found("device", device_id)
        recorded = await lifecycle.events_of(conn, device_id)
        digits_before = digits_of(device["register_max"])
        digits_after = body.register_digits if body.register_digits is not None else digits_before
        last = None
        if body.final_reading is not None:
            found = await fetch_last_readings(conn, [device_id], int(body.at.timestamp() * 1000))
            if found:
                last = (Decimal(found[0]["value"]), datetime.fromtimestamp(found[0]["time"] / 1000, tz=body.at.tzinfo))
        errors = check_event(
            body.kind, at=body.at,
            values={"final_reading": body.final_reading, "initial_reading": body.initial_reading,
                    "reading": body.reading, "multiplier": body.multiplier},
            recorded=[Recorded(r["kind"], r["at"]) for r in recorded],
            digits_before=digits_before, digits_after=digits_after, last_reading=last)
        if errors:
            raise ValidationFailed(errors)
        values = {
            "device_id": device_id, "kind": body.kind, "at": body.at,
            "final_reading": body.final_reading, "initial_reading": body.initial_reading,
            "reading": body.reading, "multiplier": body.multiplier or device["multiplier"],
            "multiplier_before": device["multiplier"], "register_digits": digits_after,
            "register_digits_before": digits_before, "meter_number": body.meter_number, "note": body.note,
        }
        return {**await lifecycle.insert_event(conn, values), "project_id": device["project_id"]}

    row = await run_change(request, work, _events("updated"))
    return json_response(_render(row), status=201)


@documented(summary="Delete a lifecycle event", status=204, path_types={"event_id": int}, tags=("management",))
async def delete_event(request: web.Request) -> web.Response:
    """DELETE /api/v1/devices/{id}/lifecycle/{event_id}: remove the latest event (204)."""
    device_id = path_id(request)
    raw = request.match_info["event_id"]
    if not raw.isdigit():
        raise NotFound(f"meter event {raw!r} not found")

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        device = await lifecycle.device_for_event(conn, device_id)
        if device is None:
            raise not_found("device", device_id)
        removed = await lifecycle.delete_latest_event(conn, device_id, int(raw))
        if removed is None:
            raise NotFound(f"meter event {raw} is not the latest event of device {device_id}")
        return {**removed, "project_id": device["project_id"]}

    await run_change(request, work, _events("updated"))
    return web.Response(status=204)


def _events(action: str) -> Any:
    def build(row: dict[str, Any]) -> list[Any]:
        return [change("device", action, row["device_id"], project_id=row["project_id"],
                       data={"lifecycle": _render(row)})]
    return build


def add_lifecycle_routes(app: web.Application) -> None:
    """The lifecycle routes under /api/v1/devices/{id}/."""
    app.router.add_get("/api/v1/devices/{id}/lifecycle/", list_events)
    app.router.add_post("/api/v1/devices/{id}/lifecycle/", create_event)
    app.router.add_delete("/api/v1/devices/{id}/lifecycle/{event_id}", delete_event)
