"""BEMServer's /timeseries_data/: upload (JSON, CSV) into the twin's one sample store (the same
write path, deduplication and rollups as MQTT points), streamed downloads and delete, by series
ids or by names within a campaign (aggregates and stats: `aggregates`)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import JsonSchema, documented
from twinbill_common.errors import HttpError
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver import payloads as p
from twinbill_twin.bemserver.access import access_of
from twinbill_twin.bemserver.aggregates import download_aggregate, get_stats
from twinbill_twin.bemserver.query import (
    Series,
    check_retained,
    csv_cell,
    data_state,
    find_series,
    labels_of,
    no_conversion,
    query_params,
    time_param,
    zone_param,
)
from twinbill_twin.store.sample_hours import PACK_SAMPLES
from twinbill_twin.store.samples import (
    PACK_MINUTES,
    PACKED_COLUMNS,
    CurrentValue,
    PartitionManager,
    SampleRecord,
    write_batch,
)

PARTITIONS = web.AppKey("bemserver_partitions", PartitionManager)
WRITE_CHUNK = 100_000
FETCH = 20_000
_POINTS = ("SELECT ts, dbl FROM samples WHERE attribute_id = $1 AND idx = -1 AND ts >= $2 AND ts < $3 "
           "AND dbl IS NOT NULL ORDER BY ts")
_JOINED = ("SELECT ts, attribute_id, dbl FROM samples WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 "
           "AND ts >= $2 AND ts < $3 AND dbl IS NOT NULL ORDER BY ts, attribute_id")


# --- upload -----------------------------------------------------------------------------------

POINTS = JsonSchema({"type": "object", "description": "per series (id, or name on a campaign path): timestamp -> value",
                     "additionalProperties": {"type": "object", "additionalProperties": {"type": ["number", "null"]}}},
                    "bemserver_points")
SERIES = ("timeseries", "data_state", "start_time", "end_time")


@documented(summary="Upload points (JSON; or CSV with Content-Type text/csv), all or nothing", body=POINTS,
            query=query_params("data_state", required=("data_state",)), status=201, empty=True, tags=("bemserver",))
async def upload(request: web.Request) -> web.Response:
    """POST: JSON or CSV (by Content-Type), all or nothing; 201 with no body, as BEMServer."""
    access = access_of(request)
    state = data_state(request)
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
        series = await find_series(conn, request, list(points), state=state, access=access)
        await store_points(request, conn, series, points)
    return web.Response(status=201)


async def store_points(request: web.Request, conn: asyncpg.Connection, series: list[Series],
                       points: p.Points) -> None:
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
    await write_points(conn, request.app[PARTITIONS], records, currents)


async def write_points(conn: asyncpg.Connection, partitions: PartitionManager, records: list[SampleRecord],
                       currents: list[CurrentValue]) -> None:
    """Samples through the telemetry writer in chunks, inside one transaction (a savepoint in the
    caller's): the BEMServer uploads', the weather download's and the cleanup's one path."""
    async with conn.transaction():  # nested in a caller's transaction: a savepoint
        for start in range(0, max(len(records), 1), WRITE_CHUNK):
            if start:
                await conn.execute("DELETE FROM ts_stage")  # the staging table lives to the commit
            await write_batch(conn, samples=records[start:start + WRITE_CHUNK],
                              currents=currents if start == 0 else [], devices={}, instances={},
                              partitions=partitions)


# --- download ---------------------------------------------------------------------------------

async def _range(request: web.Request) -> tuple[int, int]:
    start, end = time_param(request, "start_time"), time_param(request, "end_time")
    return p.parse_time(start.isoformat()), p.parse_time(end.isoformat())


@documented(summary="Download points (JSON; CSV with Accept: text/csv)", response=POINTS,
            query=query_params(*SERIES, "timezone", "convert_to", required=SERIES), tags=("bemserver",))
async def download(request: web.Request) -> web.StreamResponse:
    """GET: the points of several series, JSON or CSV (Accept), streamed from a cursor."""
    access = access_of(request)
    state = data_state(request)
    start, end = await _range(request)
    zone = zone_param(request)
    no_conversion(request)
    labels = labels_of(request)
    csv_wanted = request.headers.get("Accept", "").startswith("text/csv")
    async with pool_of(request).acquire() as conn:
        series = await find_series(conn, request, labels, state=state, access=access)
        await check_retained(conn, series, start, what="Raw points")
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
    await response.write(("Datetime," + ",".join(csv_cell(s.label) for s in series) + "\n").encode())
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


_REBUILD = """
INSERT INTO {table} (attribute_id, idx, bucket, n, sum, m2, min, max, first_ts, first_v, last_ts, last_v)
SELECT attribute_id, idx, ts - ts % {width}, count(*), sum(dbl), coalesce(var_pop(dbl), 0) * count(*),
       min(dbl), max(dbl), min(ts), (array_agg(dbl ORDER BY ts))[1], max(ts), (array_agg(dbl ORDER BY ts DESC))[1]
FROM samples WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 AND ts >= $2 AND ts < $3 AND dbl IS NOT NULL
GROUP BY 1, 2, 3
"""


_REBUILD_VALUES = """
INSERT INTO values_1h (attribute_id, idx, bucket, v)
SELECT attribute_id, idx, ts - ts % 3600000, array_agg(dbl ORDER BY dbl)
FROM samples WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 AND ts >= $2 AND ts < $3 AND dbl IS NOT NULL
GROUP BY 1, 2, 3
"""


# A touched hour still marked (being written: hour_values_dirty) is left unpacked: readers skip a
# marked hour's packed rows, and the seal packs it once it ends.
_NOT_MARKED = "NOT EXISTS (SELECT FROM hour_values_dirty AS d WHERE d.attribute_id = {key} AND d.bucket = {hour})"

_MINUTE_HOURS = f"""(
    SELECT DISTINCT attribute_id, bucket - bucket % 3600000 AS bucket FROM rollup_1m AS r
    WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 AND bucket >= $2 AND bucket < $3
      AND {_NOT_MARKED.format(key="r.attribute_id", hour="r.bucket - r.bucket % 3600000")}) AS hours"""
_REPACK = f"INSERT INTO rollup_1m_hours {PACKED_COLUMNS}{PACK_MINUTES.format(hours=_MINUTE_HOURS)}"

_REPACK_POINTS = PACK_SAMPLES.format(hours=f"""(
    SELECT key AS attribute_id, hour AS bucket
    FROM unnest($1::bigint[]) AS key CROSS JOIN generate_series($2::bigint, $3::bigint - 3600000, 3600000) AS hour
    WHERE {_NOT_MARKED.format(key="key", hour="hour")}
    ) AS hours""")


@documented(summary="Delete points in [start_time, end_time)", query=query_params(*SERIES, required=SERIES), status=204,
            tags=("bemserver",))
async def delete(request: web.Request) -> web.Response:
    """DELETE: the points of the series in [start_time, end_time); the rollups (10 s, minute, hour,
    hour values) of the touched buckets are rebuilt from what remains, so every reader agrees. 204."""
    access = access_of(request)
    access.write()
    state = data_state(request)
    start, end = await _range(request)
    labels = labels_of(request)
    async with pool_of(request).acquire() as conn:
        series = await find_series(conn, request, labels, state=state, access=access)
        async with conn.transaction():
            await delete_points(conn, [s.key for s in series], start, end)
    return web.Response(status=204)


async def delete_points(conn: asyncpg.Connection, keys: list[int], start: int, end: int) -> None:
    """Delete the series keys' points in [start, end) and rebuild the touched rollup buckets
    (inside the caller's transaction)."""
    await conn.execute("DELETE FROM samples WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 "
                       "AND ts >= $2 AND ts < $3", keys, start, end)
    for table, width in (("rollup_10s", 10_000), ("rollup_1m", 60_000), ("rollup_1h", 3_600_000),
                         ("values_1h", 3_600_000)):
        low, high = start - start % width, end + (-end) % width
        await conn.execute(f"DELETE FROM {table} WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 "
                           "AND bucket >= $2 AND bucket < $3", keys, low, high)
        rebuild = _REBUILD_VALUES if table == "values_1h" else _REBUILD.format(table=table, width=width)
        await conn.execute(rebuild, keys, low, high)
    # the touched hours' packed minutes, from the minute rollup just rebuilt
    low, high = start - start % 3_600_000, end + (-end) % 3_600_000
    await conn.execute("DELETE FROM rollup_1m_hours WHERE attribute_id = ANY($1::bigint[]) AND idx = -1 "
                       "AND bucket >= $2 AND bucket < $3", keys, low, high)
    await conn.execute("SET LOCAL extra_float_digits = 1")  # the packed texts as readers write doubles
    await conn.execute(_REPACK, keys, low, high)
    # and their packed points (every series of the hour: an hour is packed whole or not at all)
    await conn.execute("DELETE FROM sample_hours WHERE attribute_id = ANY($1::bigint[]) "
                       "AND bucket >= $2 AND bucket < $3", keys, low, high)
    await conn.execute(_REPACK_POINTS, keys, low, high)


def add_data_routes(app: web.Application, prefix: str) -> None:
    """/timeseries_data/ by ids and /timeseries_data/campaign/{campaign_id}/ by names."""
    app[PARTITIONS] = PartitionManager()
    for base in (f"{prefix}/timeseries_data", prefix + "/timeseries_data/campaign/{campaign_id}"):
        app.router.add_get(f"{base}/", download)
        app.router.add_post(f"{base}/", upload)
        app.router.add_delete(f"{base}/", delete)
        app.router.add_get(f"{base}/aggregate", download_aggregate)
        app.router.add_get(f"{base}/stats", get_stats)


__all__ = ["add_data_routes"]
