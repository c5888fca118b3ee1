"""The query parameters and series look-up shared by BEMServer's /timeseries_data/ endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import JsonSchema
from twinbill_common.errors import HttpError, ValidationFailed
from twinbill_twin.bemserver import payloads as p
from twinbill_twin.bemserver.access import Access
from twinbill_twin.bemserver.resources import timezones
from twinbill_twin.bemserver.timeseries import DATA_STATES
from twinbill_twin.store.retention import iso
from twinbill_twin.store.series import raw_kept_from


@dataclass(frozen=True)
class Series:
    """A requested series: how the client named it, its sample key in the asked data state, and
    (device series, Raw) the attribute whose current value an upload moves forward."""

    label: str
    key: int
    attribute_id: int | None


def _params() -> dict[str, dict[str, Any]]:
    when = {"type": "string", "format": "date-time", "description": "an aware date-time, 1680 to 2260"}
    return {
        "data_state": {"type": "integer", "enum": [s["id"] for s in DATA_STATES], "description": "1 Raw, 2 Clean"},
        "start_time": when, "end_time": when,
        "timezone": {"type": "string", "enum": list(timezones()), "description": "IANA zone, UTC unless given"},
        "timeseries": {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1,
                       "description": "series ids (names on a /campaign/{campaign_id}/ path), repeated"},
        "convert_to": {"type": "array", "items": {"type": "string"},
                       "description": "refused when not empty: twinbill converts no units"},
        "aggregation": {"type": "string", "enum": list(p.AGGREGATIONS), "description": "avg unless given"},
        "bucket_width_unit": {"type": "string", "enum": list(p.PERIODS)},
        "bucket_width_value": {"type": "integer", "minimum": 1, "description": "1 unless given; only 1 for "
                               "day, week, month, year"},
    }


def query_params(*names: str, required: tuple[str, ...] = (), more: dict[str, Any] | None = None) -> JsonSchema:
    """The query parameters the functions below read (by name), as JSON Schema for OpenAPI."""
    table = {**_params(), **(more or {})}
    return JsonSchema({"type": "object", "properties": {n: table[n] for n in (*names, *(more or {}))},
                       "required": list(required)})


def query_error(name: str, reason: str) -> ValidationFailed:
    """422 naming one query parameter."""
    return ValidationFailed({name: [reason]}, data={"location": "query"})


def data_state(request: web.Request) -> int:
    """`data_state`: 1 (Raw) or 2 (Clean); BEMServer's own 422 body otherwise."""
    raw = request.query.get("data_state")
    if raw is None:
        raise query_error("data_state", "Missing data for required field.")
    try:
        state = int(raw)
    except ValueError:
        raise query_error("data_state", "Not a valid integer.") from None
    if state not in {s["id"] for s in DATA_STATES}:
        # BEMServer's own body here: the reason is a string, not a list
        raise HttpError(422, "", data={"errors": {"query": {"data_state": "Unknown data state ID"}}})
    return state


def time_param(request: web.Request, name: str) -> datetime:
    """A required aware datetime parameter, within BEMServer's range (1680..2260)."""
    raw = request.query.get(name)
    if raw is None:
        raise query_error(name, "Missing data for required field.")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise query_error(name, "Not a valid datetime.") from None
    if when.tzinfo is None:
        raise query_error(name, "Not a valid aware datetime.")
    if not 1680 <= when.year < 2260:
        raise query_error(name, "Must be greater than or equal to 1680-01-01 and less than 2260-01-01.")
    return when


def zone_param(request: web.Request, default: str = "UTC") -> ZoneInfo:
    """`timezone`: an IANA name (default UTC)."""
    name = request.query.get("timezone", default)
    if name not in timezones():
        raise query_error("timezone", "Must be one of the IANA time zones.")
    return ZoneInfo(name)


def no_conversion(request: web.Request) -> None:
    """`convert_to` is refused: twinbill converts no units."""
    if any(unit for unit in request.query.getall("convert_to", [])):
        raise query_error("convert_to", "Unit conversion is not supported by twinbill.")


def campaign_id_of(request: web.Request) -> int | None:
    """The campaign of a by-names path, None on a by-ids path."""
    if "campaign_id" not in request.match_info:
        return None
    try:
        campaign = int(request.match_info["campaign_id"])
    except ValueError:
        raise HttpError(404, "") from None
    if not 0 < campaign < 2**31:  # PostgreSQL's integer: a larger one was a 500
        raise HttpError(404, "")
    return campaign


