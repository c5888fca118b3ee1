"""BEMServer's /timeseries_data/ aggregate and stats: one value per bucket aligned in the asked
zone (from the hour, minute or 10 s rollup where the buckets allow, else raw samples), and per-series
statistics."""

from __future__ import annotations

import json
import math
from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import JsonSchema, documented
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver import payloads as p
from twinbill_twin.bemserver.access import Access, access_of
from twinbill_twin.bemserver.query import (
    SERIES_BY_IDS,
    Series,
    bucket_width,
    campaign_id_of,
    check_retained,
    csv_cell,
    data_state,
    find_series,
    labels_of,
    no_conversion,
    query_error,
    query_params,
    resolve_series,
    series_ids,
    time_param,
    zone_param,
)
from twinbill_twin.domain.floattext import repr_texts, split_values
from twinbill_twin.store.series import ROLLUPS, fetch_minutes

AGGREGATE_REQUIRED = ("data_state", "start_time", "end_time", "timeseries", "bucket_width_unit")
BUCKETS = JsonSchema({"type": "object", "description": "per series: bucket start -> value (null where empty)",
                      "additionalProperties": {"type": "object", "additionalProperties": {"type": ["number", "null"]}}})
STATS = JsonSchema({"type": "object", "required": ["stats"], "properties": {"stats": {
    "type": "object", "additionalProperties": {"type": "object", "properties": {
        "first_timestamp": {"type": ["string", "null"]}, "last_timestamp": {"type": ["string", "null"]},
        "count": {"type": "integer"}, "min": {"type": ["number", "null"]}, "max": {"type": ["number", "null"]},
        "avg": {"type": ["number", "null"]}, "stddev": {"type": ["number", "null"]}}}}}}, "bemserver_stats")


@documented(summary="One value per bucket and series (JSON; CSV with Accept: text/csv)", response=BUCKETS,
            query=query_params(*AGGREGATE_REQUIRED, "bucket_width_value", "aggregation", "timezone", "convert_to",
                               required=AGGREGATE_REQUIRED), tags=("bemserver",))
async def download_aggregate(request: web.Request) -> web.Response:
    """GET aggregate: one value per bucket (every bucket from floor(start) to ceil(end) in the
    asked zone; null where empty, 0 for count), JSON or CSV."""
    access = access_of(request)
    state = data_state(request)
    start_at, end_at = time_param(request, "start_time"), time_param(request, "end_time")
    zone = zone_param(request)
    no_conversion(request)
    aggregation = request.query.get("aggregation", "avg")
    errors: dict[str, list[str]] = {}
    if aggregation not in p.AGGREGATIONS:
        errors["aggregation"] = ["Must be one of: " + ", ".join(p.AGGREGATIONS) + "."]
    unit, width = bucket_width(request, errors)
    labels = labels_of(request)
    try:
        grid = p.buckets(start_at, end_at, unit=unit, width=width, zone=zone)
    except ValueError as err:
        raise query_error("bucket_width_value", f"Too many buckets: {err}.") from None
    async with pool_of(request).acquire() as conn:
        rows: list[tuple[int, list[int], list[str], str]] = []
        sql = bucket_sql(aggregation, grid) if grid.starts else ""
        if grid.starts and _one_round_trip(request, grid, sql):
            series, rows = await series_with_aggregates(conn, request, labels, state=state, access=access,
                                                        aggregation=aggregation, grid=grid)
        else:
            series = await find_series(conn, request, labels, state=state, access=access)
        if grid.starts and not _one_round_trip(request, grid, sql):
            if "FROM samples" in sql or "FROM rollup_10s" in sql:
                await check_retained(conn, series, grid.starts[0], what="Buckets that are not whole minutes")
            rows = await fetch_aggregates(conn, aggregation, grid, list(dict.fromkeys(s.key for s in series)))
    # each value's JSON / CSV text, per series in grid order (null / empty where no point, 0 for count)
    count = aggregation == "count"
    csv_wanted = request.headers.get("Accept", "").startswith("text/csv")
    empty = "0" if count else ("" if csv_wanted else "null")
    texts: dict[int, list[str]] = {s.key: [empty] * len(grid.starts) for s in series}
    for key, numbers, written, joined in rows:
        if not count:
            # JSON's tokens for NaN and the infinities; CSV writes repr ("nan", as pandas)
            written = repr_texts(written, joined=joined, write=float.__repr__ if csv_wanted else json_number)
        column = texts[key]
        if len(written) == len(column):  # every bucket has points (numbers are 1..n in order)
            texts[key] = written
            continue
        for b, text in zip(numbers, written, strict=True):
            column[b - 1] = text
    if csv_wanted:
        # one line per bucket: its time, then each series' cell; the values go into a pattern
        # of the times with one slot per line (a C loop, no Python string per value)
        columns = [texts[s.key] for s in series]
        cells = columns[0] if len(columns) == 1 else list(map(",".join, zip(*columns, strict=True)))
        head = "Datetime," + ",".join(csv_cell(s.label) for s in series) + "\n"
        pattern = _pattern(grid, p.TimeFormatter(zone, csv=True), before="", after=",", slot="%s\n")
        return web.Response(text=head + pattern % tuple(cells), content_type="text/csv")
    if not grid.starts:
        return web.json_response({})
    # {label: {time: value}} written directly (compact, as the downloads write it)
    pattern = _pattern(grid, p.TimeFormatter(zone, csv=False), before='"', after='":', slot="%s,")
    parts = [json.dumps(s.label) + ":{" + (pattern % tuple(texts[s.key]))[:-1] + "}" for s in series]
    return web.Response(text="{" + ",".join(parts) + "}", content_type="application/json")


