"""The read side: an attribute with its instance and device, raw points, bucket summaries from
raw rows or rollups, percentiles from raw values or the hours' sorted values, and billing readings."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import asyncpg

from twinbill_twin.domain.aggregators import Summary
from twinbill_twin.domain.floattext import rounded_texts

# One series' points as two columns: times ascending, and their values.
Columns = tuple[list[int], list[Any]]


class Texts(list[str]):
    """A column of doubles as PostgreSQL wrote them, shortest-exact (domain.floattext); `joined`
    is the texts as they came, comma-separated. `rounded`: the doubles are the values rounded to
    15 significant digits (ROUNDED), not the values themselves."""

    def __init__(self, texts: list[str], *, joined: str, rounded: bool = False) -> None:
        super().__init__(texts)
        self.joined = joined
        self.rounded = rounded


ROLLUPS = ((3_600_000, "rollup_1h"), (60_000, "rollup_1m"), (10_000, "rollup_10s"))
# Each hour's values sorted (per series): whole-hour percentile buckets read these, not raw rows.
HOUR_VALUES = (3_600_000, "values_1h")
# What raw retention deletes before a project's horizon (the minute and hour rollups stay, the
# minutes' packed hours, rollup_1m_hours, with them).
RAW_GRADE = frozenset({"samples", "rollup_10s", "values_1h", "sample_hours"})

ATTRIBUTE = """
SELECT a.id, a.instance_id, a.name, a.displayname, a.attrtype, a.datatype, a.unit, a.metric,
       a.value, a.expectvalue, a.ctime, a.mtime, a.atime, a.stime,
       i.name AS instance_name, d.device_key, pr.timezone,
       coalesce(rt.raw_kept_from, 0) AS raw_kept_from
FROM attributes a
JOIN instances i ON i.id = a.instance_id
LEFT JOIN devices d ON d.id = i.device_id
LEFT JOIN projects pr ON pr.id = d.project_id
LEFT JOIN ts_retention rt ON rt.project_id = d.project_id
WHERE a.id = $1
"""

_RAW = """
SELECT array_agg(idx), array_agg(ts), array_agg(dbl), array_agg(txt), bool_or(ts % 1000 <> 0)
FROM (SELECT idx, ts, dbl, txt FROM samples
      WHERE attribute_id = $1 AND ts >= $2 AND ts <= $3 ORDER BY ts, idx LIMIT $4) AS raw
"""

_READINGS = """
SELECT d.id AS device_id, s.num, s.ts
FROM (SELECT DISTINCT unnest($1::bigint[]) AS id) AS q
JOIN devices d ON d.id = q.id
JOIN products p ON p.id = d.product_id AND p.billing_register IS NOT NULL
JOIN instances i ON i.device_id = d.id
JOIN attributes a ON a.instance_id = i.id AND a.measurepoint = p.billing_register
CROSS JOIN LATERAL (
    SELECT num, ts FROM samples
    WHERE attribute_id = a.id AND idx = -1 AND ts <= $2 AND num IS NOT NULL
    ORDER BY ts DESC LIMIT 1
) AS s
ORDER BY d.id
"""


def bucket_sql(column: str, *, boundaries: bool) -> str:
    """The bucket start of `column`: epoch arithmetic ($4 = width) or a boundary lookup ($4 = array)."""
    if boundaries:
        return f"($4::bigint[])[width_bucket({column}, $4::bigint[])]"
    return f"({column} - {column} % $4::bigint)"


async def raw_kept_from(conn: asyncpg.Connection, keys: list[int]) -> int:
    """The latest raw horizon of the projects of these series keys (0: none deleted)."""
    found = await conn.fetchval(
        "SELECT max(r.raw_kept_from) FROM series_projects sp JOIN ts_retention r USING (project_id) "
        "WHERE sp.series_key = ANY($1::bigint[])", keys)
    return int(found or 0)


async def fetch_attribute(conn: asyncpg.Connection, attribute_id: int) -> asyncpg.Record | None:
    """The attribute with its instance name, device key and project time zone."""
    return await conn.fetchrow(ATTRIBUTE, attribute_id)


async def fetch_raw(conn: asyncpg.Connection, attribute_id: int, start: int, end: int, *, limit: int
                    ) -> tuple[dict[int, Columns], bool, bool]:
    """Raw points in [start, end] per series index as columns (times ascending; numbers as
    doubles, others as text), whether any time has milliseconds and whether any value is
    text; at most `limit` rows are
    read, so an over-wide query is refused without loading it all. One row of arrays: asyncpg
    decodes an array in C, where 3,600 records cost a Python object each."""
    row = await conn.fetchrow(_RAW, attribute_id, start, end, limit)
    if row is None or row[0] is None:
        return {}, False, False
    idxs, times, doubles, texts, millis = row
    if texts.count(None) == len(texts):  # numbers only
        return split_series(idxs, times, doubles), bool(millis), False
    values = [d if d is not None else t for d, t in zip(doubles, texts, strict=True)]
    return split_series(idxs, times, values), bool(millis), True


_RAW_TEXT = """
SELECT array_agg(idx), array_agg(ts), array_to_string(array_agg(dbl), ','), count(dbl), count(*),
       bool_or(ts % 1000 <> 0)