async def find_series(conn: asyncpg.Connection, request: web.Request, labels: list[str], *, state: int,
                      access: Access) -> list[Series]:
    """The named series (ids, or names in the path's campaign), each readable by the caller.

    Unknown ones are a 422 naming them (field `timeseries`), as BEMServer's "Unknown timeseries"."""
    campaign = campaign_id_of(request)
    if campaign is not None:
        if not await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", campaign):
            raise HttpError(404, "")
        rows = await conn.fetch("SELECT * FROM bem_timeseries WHERE campaign_id = $1 AND name = ANY($2::text[])",
                                campaign, labels)
        return resolve_series(request, labels, {r["name"]: r for r in rows}, by_name=True, state=state,
                              access=access)
    rows = await conn.fetch(SERIES_BY_IDS, series_ids(labels))
    return resolve_series(request, labels, {str(r["id"]): r for r in rows}, by_name=False, state=state,
                          access=access)


# The series named by ids ($1); a query may join more to each row (download_aggregate's values).
SERIES_BY_IDS = "SELECT * FROM bem_timeseries WHERE id = ANY($1::int[])"


def series_ids(labels: list[str]) -> list[int]:
    """The ids of a by-ids request, or the 422 naming those that are not integers."""
    bad = [label for label in labels if not label.isdigit() or int(label) >= 2**31]
    if bad:
        raise query_error("timeseries", f"Not a valid integer: {', '.join(bad)}.")
    return [int(label) for label in labels]


def resolve_series(request: web.Request, labels: list[str], by_label: Mapping[str, Mapping[str, Any]], *,
                   by_name: bool, state: int, access: Access) -> list[Series]:
    """The series rows found for the labels, in the labels' order: a 422 naming the unknown
    ones, a 403 where the caller may not read one."""
    unknown = [label for label in labels if label not in by_label]
    if unknown:
        what = "name" if by_name else "ID"
        message = f"Unknown timeseries {what}(s): {', '.join(unknown)}"
        raise HttpError(422, message, fields={"timeseries": [message]},
                        data={"location": "query" if request.method != "POST" else "json"})
    found: list[Series] = []
    for label in labels:
        row = by_label[label]
        if not access.series(row["campaign_id"], row["campaign_scope_id"]):
            raise HttpError(403, "Authorization error")
        key = row["raw_key"] if state == 1 else row["clean_key"]
        found.append(Series(label, key, row["attribute_id"] if state == 1 else None))
    return found


def labels_of(request: web.Request) -> list[str]:
    """The `timeseries` parameters (ids or names), required, repeats dropped."""
    labels = request.query.getall("timeseries", [])
    if not labels:
        raise query_error("timeseries", "Missing data for required field.")
    return list(dict.fromkeys(labels))


def csv_cell(text: str) -> str:
    """A CSV header cell, quoted where it must be."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


async def check_retained(conn: asyncpg.Connection, series: list[Series], start: int, *, what: str) -> None:
    """422 naming `start_time` when raw-grade data of these series is asked before their project's
    raw horizon (raw retention deleted it there; the minute and hour rollups stay)."""
    kept = await raw_kept_from(conn, [s.key for s in series])
    if start < kept:
        raise query_error("start_time", f"{what} before {iso(kept)} are past the campaign's raw retention "
                                        "(only minute and hour aggregates are kept there).")
def bucket_width(request: web.Request, errors: dict[str, list[str]] | None = None) -> tuple[str, int]:
    """`bucket_width_unit` (required) and `bucket_width_value` (default 1; only 1 for calendar
    units), as BEMServer's TimeseriesBucketWidthSchema checks them; every bad parameter (with
    those already in `errors`) in one 422."""
    errors = {} if errors is None else errors
    unit = request.query.get("bucket_width_unit")
    if unit is None:
        errors["bucket_width_unit"] = ["Missing data for required field."]
    elif unit not in p.PERIODS:
        errors["bucket_width_unit"] = ["Must be one of: " + ", ".join(p.PERIODS) + "."]
    try:
        width = int(request.query.get("bucket_width_value", "1"))
        if width < 1:
            errors["bucket_width_value"] = ["Must be greater than or equal to 1."]
    except ValueError:
        errors["bucket_width_value"] = ["Not a valid integer."]
        width = 1
    if unit in p.PERIODS and unit not in p.FIXED_PERIODS and width != 1:
        errors["bucket_width_value"] = ["Bucket width value must be 1 for variable size periods."]
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    assert unit is not None
    return unit, width


async def clean_or_raw(conn: asyncpg.Connection, pairs: list[tuple[int, int]], start: int, end: int) -> list[int]:
    """For each series (clean_key, raw_key): its Clean key when it has Clean points in
    [start, end), else its Raw key. BEMServer's analyses read Clean data, which its cleanup
    process fills from Raw; twinbill has no such process, so a series only MQTT or uploads fed
    (Raw) is read as it came."""
    if not pairs:
        return []
    rows = await conn.fetch(
        "SELECT k.key FROM unnest($1::bigint[]) AS k (key) WHERE EXISTS (SELECT 1 FROM samples s "
        "WHERE s.attribute_id = k.key AND s.idx = -1 AND s.ts >= $2 AND s.ts < $3)",
        [clean for clean, _ in pairs], start, end)
    cleaned = {r["key"] for r in rows}
    return [clean if clean in cleaned else raw for clean, raw in pairs]