def _pattern(grid: p.Buckets, when: p.TimeFormatter, *, before: str, after: str, slot: str) -> str:
    """`before + time + after + slot` for each bucket start, as one %-format pattern (the time
    texts hold no `%`)."""
    if grid.width is not None and grid.width < 3_600_000 and grid.starts:  # hours: one time each anyway
        return p.grid_pattern(grid.starts[0], len(grid.starts), grid.width, when, before=before,
                              after=after, slot=slot)
    return p.starts_pattern(grid.starts, when, before=before, after=after, slot=slot)


def json_number(value: float) -> str:
    """A double as json.dumps writes it (NaN and the infinities as its bare tokens)."""
    if math.isfinite(value):
        return float.__repr__(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


# What each aggregation reads from raw samples, from grouped rollup rows, and from one rollup row
# (when the bucket is the rollup's own).
_RAW_AGGREGATE = {"avg": "avg(dbl)", "sum": "sum(dbl)", "min": "min(dbl)", "max": "max(dbl)", "count": "count(dbl)"}
_ROLLUP_AGGREGATE = {"avg": "sum(sum) / sum(n)", "sum": "sum(sum)", "min": "min(min)", "max": "max(max)",
                     "count": "sum(n)::bigint"}
_ROW_AGGREGATE = {"avg": "sum / n", "sum": "sum", "min": "min", "max": "max", "count": "n"}


def aggregate_sql(aggregation: str, grid: p.Buckets) -> str:
    """Per series: its key, the 1-based numbers of the non-empty buckets and their values (two
    arrays), of $1 (series keys) in [$2, $3), $4 the bucket starts (calendar units only)."""
    return (f"SELECT attribute_id, array_agg(b ORDER BY b), array_agg(v ORDER BY b) "
            f"FROM ({bucket_sql(aggregation, grid)}) AS buckets GROUP BY 1")


def bucket_sql(aggregation: str, grid: p.Buckets, *, one: bool = False, series_key: str = "$1") -> str:
    """Rows (attribute_id, b, v): the 1-based bucket number and the value of each non-empty
    bucket of $1 (series keys; `one`: one key) in [$2, $3), $4 the bucket starts (calendar units
    only): from the hour, minute or 10 s rollup when every boundary lies on its grid (the rollups
    hold exactly the stored numeric points, merged as they arrive and rebuilt on delete; a bucket
    the rollup's own width reads its rows as they are), else from raw samples; fixed widths
    number buckets by arithmetic, calendar ones by width_bucket. With `one`, ordered by bucket,
    of the one key `series_key` (a parameter, or a column of a joined series row)."""
    bounds = [*grid.starts, grid.end]
    series = f"attribute_id = {series_key}" if one else "attribute_id = ANY($1::bigint[])"
    ordered = " ORDER BY b" if one else ""

    def number(column: str) -> str:
        if grid.width is not None:
            return f"(({column} - $2) / {grid.width} + 1)"
        return f"width_bucket({column}, $4::bigint[])"

    for width, table in ROLLUPS:
        if (grid.width % width == 0 and bounds[0] % width == 0 if grid.width is not None
                else all(b % width == 0 for b in bounds)):
            where = f"FROM {table} WHERE {series} AND idx = -1 AND bucket >= $2 AND bucket < $3"
            if grid.width == width:  # the rows as stored, in the primary key's order
                return (f"SELECT attribute_id, {number('bucket')} AS b, {_ROW_AGGREGATE[aggregation]} AS v {where}"
                        + (" ORDER BY bucket" if one else ""))
            return (f"SELECT attribute_id, {number('bucket')} AS b, {_ROLLUP_AGGREGATE[aggregation]} AS v "
                    f"{where} GROUP BY 1, 2{ordered}")
    return (f"SELECT attribute_id, {number('ts')} AS b, {_RAW_AGGREGATE[aggregation]} AS v "
            f"FROM samples WHERE {series} AND idx = -1 AND ts >= $2 AND ts < $3 "
            f"AND dbl IS NOT NULL GROUP BY 1, 2{ordered}")


def _as_stored(grid: p.Buckets) -> bool:
    """Whether the buckets are a rollup's own, so its rows are read as stored."""
    return grid.width is not None and grid.starts[0] % grid.width == 0 and \
        any(grid.width == width for width, _ in ROLLUPS)


def _one_round_trip(request: web.Request, grid: p.Buckets, sql: str) -> bool:
    """Whether the series (named by ids) and their values are read in one statement: a short read
    of the hour or minute rollup (no raw-retention check, no planner settings for a long scan)."""
    return (campaign_id_of(request) is None and "FROM samples" not in sql and "FROM rollup_10s" not in sql
            and not (_as_stored(grid) and len(grid.starts) > 2000))


async def series_with_aggregates(conn: asyncpg.Connection, request: web.Request, labels: list[str], *, state: int,
                                 access: Access, aggregation: str, grid: p.Buckets
                                 ) -> tuple[list[Series], list[tuple[int, list[int], list[str], str]]]:
    """find_series and fetch_aggregates of series named by ids, in one round trip: each series
    row with its values joined (computed for every row found, kept only once the names and the
    caller's access have been checked)."""
    ids = series_ids(labels)
    key = "t.raw_key" if state == 1 else "t.clean_key"
    inner = bucket_sql(aggregation, grid, one=True, series_key=key)
    sql = (f"SELECT t.*, x.numbers, x.joined FROM ({SERIES_BY_IDS}) AS t LEFT JOIN LATERAL ("
           f"SELECT array_agg(b) FILTER (WHERE v IS NOT NULL) AS numbers, "
           f"array_to_string(array_agg(v), ',') AS joined FROM ({inner}) AS buckets) AS x ON true")
    args: list[Any] = [ids, grid.starts[0], grid.end]
    if grid.width is None:
        args.append(grid.starts)
    found = await conn.fetch(sql, *args)
    series = resolve_series(request, labels, {str(r["id"]): r for r in found}, by_name=False, state=state,
                            access=access)
    by_key = {r["raw_key" if state == 1 else "clean_key"]: r for r in found}
    rows = []
    for key_value in dict.fromkeys(s.key for s in series):
        row = by_key[key_value]
        if row["numbers"]:
            rows.append(_checked(key_value, row["numbers"], row["joined"]))
    return series, rows


def _checked(key: int, numbers: list[int], joined: str) -> tuple[int, list[int], list[str], str]:
    """One series' bucket numbers and value texts, checked to agree and put in bucket order."""
    values = split_values(joined, len(numbers))
    if values is None:  # cannot be: array_to_string leaves out exactly the NULLs
        raise RuntimeError(f"series {key}: {len(numbers)} buckets but other values")
    if sorted(numbers) != numbers:  # ordered by the subquery: checked, never trusted
        pairs = sorted(zip(numbers, values, strict=True))
        numbers, values = [n for n, _ in pairs], [v for _, v in pairs]
        joined = ",".join(values)
    return key, numbers, values, joined


async def fetch_aggregates(conn: asyncpg.Connection, aggregation: str, grid: p.Buckets, keys: list[int]
                           ) -> list[tuple[int, list[int], list[str], str]]:
    """What aggregate_sql answers, per series: its key, the bucket numbers, their values as
    PostgreSQL writes them (floats shortest-exact, domain.floattext) and those texts joined by
    commas as they came. Read one series at a time in bucket order: a rollup read as stored
    comes from the primary key's index in that order, so PostgreSQL sorts nothing
    (aggregate_sql's two ordered aggregates sorted a week of 10 s buckets twice, on disk). Many
    such rows: in a transaction that keeps the planner to that index scan (it prefers a bitmap
    scan and a sort, costing heap pages as random reads)."""
    inner = bucket_sql(aggregation, grid, one=True)
    sql = (f"SELECT array_agg(b) FILTER (WHERE v IS NOT NULL), array_to_string(array_agg(v), ',') "
           f"FROM ({inner}) AS buckets")
    found: list[tuple[int, list[int], list[str], str]] = []

    packed = grid.width == 60_000 and _as_stored(grid) and len(grid.starts) > 2000

    async def read() -> None:
        for key in keys:
            if packed and (minutes := await minute_values(conn, key, aggregation, grid)) is not None:
                if minutes[1]:
                    found.append((key, *minutes))
                continue
            args: list[Any] = [key, grid.starts[0], grid.end]
            if grid.width is None:
                args.append(grid.starts)
            numbers, joined = await conn.fetchrow(sql, *args)
            if numbers:
                found.append(_checked(key, numbers, joined))

    if packed:
        await read()
    elif _as_stored(grid) and len(grid.starts) > 2000:
        # with sorts off only here, where the index order is the one asked for (a plan that
        # still needed a sort would cost "disabled" and bring in the JIT compiler); one round
        # trip opens the transaction and sets them
        await conn.execute("BEGIN; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; "
                           "SET LOCAL jit = off")
        try:
            await read()
        except Exception:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
    elif "FROM samples" in inner:
        async with conn.transaction():
            # a week of 10 s buckets is 60,480 groups: hashed in memory, not spilled to disk
            await conn.execute("SET LOCAL work_mem = '64MB'")
            await read()
    else:
        await read()
    return found


async def minute_values(conn: asyncpg.Connection, key: int, aggregation: str, grid: p.Buckets
                        ) -> tuple[list[int], list[str], str] | None:
    """fetch_aggregates' answer for one series of one-minute buckets read as stored, sealed hours
    from their packed rows (store.series.fetch_minutes); None where that does not apply."""
    start = grid.starts[0]
    found = await fetch_minutes(conn, key, start=start, stop=grid.end, aggregator=aggregation, scalar=True)
    if found is None:
        return None
    _, times, values, joined = found
    if not times:
        return [], [], ""
    count = len(times)
    if times[-1] - times[0] == (count - 1) * 60_000 and sorted(times) == times:  # every minute, in order
        first = (times[0] - start) // 60_000 + 1
        return list(range(first, first + count)), values, joined
    pairs = sorted(zip(times, values, strict=True))
    return [(t - start) // 60_000 + 1 for t, _ in pairs], [v for _, v in pairs], ",".join(v for _, v in pairs)


@documented(summary="First and last timestamps, count, min, max, avg, stddev per series", response=STATS,
            query=query_params("data_state", "timeseries", "timezone", required=("data_state",
                                                                                 "timeseries")), tags=("bemserver",))
async def get_stats(request: web.Request) -> web.Response:
    """GET stats: first and last timestamps, count, min, max, avg, stddev per series."""
    access = access_of(request)
    state = data_state(request)
    zone = zone_param(request)
    labels = labels_of(request)
    async with pool_of(request).acquire() as conn:
        series = await find_series(conn, request, labels, state=state, access=access)
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