FROM (SELECT idx, ts, dbl FROM samples
      WHERE attribute_id = $1 AND ts >= $2 AND ts <= $3 ORDER BY ts, idx LIMIT $4) AS raw
"""


async def fetch_raw_texts(conn: asyncpg.Connection, attribute_id: int, start: int, end: int, *, limit: int
                          ) -> tuple[dict[int, Columns], bool] | None:
    """fetch_raw's points, their numbers as Texts (shortest exact) when every point is a number;
    None when some point is text (the caller reads them with fetch_raw). PostgreSQL writes the
    3,600 doubles of an hour in C, where repr in Python cost about as much as the rest of the query."""
    row = await conn.fetchrow(_RAW_TEXT, attribute_id, start, end, limit)
    if row is None or row[0] is None:
        return {}, False
    idxs, times, joined, numbers, rows, millis = row
    if numbers != rows:
        return None
    return texts_by_series(idxs, times, joined.split(","), joined), bool(millis)


async def fetch_qualities(conn: asyncpg.Connection, attribute_id: int, start: int, end: int
                          ) -> dict[int, list[tuple[int, str]]]:
    """The qualities of struct points in [start, end] per series index (points without one left out)."""
    rows = await conn.fetch("SELECT idx, ts, quality FROM samples WHERE attribute_id = $1 AND ts >= $2 "
                            "AND ts <= $3 AND quality IS NOT NULL ORDER BY ts, idx", attribute_id, start, end)
    found: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for idx, ts, quality in rows:
        found[idx].append((ts, quality))
    return found


async def fetch_summaries(
    conn: asyncpg.Connection,
    attribute_id: int,
    *,
    start: int,
    stop: int,
    bucket: int | list[int],
    table: str,
    ends: bool,
) -> dict[tuple[int, int], Summary]:
    """Summaries per (series, bucket) of the points in [start, stop), from raw rows or a rollup.

    `ends` asks for first/last too (they cost a sort per bucket). A rollup's M2 is merged around
    the bucket mean, so dev stays accurate where a plain sum of squares would cancel.
    """
    by_boundaries = isinstance(bucket, list)
    if table == "samples":
        key = bucket_sql("ts", boundaries=by_boundaries)
        first = "(array_agg(dbl ORDER BY ts))[1]" if ends else "0::float8"
        last = "(array_agg(dbl ORDER BY ts DESC))[1]" if ends else "0::float8"
        sql = f"""
            SELECT idx, {key} AS b, count(*) AS n, sum(dbl) AS s,
                   coalesce(var_pop(dbl), 0) * count(*) AS m2, min(dbl) AS lo, max(dbl) AS hi,
                   min(ts) AS fts, {first} AS fv, max(ts) AS lts, {last} AS lv
            FROM samples
            WHERE attribute_id = $1 AND ts >= $2 AND ts < $3 AND dbl IS NOT NULL
            GROUP BY 1, 2"""
    elif not by_boundaries and bucket == dict((t, w) for w, t in ROLLUPS)[table]:
        # the downsample interval is the rollup's own: its rows are the answer
        sql = f"""
            SELECT idx, bucket AS b, n, sum AS s, m2, min AS lo, max AS hi, first_ts AS fts,
                   first_v AS fv, last_ts AS lts, last_v AS lv
            FROM {table}
            WHERE attribute_id = $1 AND bucket >= $2 AND bucket < $3 AND $4::bigint > 0"""
    else:
        key = bucket_sql("bucket", boundaries=by_boundaries)
        first = "(array_agg(first_v ORDER BY first_ts))[1]" if ends else "0::float8"
        last = "(array_agg(last_v ORDER BY last_ts DESC))[1]" if ends else "0::float8"
        sql = f"""
            SELECT idx, b, sum(n)::bigint AS n, sum(sum) AS s,
                   sum(m2 + n * power(sum / n - gs / gn, 2)) AS m2, min(min) AS lo,
                   max(max) AS hi, min(first_ts) AS fts, {first} AS fv, max(last_ts) AS lts,
                   {last} AS lv
            FROM (SELECT r.*, {key} AS b,
                         sum(sum) OVER w AS gs, sum(n) OVER w AS gn
                  FROM {table} r
                  WHERE attribute_id = $1 AND bucket >= $2 AND bucket < $3
                  WINDOW w AS (PARTITION BY idx, {key})) AS x
            GROUP BY 1, 2"""
    rows = await conn.fetch(sql, attribute_id, start, stop, bucket)
    return {(r[0], r[1]): Summary._make(r[2:]) for r in rows}


# An aggregator's value per bucket: over raw rows, over grouped rollup rows, over one rollup row.
_RAW_VALUE = {
    "avg": "avg(dbl)", "sum": "sum(dbl)", "zimsum": "sum(dbl)", "min": "min(dbl)",
    "mimmin": "min(dbl)", "max": "max(dbl)", "mimmax": "max(dbl)", "count": "count(*)::float8",
    "dev": "stddev_pop(dbl)", "first": "(array_agg(dbl ORDER BY ts))[1]",
    "last": "(array_agg(dbl ORDER BY ts DESC))[1]",
}
_ROLLUP_VALUE = {
    "avg": "sum(sum) / sum(n)", "sum": "sum(sum)", "zimsum": "sum(sum)", "min": "min(min)",
    "mimmin": "min(min)", "max": "max(max)", "mimmax": "max(max)", "count": "sum(n)::float8",
    "dev": "sqrt(greatest(sum(m2 + n * power(sum / n - gs / gn, 2)), 0) / sum(n))",
    "first": "(array_agg(first_v ORDER BY first_ts))[1]",
    "last": "(array_agg(last_v ORDER BY last_ts DESC))[1]",
}
ROW_VALUE = {
    "avg": "sum / n", "sum": "sum", "zimsum": "sum", "min": "min", "mimmin": "min", "max": "max",
    "mimmax": "max", "count": "n::float8", "dev": "sqrt(greatest(m2, 0) / n)", "first": "first_v",
    "last": "last_v",
}


async def fetch_values(
    conn: asyncpg.Connection,
    attribute_id: int,
    *,
    start: int,
    stop: int,
    bucket: int | list[int],
    table: str,
    aggregator: str,
    text: bool = False,
    rounded: bool = False,
) -> dict[int, Columns]:
    """A summary aggregator's value per series and bucket for buckets wholly inside [start, stop),
    computed by PostgreSQL from raw rows or a rollup, as columns per series (bucket starts
    ascending). One row of three arrays comes back (a week of 10 s buckets is 60,480 values):
    the rows are read in index order (bucket, idx), so no sort runs in PostgreSQL, and each
    series' part of the arrays is in time order. With `text`, a long read of a rollup as
    stored brings the values as Texts (PostgreSQL's shortest-exact text, api.dps.dps_from_texts);
    with `rounded` too, an aggregator in ROUNDED may bring them rounded to 15 significant digits
    (Texts.rounded says whether it did)."""
    by_boundaries = isinstance(bucket, list)
    if table == "samples":
        sql = f"""
            SELECT idx, {bucket_sql("ts", boundaries=by_boundaries)} AS b, {_RAW_VALUE[aggregator]}
            FROM samples
            WHERE attribute_id = $1 AND ts >= $2 AND ts < $3 AND dbl IS NOT NULL
            GROUP BY 1, 2"""
    elif not by_boundaries and bucket == dict((t, w) for w, t in ROLLUPS)[table]:
        sql = f"""
            SELECT idx, bucket, {ROW_VALUE[aggregator]} FROM {table}
            WHERE attribute_id = $1 AND bucket >= $2 AND bucket < $3 AND $4::bigint > 0"""
    else:
        key = bucket_sql("bucket", boundaries=by_boundaries)
        window = (f", sum(sum) OVER (PARTITION BY idx, {key}) AS gs, "
                  f"sum(n) OVER (PARTITION BY idx, {key}) AS gn") if aggregator == "dev" else ""
        sql = f"""
            SELECT idx, b, {_ROLLUP_VALUE[aggregator]}
            FROM (SELECT r.*, {key} AS b{window} FROM {table} r
                  WHERE attribute_id = $1 AND bucket >= $2 AND bucket < $3) AS x
            GROUP BY 1, 2"""
    rows_as_stored = table != "samples" and not by_boundaries and bucket == dict((t, w) for w, t in ROLLUPS)[table]
    long_read = rows_as_stored and (stop - start) // bucket > 2000  # type: ignore[operator]  # an int here
    text = text and long_read
    if text and table == "rollup_1m":
        rounded = rounded and aggregator in ROUNDED
        minutes = await fetch_minutes(conn, attribute_id, start=start, stop=stop, aggregator=aggregator,
                                      rounded=rounded)
        if minutes is not None:
            return texts_by_series(*minutes, rounded=rounded) if minutes[0] else {}
    values = "array_to_string(array_agg(v), ',')" if text else "array_agg(v)"
    kept = " FILTER (WHERE v IS NOT NULL)" if text else ""  # array_to_string leaves NULLs out
    query = f"SELECT array_agg(idx){kept}, array_agg(b){kept}, {values} FROM ({sql} ORDER BY 2, 1) AS x(idx, b, v)"
    if long_read:
        # The planner prefers a bitmap scan and a sort (it costs heap pages as random reads);
        # the primary key's index scan hands the rows over in (bucket, idx) order for half
        # the CPU (a week of 10 s rows: 14 ms against 30). BEGIN and the settings: one round trip.
        await conn.execute(f"BEGIN; {_ORDERED_SCAN}")
        try:
            row = await conn.fetchrow(query, attribute_id, start, stop, bucket)
        except Exception:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
    else:  # a few rows: not worth the round trips
        row = await conn.fetchrow(query, attribute_id, start, stop, bucket)
    if row is None or row[0] is None:
        return {}
    if not text:
        return split_series(*row)
    idxs, times, joined = row
    parts = joined.split(",")
    if len(parts) != len(times):  # cannot be: array_to_string leaves out exactly the NULLs
        raise RuntimeError(f"attribute {attribute_id}: {len(times)} buckets but other values")
    return texts_by_series(idxs, times, parts, joined)


# The packed column (rollup_1m_hours, migration 0106) holding what a one-minute bucket answers as
# stored (ROW_VALUE) for each aggregator that has one; dev (a square root) reads rollup_1m.
PACKED = {"avg": "mean", "sum": "sum", "zimsum": "sum", "min": "min", "mimmin": "min", "max": "max",
          "mimmax": "max", "count": "n", "first": "first_v", "last": "last_v"}
# The same to 15 significant digits (seed 002's computed values): packed column, rollup_1m value.
ROUNDED = {"avg": "mean15"}
_HOUR = 3_600_000
_MINUTE = 60_000

# $1 the series key, [$2, $3) the minutes asked for, [$4, $5) its whole hours. Hours packed whole
# (every series' row 60 minutes) and not marked come as packed rows, one text of 60 values each;
# the rest of the range (the edges, hours marked since their seal or with a minute empty, hours
# never sealed) as rollup_1m rows, read by index range per run of such hours.
_MINUTES = """
WITH packed AS (
    SELECT h.idx, h.bucket, h.{column} AS v,
           bool_and(cardinality(h.minute) = 60) OVER (PARTITION BY h.bucket) AS whole
    FROM rollup_1m_hours AS h
    WHERE h.attribute_id = $1 AND h.bucket >= $4 AND h.bucket < $5{series}
      AND NOT EXISTS (SELECT FROM hour_values_dirty AS d WHERE d.attribute_id = $1 AND d.bucket = h.bucket)
), kept AS (
    SELECT idx, bucket, v FROM packed WHERE whole
), uncovered AS (
    SELECT min(lo) AS lo, max(lo) + 3600000 AS hi
    FROM (SELECT lo, lo - 3600000 * row_number() OVER (ORDER BY lo) AS run
          FROM generate_series($4::bigint, $5::bigint - 3600000, 3600000) AS lo
          WHERE lo NOT IN (SELECT bucket FROM kept)) AS hours
    GROUP BY run
    UNION ALL SELECT $2, $4 WHERE $2 < $4
    UNION ALL SELECT $5, $3 WHERE $5 < $3
    ORDER BY 1
), rest AS (
    -- OFFSET 0: an index range per run in run order, so (bucket, idx) order without a sort
    -- (checked by the caller, never trusted), not one join over the whole range
    SELECT r.* FROM uncovered AS u CROSS JOIN LATERAL (
        SELECT idx, bucket, {row_value} AS v FROM rollup_1m
        WHERE attribute_id = $1 AND bucket >= u.lo AND bucket < u.hi{series} OFFSET 0) AS r
)
SELECT (SELECT array_agg(idx ORDER BY bucket, idx) FROM kept),
       (SELECT array_agg(bucket ORDER BY bucket, idx) FROM kept),
       (SELECT string_agg(v, ',' ORDER BY bucket, idx) FROM kept),
       array_agg(idx) FILTER (WHERE v IS NOT NULL), array_agg(bucket) FILTER (WHERE v IS NOT NULL),
       array_to_string(array_agg(v), ',')
FROM rest
"""


async def fetch_minutes(conn: asyncpg.Connection, attribute_id: int, *, start: int, stop: int,
                        aggregator: str, scalar: bool = False, rounded: bool = False
                        ) -> tuple[list[int], list[int], list[str], str] | None:
    """What one-minute buckets in [start, stop) answer as stored, as PostgreSQL writes the values
    (domain.floattext): (series indexes, bucket starts, texts, the texts comma-joined), sealed
    hours from their packed rows (168 rows for a week instead of 10,080), the rest from rollup_1m.
    Times ascend per series unless hours not packed lie between packed ones (texts_by_series
    sorts then). None where the aggregator has no packed column or no whole hour is asked for.
    `scalar`: the series index -1 only (BEMServer). `rounded`: the values to 15 significant
    digits (the caller checks the aggregator is in ROUNDED)."""
    column = ROUNDED[aggregator] if rounded else PACKED.get(aggregator)
    inner_start, inner_stop = -(-start // _HOUR) * _HOUR, stop - stop % _HOUR
    if column is None or aggregator not in PACKED or inner_start >= inner_stop:
        return None
    series = " AND idx = -1" if scalar else ""
    sql = _MINUTES.format(column=column, row_value=ROW_VALUE[aggregator], series=series)
    row = await conn.fetchrow(sql, attribute_id, start, stop, inner_start, inner_stop)
    assert row is not None  # an aggregate without GROUP BY: always one row
    hour_idxs, hours, packed_text, rest_idxs, rest_times, rest_text = row
    idxs: list[int] = []
    times: list[int] = []
    parts: list[str] = []
    texts: list[str] = []
    if hours:
        if hour_idxs.count(hour_idxs[0]) == len(hours) and hours[-1] - hours[0] == (len(hours) - 1) * _HOUR:
            times = list(range(hours[0], hours[-1] + _HOUR, _MINUTE))  # one series, hours in a row
            idxs = [hour_idxs[0]] * len(times)
        else:
            times = [t for hour in hours for t in range(hour, hour + _HOUR, _MINUTE)]
            idxs = [idx for idx in hour_idxs for _ in range(60)]
        parts = packed_text.split(",")
        texts = [packed_text]
        if len(parts) != len(times):  # cannot be: 60 values in each hour kept
            raise RuntimeError(f"attribute {attribute_id}: {len(times)} packed minutes but other values")
    if rest_times:
        rest_parts = rest_text.split(",")
        if len(rest_parts) != len(rest_times):  # cannot be: array_to_string leaves out exactly the NULLs
            raise RuntimeError(f"attribute {attribute_id}: {len(rest_times)} buckets but other values")
        # rollup_1m's exact values rounded as the packed ones are (in SQL, numeric cost 2.5 us a value)
        if rounded and (written := rounded_texts(rest_parts)) is not rest_parts:
            rest_parts, rest_text = written, ",".join(written)
        if times and rest_times[-1] < times[0]:  # the rest lies before the packed hours
            idxs, times, parts, texts = rest_idxs + idxs, rest_times + times, rest_parts + parts, [rest_text, *texts]
        else:
            idxs, times, parts, texts = idxs + rest_idxs, times + rest_times, parts + rest_parts, [*texts, rest_text]
    return idxs, times, parts, ",".join(texts)


def texts_by_series(idxs: list[int], times: list[int], parts: list[str], joined: str, *, rounded: bool = False
                    ) -> dict[int, Columns]:
    """split_series of texts: one series in time order (the normal case) keeps `joined`."""
    if idxs.count(idxs[0]) == len(idxs) and sorted(times) == times:
        return {idxs[0]: (times, Texts(parts, joined=joined, rounded=rounded))}
    series = split_series(idxs, times, list(range(len(parts))))  # positions, to take the texts along
    return {idx: (ts, Texts([parts[i] for i in positions], joined=",".join(parts[i] for i in positions),
                            rounded=rounded))
            for idx, (ts, positions) in series.items()}


# Only for a rollup read row by row, where the index order is the order asked for: with sorts
# off, a plan that still needs one would cost "disabled" and bring in the JIT compiler.
_ORDERED_SCAN = "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; SET LOCAL jit = off"


def split_series(idxs: list[int], times: list[int], values: list[Any]) -> dict[int, Columns]:
    """Rows ordered by (time, idx) as three arrays -> columns per series index, times ascending
    (sorted here should the rows not have come in order)."""
    if idxs.count(idxs[0]) == len(idxs):  # one series (a scalar attribute): the arrays as they are
        return {idxs[0]: _ascending(times, values)}
    split: dict[int, tuple[list[int], list[Any]]] = defaultdict(lambda: ([], []))
    for idx, ts, value in zip(idxs, times, values, strict=True):
        column = split[idx]
        column[0].append(ts)
        column[1].append(value)
    return {idx: _ascending(*column) for idx, column in split.items()}


def _ascending(times: list[int], values: list[Any]) -> Columns:
    """The columns with times strictly ascending (already so in the normal case: checked in C)."""
    ordered = sorted(times)
    if ordered == times:
        return times, values
    pairs = sorted(zip(times, values, strict=True), key=lambda pair: pair[0])
    return [t for t, _ in pairs], [v for _, v in pairs]


# Hyndman-Fan positions (1-based, clamped) as domain.aggregators.quantile computes them:
# R-6 h = (n+1)q, R-7 h = (n-1)q + 1 interpolate between x[floor h] and x[floor h + 1];
# R-3 h = nq - 1/2 takes x[floor h] when h is an even integer, else x[floor h + 1].
_POSITION = {
    6: "(n + 1) * $5::float8",
    7: "(n - 1) * $5::float8 + 1",
    3: "n * $5::float8 - 0.5",
}


# The hours' sorted values: a sealed hour's array as stored, a marked hour's (still being
# written, or a late point came) from its samples (store/samples.py, migration 0104).
# Each marked hour's samples are read by their own index range (LATERAL): the marks come and go
# by the thousand, so the planner's row count of hour_values_dirty is often stale, and a join it
# planned for many marks read the attribute's whole range of samples (0.6 s for a week at 1 Hz
# with no mark left, the first five runs of each percentile query after a bulk load).
_HOURS_SEALED_OR_MARKED = """(
    SELECT h.attribute_id, h.idx, h.bucket, h.v FROM values_1h AS h
    WHERE h.attribute_id = $1 AND h.bucket >= $2 AND h.bucket < $3
      AND NOT EXISTS (SELECT FROM hour_values_dirty AS d WHERE d.attribute_id = h.attribute_id
                      AND d.bucket = h.bucket)
    UNION ALL
    SELECT d.attribute_id, m.idx, d.bucket, m.v
    FROM hour_values_dirty AS d CROSS JOIN LATERAL (
        SELECT s.idx, array_agg(s.dbl ORDER BY s.dbl) AS v FROM samples AS s
        WHERE s.attribute_id = d.attribute_id AND s.ts >= d.bucket AND s.ts < d.bucket + 3600000
          AND s.dbl IS NOT NULL
        GROUP BY s.idx) AS m
    WHERE d.attribute_id = $1 AND d.bucket >= $2 AND d.bucket < $3) AS hours"""


async def fetch_percentiles(
    conn: asyncpg.Connection, attribute_id: int, *, start: int, stop: int, bucket: int | list[int],
    quantile: float, method: int, table: str = "samples",
) -> dict[tuple[int, int], float]:
    """A percentile per (series, bucket) of the values in [start, stop), from raw rows (PostgreSQL
    sorts each bucket) or, for buckets made of whole hours, from the hours' sorted value arrays
    (one hour bucket: its array as stored; wider: the hours' arrays merged). Either way the
    estimator sees the same sorted values, so both give the same answer; only the order
    statistics the estimator needs leave the server."""
    by_boundaries = isinstance(bucket, list)
    if method == 3:
        pick = ("v[least(greatest(CASE WHEN h = floor(h) AND floor(h)::bigint % 2 = 0 "
                "THEN floor(h) ELSE floor(h) + 1 END, 1), n)::int]")
    else:
        pick = ("v[least(greatest(floor(h), 1), n)::int] + (h - floor(h)) * "
                "(v[least(greatest(floor(h) + 1, 1), n)::int] - v[least(greatest(floor(h), 1), n)::int])")
    if table == "samples":
        grouped = f"""
            SELECT idx, {bucket_sql("ts", boundaries=by_boundaries)} AS b, count(*) AS n,
                   array_agg(dbl ORDER BY dbl) AS v
            FROM samples
            WHERE attribute_id = $1 AND ts >= $2 AND ts < $3 AND dbl IS NOT NULL
            GROUP BY 1, 2"""
    elif not by_boundaries and bucket == HOUR_VALUES[0]:
        grouped = f"""
            SELECT idx, bucket AS b, cardinality(v) AS n, v FROM {_HOURS_SEALED_OR_MARKED}
            WHERE attribute_id = $1 AND bucket >= $2 AND bucket < $3 AND $4::bigint > 0"""
    else:
        grouped = f"""
            SELECT idx, {bucket_sql("bucket", boundaries=by_boundaries)} AS b, count(*) AS n,
                   array_agg(x ORDER BY x) AS v
            FROM {_HOURS_SEALED_OR_MARKED} CROSS JOIN LATERAL unnest(v) AS x
            WHERE attribute_id = $1 AND bucket >= $2 AND bucket < $3
            GROUP BY 1, 2"""
    sql = f"""
        SELECT idx, b, {pick}
        FROM (SELECT idx, b, n, v, {_POSITION[method]} AS h FROM ({grouped}) AS grouped) AS positioned"""
    async with conn.transaction():
        await conn.execute("SET LOCAL work_mem = '128MB'; SET LOCAL jit = off")
        rows = await conn.fetch(sql, attribute_id, start, stop, bucket, quantile)
    return {(r[0], r[1]): r[2] for r in rows}


async def fetch_last_readings(conn: asyncpg.Connection, device_ids: list[int], at: int
                              ) -> list[dict[str, Any]]:
    """The last billing-register sample of each device at or before `at` (exact decimals)."""
    rows = await conn.fetch(_READINGS, device_ids, at)
    return [{"device_id": r["device_id"], "value": _decimal_text(r["num"]), "time": r["ts"]}
            for r in rows]


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")
