"""BEMServer's /timeseries_data/ aggregate and stats: one value per bucket aligned in the asked
zone (from the hour or minute rollup where the buckets allow, else raw samples), and per-series
statistics."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver import payloads as p
from twinbill_twin.bemserver.access import access_of
from twinbill_twin.bemserver.query import (
    bucket_width,
    csv_cell,
    data_state,
    find_series,
    labels_of,
    no_conversion,
    query_error,
    time_param,
    zone_param,
)


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
        series = await find_series(conn, request, labels, state=state, access=access)
        args: list[Any] = [[s.key for s in series], grid.starts[0] if grid.starts else 0, grid.end]
        if grid.width is None:
            args.append(grid.starts)
        sql = aggregate_sql(aggregation, grid)
        if "FROM samples" in sql:
            async with conn.transaction():
                # a week of 10 s buckets is 60,480 groups: hashed in memory, not spilled to disk
                await conn.execute("SET LOCAL work_mem = '64MB'")
                rows = await conn.fetch(sql, *args)
        else:
            rows = await conn.fetch(sql, *args)  # a rollup: a few thousand rows at most a week
    fill: int | None = 0 if aggregation == "count" else None
    values: dict[int, list[Any]] = {s.key: [fill] * len(grid.starts) for s in series}
    for row in rows:
        values[row["attribute_id"]][row["b"] - 1] = int(row["v"]) if aggregation == "count" else float(row["v"])
    if request.headers.get("Accept", "").startswith("text/csv"):
        lines = ["Datetime," + ",".join(csv_cell(s.label) for s in series)]
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
