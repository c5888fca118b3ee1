"""HTTP: seed 002's `GET /dt/open/v1/instance/attribute/{id}` and the billing worker's
`POST /internal/v1/readings/last` (docs/architecture.md)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from twinbill_common.apidocs import JsonSchema, documented
from twinbill_common.errors import HttpError, NotFound
from twinbill_common.http import dt_ok, json_response, parse_model, read_json
from twinbill_common.paging import INT64_MAX, parse_int
from twinbill_twin.api.dps import answer_response
from twinbill_twin.api.stream_query import fetch_attribute, parse_query, query_schema, stream_series
from twinbill_twin.api.visibility import attribute_visible, visible_projects
from twinbill_twin.errors import BadParameter
from twinbill_twin.store import series as series_store

ATTRIBUTE_PATH = "/dt/open/v1/instance/attribute/{id}"
READINGS_PATH = "/internal/v1/readings/last"


class ReadingsQuery(BaseModel):
    """Body of POST /internal/v1/readings/last."""

    model_config = ConfigDict(extra="forbid")

    device_ids: list[int] = Field(max_length=5000)
    at: int = Field(description="epoch milliseconds")


class ReadingsAnswer(BaseModel):
    """POST /internal/v1/readings/last: per device id, its last reading (or none)."""

    readings: dict[str, Any]


class AttributeValue(BaseModel):
    """Seed 002's attribute with its value (a Stream's: its points)."""

    model_config = ConfigDict(extra="allow")
    id: int
    name: str
    displayname: str | None
    attrtype: str
    datatype: str
    value: Any
    unit: str | None
    ctime: int
    mtime: int
    instance: int


def _ms(moment: datetime | None) -> int:
    """Epoch milliseconds, 0 when unset (seed 002's `"atime": 0`)."""
    return 0 if moment is None else int(moment.timestamp() * 1000)


def _bad(err: BadParameter) -> HttpError:
    return HttpError(400, str(err), fields={err.parameter: [err.reason]})


def attribute_body(row: asyncpg.Record, value: Any) -> dict[str, Any]:
    """Every field seed 002 documents for an attribute, in its order."""
    return {
        "id": row["id"],
        "name": row["name"],
        "displayname": row["displayname"],
        "attrtype": row["attrtype"],
        "datatype": row["datatype"],
        "value": value,
        "unit": row["unit"],
        "ctime": _ms(row["ctime"]),
        "mtime": _ms(row["mtime"]),
        "instance": row["instance_id"],
        "expectvalue": row["expectvalue"],
        "metric": row["metric"],
        "deviceid": row["device_key"] or "",
        "atime": _ms(row["atime"]),
        "stime": _ms(row["stime"]),
    }


def add_timeseries_routes(app: web.Application, *, pool: Callable[[web.Application], asyncpg.Pool],
                          default_zone: Callable[[web.Application], str]) -> None:
    """Register the two routes; `pool` and `default_zone` read what the app's lifespan opened."""

    @documented(summary="An attribute (seed 002): State/Description its value, Stream its time series",
                query=JsonSchema(query_schema()), response=AttributeValue, envelope="dt", tags=("seed 002",),
                path_types={"id": str})
    async def get_attribute(request: web.Request) -> web.Response:
        """State/Description: the current value as a string; Stream: its time series."""
        try:
            attribute_id = parse_int(request.match_info["id"], maximum=INT64_MAX)
        except ValueError as err:
            raise HttpError(400, f"id: {err}", fields={"id": [str(err)]}) from None
        now_ms = int(time.time() * 1000)
        async with pool(request.app).acquire() as conn:
            row, packed = await fetch_attribute(conn, attribute_id, request.query, now_ms=now_ms)
            if row is None or not await attribute_visible(conn, visible_projects(request), attribute_id):
                raise NotFound(f"attribute {attribute_id} does not exist")
            if row["attrtype"] != "Stream":
                return dt_ok(attribute_body(row, row["value"]))
            try:
                query = replace(parse_query(request.query, now_ms=now_ms,
                                            default_zone=row["timezone"] or default_zone(request.app)),
                                raw_kept_from=row["raw_kept_from"])
                value = await stream_series(conn, row, query, packed=packed)
            except BadParameter as err:
                raise _bad(err) from None
        # dt_ok's envelope, with each series' dps spliced in as the text stream_series wrote
        return answer_response({"code": 200, "message": "success", "data": attribute_body(row, value)})

    @documented(summary="The last billing-register reading of each device at or before `at`", body=ReadingsQuery,
                response=ReadingsAnswer, tags=("internal",))
    async def last_readings(request: web.Request) -> web.Response:
        """The last billing-register sample of each device at or before `at`."""
        body = parse_model(ReadingsQuery, await read_json(request))
        async with pool(request.app).acquire() as conn:
            readings = await series_store.fetch_last_readings(conn, body.device_ids, body.at)
        return json_response({"readings": readings})

    app.router.add_get(ATTRIBUTE_PATH, get_attribute)
    app.router.add_post(READINGS_PATH, last_readings)
