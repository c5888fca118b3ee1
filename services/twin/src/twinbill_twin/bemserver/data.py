"""BEMServer's /timeseries_data/: upload (JSON, CSV) into the twin's one sample store (the same
write path, deduplication and rollups as MQTT points), streamed downloads, download_aggregate,
get_stats and delete, by series ids or by names within a campaign."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from twinbill_common.errors import HttpError, ValidationFailed
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver import payloads as p
from twinbill_twin.bemserver.access import Access, access_of
from twinbill_twin.bemserver.resources import timezones
from twinbill_twin.bemserver.timeseries import DATA_STATES
from twinbill_twin.timeseries.writer import CurrentValue, PartitionManager, SampleRecord, write_batch

PARTITIONS = web.AppKey("bemserver_partitions", PartitionManager)
WRITE_CHUNK = 100_000
FETCH = 20_000
_POINTS = ("SELECT ts, dbl FROM samples WHERE attribute_id = $1 AND idx = -1 AND ts >= $2 AND ts < $3 "
           "AND dbl IS NOT NULL ORDER BY ts")
_JOINED = ("SELECT ts, attribute_id, dbl FROM samples WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 "
           "AND ts >= $2 AND ts < $3 AND dbl IS NOT NULL ORDER BY ts, attribute_id")


@dataclass(frozen=True)
class Series:
    """A requested series: how the client named it, its sample key in the asked data state, and
    (device series, Raw) the attribute whose current value an upload moves forward."""

    label: str
    key: int
    attribute_id: int | None


def _query_error(name: str, reason: str) -> ValidationFailed:
    return ValidationFailed({name: [reason]}, data={"location": "query"})


def _data_state(request: web.Request) -> int:
    raw = request.query.get("data_state")
    if raw is None:
        raise _query_error("data_state", "Missing data for required field.")
    try:
        state = int(raw)
    except ValueError:
        raise _query_error("data_state", "Not a valid integer.") from None
    if state not in {s["id"] for s in DATA_STATES}:
        # BEMServer's own body here: the reason is a string, not a list
        raise HttpError(422, "", data={"errors": {"query": {"data_state": "Unknown data state ID"}}})
    return state


def _time(request: web.Request, name: str) -> datetime:
    raw = request.query.get(name)
    if raw is None:
        raise _query_error(name, "Missing data for required field.")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise _query_error(name, "Not a valid datetime.") from None
    if when.tzinfo is None:
        raise _query_error(name, "Not a valid aware datetime.")
    if not 1680 <= when.year < 2260:
        raise _query_error(name, "Must be greater than or equal to 1680-01-01 and less than 2260-01-01.")
    return when


def _zone(request: web.Request, default: str = "UTC") -> ZoneInfo:
    name = request.query.get("timezone", default)
    if name not in timezones():
        raise _query_error("timezone", "Must be one of the IANA time zones.")
    return ZoneInfo(name)


def _no_conversion(request: web.Request) -> None:
    if any(unit for unit in request.query.getall("convert_to", [])):
        raise _query_error("convert_to", "Unit conversion is not supported by twinbill.")


def _campaign_id(request: web.Request) -> int | None:
    if "campaign_id" not in request.match_info:
        return None
    try:
        return int(request.match_info["campaign_id"])
    except ValueError:
        raise HttpError(404, "") from None


async def _series(conn: asyncpg.Connection, request: web.Request, labels: list[str], *, state: int,
                  access: Access, write: bool = False) -> list[Series]:
    """The named series (ids, or names in the path's campaign), each readable by the caller.

    Unknown ones are a 422 naming them (field `timeseries`), as BEMServer's "Unknown timeseries"."""
    campaign = _campaign_id(request)
    if campaign is not None:
        if not await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", campaign):
            raise HttpError(404, "")
        rows = await conn.fetch("SELECT * FROM bem_timeseries WHERE campaign_id = $1 AND name = ANY($2::text[])",
                                campaign, labels)
        by_label = {r["name"]: r for r in rows}
    else:
        bad = [label for label in labels if not label.isdigit() or int(label) >= 2**31]
        if bad:
            raise _query_error("timeseries", f"Not a valid integer: {', '.join(bad)}.")
        rows = await conn.fetch("SELECT * FROM bem_timeseries WHERE id = ANY($1::int[])", [int(x) for x in labels])
        by_label = {str(r["id"]): r for r in rows}
    unknown = [label for label in labels if label not in by_label]
    if unknown:
        what = "name" if campaign is not None else "ID"
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


def _labels(request: web.Request) -> list[str]:
    labels = request.query.getall("timeseries", [])
    if not labels:
        raise _query_error("timeseries", "Missing data for required field.")
    return list(dict.fromkeys(labels))


# --- upload -----------------------------------------------------------------------------------

async def upload(request: web.Request) -> web.Response:
    """POST: JSON or CSV (by Content-Type), all or nothing; 201 with no body, as BEMServer."""
    access = access_of(request)
    state = _data_state(request)
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HttpError(422, str(err)) from None
    if "\x00" in text:
        raise HttpError(422, "The upload holds a NUL character")
    try:
        if request.content_type == "text/csv":
            points = p.read_csv_points(text)
        else:
            try:
                document = json.loads(text, parse_float=Decimal)
            except json.JSONDecodeError as err:
                raise p.PayloadError(f"Wrong JSON file: {err}") from None
            points = p.read_json_points(document)
    except p.PayloadError as err:
        fields = {err.where[0]: {err.where[1]: [str(err)]}} if err.where else None
        raise HttpError(422, str(err), data={"errors": {"json": fields}} if fields else None) from None
    async with pool_of(request).acquire() as conn:
        series = await _series(conn, request, list(points), state=state, access=access, write=True)
        await _store(request, conn, series, points)
    return web.Response(status=201)


async def _store(request: web.Request, conn: asyncpg.Connection, series: list[Series], points: p.Points) -> None:
    """Write through the telemetry store in chunks inside one transaction (all or nothing)."""
    arrived = int(time.time() * 1000)
    records: list[SampleRecord] = []
    currents: list[CurrentValue] = []
    for item in series:
        values = points[item.label]
        for ts, value in values.items():
            records.append((item.key, -1, ts, str(value), float(value), None, None))
        if item.attribute_id is not None and values:
            newest = max(values)
            currents.append(CurrentValue(item.attribute_id, str(values[newest]), newest, arrived))
    partitions = request.app[PARTITIONS]
    async with conn.transaction():
        for start in range(0, max(len(records), 1), WRITE_CHUNK):
            if start:
                await conn.execute("DELETE FROM ts_stage")  # the staging table lives to the commit
            await write_batch(conn, samples=records[start:start + WRITE_CHUNK],
                              currents=currents if start == 0 else [], devices={}, instances={},
                              partitions=partitions)


# --- download ---------------------------------------------------------------------------------

async def _range(request: web.Request) -> tuple[int, int]:
    start, end = _time(request, "start_time"), _time(request, "end_time")
    return p.parse_time(start.isoformat()), p.parse_time(end.isoformat())


async def download(request: web.Request) -> web.StreamResponse:
    """GET: the points of several series, JSON or CSV (Accept), streamed from a cursor."""
    access = access_of(request)
    state = _data_state(request)
    start, end = await _range(request)
    zone = _zone(request)
    _no_conversion(request)
    labels = _labels(request)
    csv_wanted = request.headers.get("Accept", "").startswith("text/csv")
    async with pool_of(request).acquire() as conn:
        series = await _series(conn, request, labels, state=state, access=access)
        response = web.StreamResponse(headers={"Content-Type": "text/csv" if csv_wanted else "application/json"})
        await response.prepare(request)
        async with conn.transaction():
            if csv_wanted:
                await _stream_csv(conn, response, series, start, end, zone)
            else:
                await _stream_json(conn, response, series, start, end, zone)
    await response.write_eof()
    return response


async def _rows(conn: asyncpg.Connection, sql: str, *args: Any) -> Any:
    """Batches of rows from a server-side cursor (the caller holds the transaction)."""
    cursor = await conn.cursor(sql, *args)
    while rows := await cursor.fetch(FETCH):
        yield rows


async def _stream_json(conn: asyncpg.Connection, response: web.StreamResponse, series: list[Series],
                       start: int, end: int, zone: ZoneInfo) -> None:
    when = p.TimeFormatter(zone, csv=False)
    await response.write(b"{")
    written = 0
    for item in series:
        opened = False
        async for rows in _rows(conn, _POINTS, item.key, start, end):
            text = ",".join(p.json_points(rows, when))
            head = "," if opened else ("," if written else "") + json.dumps(item.label) + ":{"
            opened = True
            await response.write((head + text).encode())
        if opened:
            await response.write(b"}")
            written += 1
    await response.write(b"}")


async def _stream_csv(conn: asyncpg.Connection, response: web.StreamResponse, series: list[Series],
                      start: int, end: int, zone: ZoneInfo) -> None:
    when = p.TimeFormatter(zone, csv=True)
    column = {item.key: index for index, item in enumerate(series)}
    await response.write(("Datetime," + ",".join(_csv_cell(s.label) for s in series) + "\n").encode())
    if len(series) == 1:  # one column: one line per row
        async for rows in _rows(conn, _POINTS, series[0].key, start, end):
            await response.write("".join(p.csv_points(rows, when)).encode())
        return
    lines: list[str] = []
    current: int | None = None
    cells: list[str] = [""] * len(series)
    async for rows in _rows(conn, _JOINED, list(column), start, end):
        for ts, key, value in rows:
            if ts != current:
                if current is not None:
                    lines.append(when(current) + "," + ",".join(cells) + "\n")
                current = ts
                cells = [""] * len(series)
            cells[column[key]] = repr(value)
        await response.write("".join(lines).encode())
        lines = []
    if current is not None:
        await response.write((when(current) + "," + ",".join(cells) + "\n").encode())


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


# --- aggregate, stats, delete -------------------------------------------------------------------

async def download_aggregate(request: web.Request) -> web.Response:
    """GET aggregate: one value per bucket (every bucket from floor(start) to ceil(end) in the
    asked zone; null where empty, 0 for count), JSON or CSV."""
    access = access_of(request)
    state = _data_state(request)
    start_at, end_at = _time(request, "start_time"), _time(request, "end_time")
    zone = _zone(request)
    _no_conversion(request)
    aggregation = request.query.get("aggregation", "avg")
    errors: dict[str, list[str]] = {}
    if aggregation not in p.AGGREGATIONS:
        errors["aggregation"] = ["Must be one of: " + ", ".join(p.AGGREGATIONS) + "."]
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
    labels = _labels(request)
    try:
        grid = p.buckets(start_at, end_at, unit=unit, width=width, zone=zone)
    except ValueError as err:
        raise _query_error("bucket_width_value", f"Too many buckets: {err}.") from None
    async with pool_of(request).acquire() as conn:
        series = await _series(conn, request, labels, state=state, access=access)
        args: list[Any] = [[s.key for s in series], grid.starts[0] if grid.starts else 0, grid.end]
        if grid.width is None:
            args.append(grid.starts)
        async with conn.transaction():
            # a week of 10 s buckets is 60,480 groups: hashed in memory, not spilled to disk
            await conn.execute("SET LOCAL work_mem = '64MB'")
            rows = await conn.fetch(aggregate_sql(aggregation, grid), *args)
    fill: int | None = 0 if aggregation == "count" else None
    values: dict[int, list[Any]] = {s.key: [fill] * len(grid.starts) for s in series}
    for row in rows:
        values[row["attribute_id"]][row["b"] - 1] = int(row["v"]) if aggregation == "count" else float(row["v"])
    if request.headers.get("Accept", "").startswith("text/csv"):
        lines = ["Datetime," + ",".join(_csv_cell(s.label) for s in series)]
        csv_when = p.TimeFormatter(zone, csv=True)
        for index, ts in enumerate(grid.starts):
            lines.append(csv_when(ts) + "," + ",".join(p.number_text(values[s.key][index]) for s in series))
        return web.Response(text="\n".join(lines) + "\n", content_type="text/csv")
    when = p.TimeFormatter(zone, csv=False)
    stamps = [when(ts) for ts in grid.starts]
    body = {s.label: dict(zip(stamps, values[s.key], strict=True)) for s in series} if stamps else {}
    return web.json_response(body)


# What each aggregation reads from raw samples, and from a rollup row (n, sum, min, max).
_RAW_AGGREGATE = {"avg": "avg(dbl)", "sum": "sum(dbl)", "min": "min(dbl)", "max": "max(dbl)", "count": "count(dbl)"}
_ROLLUP_AGGREGATE = {"avg": "sum(sum) / sum(n)", "sum": "sum(sum)", "min": "min(min)", "max": "max(max)",
                     "count": "sum(n)"}


def aggregate_sql(aggregation: str, grid: p.Buckets) -> str:
    """Bucket values (1-based bucket number `b`) of $1 (series keys) in [$2, $3), $4 the bucket
    starts (calendar units only): from the hour or minute rollup when every boundary lies on its grid (the rollups
    hold exactly the stored numeric points, merged as they arrive and rebuilt on delete), else
    from raw samples; fixed widths number buckets by arithmetic, calendar ones by width_bucket."""
    bounds = [*grid.starts, grid.end]

    def number(column: str) -> str:
        if grid.width is not None:
            return f"(({column} - $2) / {grid.width} + 1)"
        return f"width_bucket({column}, $4::bigint[])"

    for width, table in ((3_600_000, "rollup_1h"), (60_000, "rollup_1m")):
        if all(b % width == 0 for b in bounds):
            return (f"SELECT attribute_id, {number('bucket')} AS b, {_ROLLUP_AGGREGATE[aggregation]} AS v "
                    f"FROM {table} WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 AND bucket >= $2 "
                    "AND bucket < $3 GROUP BY 1, 2")
    return (f"SELECT attribute_id, {number('ts')} AS b, {_RAW_AGGREGATE[aggregation]} AS v "
            "FROM samples WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 AND ts >= $2 AND ts < $3 "
            "AND dbl IS NOT NULL GROUP BY 1, 2")


async def get_stats(request: web.Request) -> web.Response:
    """GET stats: first and last timestamps, count, min, max, avg, stddev per series."""
    access = access_of(request)
    state = _data_state(request)
    zone = _zone(request)
    labels = _labels(request)
    async with pool_of(request).acquire() as conn:
        series = await _series(conn, request, labels, state=state, access=access)
        rows = await conn.fetch(
            "SELECT attribute_id, min(ts) AS first, max(ts) AS last, count(*) AS n, min(dbl) AS min, "
            "max(dbl) AS max, avg(dbl) AS avg, stddev_samp(dbl) AS stddev FROM samples "
            "WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 AND dbl IS NOT NULL GROUP BY 1",
            [s.key for s in series])
    found = {r["attribute_id"]: r for r in rows}
    stats: dict[str, Any] = {}
    for item in series:
        row = found.get(item.key)
        stats[item.label] = {
            "first_timestamp": p.json_time(row["first"], zone) if row else None,
            "last_timestamp": p.json_time(row["last"], zone) if row else None,
            "count": int(row["n"]) if row else 0,
            "min": row["min"] if row else None, "max": row["max"] if row else None,
            "avg": row["avg"] if row else None, "stddev": row["stddev"] if row else None}
    return web.json_response({"stats": stats})


_REBUILD = """
INSERT INTO {table} (attribute_id, idx, bucket, n, sum, m2, min, max, first_ts, first_v, last_ts, last_v)
SELECT attribute_id, idx, ts - ts % {width}, count(*), sum(dbl), coalesce(var_pop(dbl), 0) * count(*),
       min(dbl), max(dbl), min(ts), (array_agg(dbl ORDER BY ts))[1], max(ts), (array_agg(dbl ORDER BY ts DESC))[1]
FROM samples WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 AND ts >= $2 AND ts < $3 AND dbl IS NOT NULL
GROUP BY 1, 2, 3
"""


async def delete(request: web.Request) -> web.Response:
    """DELETE: the points of the series in [start_time, end_time); the minute and hour rollups of
    the touched buckets are rebuilt from what remains, so every reader agrees. 204."""
    access = access_of(request)
    access.write()
    state = _data_state(request)
    start, end = await _range(request)
    labels = _labels(request)
    async with pool_of(request).acquire() as conn:
        series = await _series(conn, request, labels, state=state, access=access)
        keys = [s.key for s in series]
        async with conn.transaction():
            await conn.execute("DELETE FROM samples WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 "
                               "AND ts >= $2 AND ts < $3", keys, start, end)
            for table, width in (("rollup_1m", 60_000), ("rollup_1h", 3_600_000)):
                low, high = start - start % width, end + (-end) % width
                await conn.execute(f"DELETE FROM {table} WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 "
                                   "AND bucket >= $2 AND bucket < $3", keys, low, high)
                await conn.execute(_REBUILD.format(table=table, width=width), keys, low, high)
    return web.Response(status=204)


def add_data_routes(app: web.Application, prefix: str) -> None:
    """/timeseries_data/ by ids and /timeseries_data/campaign/{campaign_id}/ by names."""
    app[PARTITIONS] = PartitionManager()
    for base in (f"{prefix}/timeseries_data", prefix + "/timeseries_data/campaign/{campaign_id}"):
        app.router.add_get(f"{base}/", download)
        app.router.add_post(f"{base}/", upload)
        app.router.add_delete(f"{base}/", delete)
        app.router.add_get(f"{base}/aggregate", download_aggregate)
        app.router.add_get(f"{base}/stats", get_stats)


__all__ = ["UTC", "add_data_routes"]
