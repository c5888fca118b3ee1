"""The write side: samples by COPY into a staging table, then one statement that stores each
(attribute, index, time) once and merges the newly stored points into the 10-second, minute and
hour rollups and the hour's sorted values (percentiles); current values move only forward in device
time. One transaction per batch."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from twinbill_twin.store.sample_hours import PACK_SAMPLES

# (attribute_id, idx, ts, num, dbl, txt, quality). `num` travels as the decimal's text
# (str(Decimal), exact, exponent included): PostgreSQL parses it to numeric in C, where asyncpg's
# binary numeric encoder cost the consumer about 1.5 us of Python per point.
SampleRecord = tuple[int, int, int, str | None, float | None, str | None, str | None]
STAGE_COLUMNS = ("attribute_id", "idx", "ts", "num", "dbl", "txt", "quality")

# One round trip before the COPY. The temp table lives as long as the pooled connection
# (emptied at each commit). For this transaction only: work_mem keeps the batch's sorts (dedupe,
# minute grouping) in memory instead of temp files, and hash / merge joins are off so the new-rows
# test below probes the samples key per staged row (the staging table has no statistics: a
# hash anti join would read every sample of the month; the batch's other joins are key lookups).
_STAGE = """
SET LOCAL work_mem = '64MB';
SET LOCAL enable_hashjoin = off;
SET LOCAL enable_mergejoin = off;
CREATE TEMP TABLE IF NOT EXISTS ts_stage (
    attribute_id bigint, idx smallint, ts bigint, num text, dbl double precision,
    txt text, quality text
) ON COMMIT DELETE ROWS;
"""

_ROLLUP_MERGE = """
    INSERT INTO {table} AS r (attribute_id, idx, bucket, n, sum, m2, min, max,
                              first_ts, first_v, last_ts, last_v)
    SELECT * FROM {source} ORDER BY attribute_id, bucket, idx
    ON CONFLICT (attribute_id, idx, bucket) DO UPDATE SET
        n = r.n + EXCLUDED.n,
        sum = r.sum + EXCLUDED.sum,
        m2 = r.m2 + EXCLUDED.m2 + power(EXCLUDED.sum / EXCLUDED.n - r.sum / r.n, 2)
             * r.n * EXCLUDED.n / (r.n + EXCLUDED.n),
        min = LEAST(r.min, EXCLUDED.min),
        max = GREATEST(r.max, EXCLUDED.max),
        first_ts = LEAST(r.first_ts, EXCLUDED.first_ts),
        first_v = CASE WHEN EXCLUDED.first_ts < r.first_ts THEN EXCLUDED.first_v ELSE r.first_v END,
        last_ts = GREATEST(r.last_ts, EXCLUDED.last_ts),
        last_v = CASE WHEN EXCLUDED.last_ts > r.last_ts THEN EXCLUDED.last_v ELSE r.last_v END
    RETURNING 1
"""

# New rows only (INSERT ... RETURNING) reach the rollups: a redelivered message changes nothing,
# and late data lands in its own (old) buckets. The hour partials are merged from the minute
# partials (M2 around the hour's mean), not from the raw rows again.
# Three forms of "new", all storing and merging exactly the same rows: "plain" inserts the batch
# (deduplicated within itself) without looking at what is stored: the unique key's own check is
# the only probe, and a key stored already fails the statement with a unique violation; "fast"
# skips keys already committed (NOT EXISTS probing the key index per staged row, still a plain
# insert: no speculative insertion, measurably cheaper per row than ON CONFLICT); a key inserted
# meanwhile by a concurrent, uncommitted batch fails that one too; "safe" is ON CONFLICT DO
# NOTHING. A batch that fails is rolled back and written again in the next form (write_batch).
_NEW_ROWS = {
    "plain": """
    FROM ts_stage ORDER BY attribute_id, ts, idx""",
    "fast": """
    FROM ts_stage AS st
    WHERE NOT EXISTS (SELECT FROM samples AS s
                      WHERE s.attribute_id = st.attribute_id AND s.ts = st.ts AND s.idx = st.idx)
    ORDER BY attribute_id, ts, idx""",
    "safe": """
    FROM ts_stage ORDER BY attribute_id, ts, idx
    ON CONFLICT DO NOTHING""",
}

# Partials of a coarser bucket merged from finer ones: M2 around the coarse bucket's mean (Chan).
_COARSER = """
    SELECT attribute_id, idx, coarse AS bucket, sum(n)::bigint AS n, sum(sum) AS sum,
           sum(m2 + n * power(sum / n - coarse_sum / coarse_n, 2)) AS m2, min(min) AS min,
           max(max) AS max, min(first_ts) AS first_ts,
           (array_agg(first_v ORDER BY first_ts))[1] AS first_v, max(last_ts) AS last_ts,
           (array_agg(last_v ORDER BY last_ts DESC))[1] AS last_v
    FROM (SELECT g.*, bucket - bucket % {width} AS coarse,
                 sum(sum) OVER w AS coarse_sum, sum(n) OVER w AS coarse_n
          FROM {source} g
          WINDOW w AS (PARTITION BY attribute_id, idx, bucket - bucket % {width})) AS m
    GROUP BY attribute_id, idx, coarse"""

# The hours whose sorted values (values_1h) and packed points (sample_hours) must be built again:
# marked, not merged (migration 0104). DO UPDATE, not DO NOTHING: the upsert waits for a seal that
# holds the mark (and marks again once it is gone), and a seal skips a mark a batch still holds, so
# a batch's samples are always either in the sealed arrays or under a mark. Text points mark their
# hour too: one late into a packed hour sends it back to the samples (migration 0107).
_VALUES_MARK = """
    INSERT INTO hour_values_dirty AS d (attribute_id, bucket)
    SELECT DISTINCT attribute_id, ts - ts % 3600000 FROM inserted ORDER BY 1, 2
    ON CONFLICT (attribute_id, bucket) DO UPDATE SET touched = now()
    RETURNING 1
"""

# A double to 15 significant digits, as Python's float(f"{v:.15g}"): float8 -> numeric writes
# `%.15g`, numeric -> float8 reads it back. Past 1e300 (where the rounding can overflow) and below
# 1e-300 (subnormals) the double stays as it is: its text then holds an exponent, which
# api.dps.dps_from_texts reads back and writes from the double.
ROUND15 = ("CASE WHEN abs({v}) BETWEEN 1e-300::float8 AND 1e300::float8 THEN ({v})::numeric::float8 "
           "ELSE {v} END")

# An hour's minute partials packed (rollup_1m_hours, migration 0106) from its rollup_1m rows: the
# minutes, then each value column as its texts comma-joined (what readers join into answers).
# Only hours whose every series has all 60 minutes (the only ones readers take from here: a
# 15-minute meter's hours would cost space and never be read).
_PACKED_TEXT = "string_agg(({value})::text, ',' ORDER BY r.bucket)"
PACK_MINUTES = f"""
    SELECT attribute_id, idx, hour, minute, n, sum, mean, mean15, min, max, first_v, last_v
    FROM (SELECT r.attribute_id, r.idx, r.bucket - r.bucket % 3600000 AS hour,
                 array_agg((r.bucket % 3600000 / 60000)::smallint ORDER BY r.bucket) AS minute,
                 {", ".join(_PACKED_TEXT.format(value=value) + " AS " + name for value, name in (
                     ("r.n", "n"), ("r.sum", "sum"), ("r.sum / r.n", "mean"),
                     (ROUND15.format(v="r.sum / r.n"), "mean15"), ("r.min", "min"), ("r.max", "max"),
                     ("r.first_v", "first_v"), ("r.last_v", "last_v")))},
                 bool_and(count(*) = 60) OVER (PARTITION BY r.attribute_id, r.bucket - r.bucket % 3600000)
                     AS whole
          FROM {{hours}} JOIN rollup_1m AS r ON r.attribute_id = hours.attribute_id
               AND r.bucket >= hours.bucket AND r.bucket < hours.bucket + 3600000
          GROUP BY 1, 2, 3) AS hour_rows
    WHERE whole
    ON CONFLICT (attribute_id, bucket, idx) DO UPDATE SET
        minute = EXCLUDED.minute, n = EXCLUDED.n, sum = EXCLUDED.sum, mean = EXCLUDED.mean,
        mean15 = EXCLUDED.mean15, min = EXCLUDED.min, max = EXCLUDED.max, first_v = EXCLUDED.first_v,
        last_v = EXCLUDED.last_v"""
PACKED_COLUMNS = "(attribute_id, idx, bucket, minute, n, sum, mean, mean15, min, max, first_v, last_v)"

# Build the marked hours that ended at least `grace` ago (a batch's device times are mostly
# the last few seconds): their sorted values and packed points from the samples and their packed
# minutes from rollup_1m, replacing what was there; the marks go in the same statement (one
# snapshot: what a mark covered is in all of them, or the hour is marked again).
SEAL_HOURS = f"""
WITH due AS (
    DELETE FROM hour_values_dirty WHERE (attribute_id, bucket) IN (
        SELECT attribute_id, bucket FROM hour_values_dirty WHERE bucket <= $1::bigint
        ORDER BY bucket, attribute_id LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING attribute_id, bucket
), packed AS (
    INSERT INTO rollup_1m_hours {PACKED_COLUMNS}{PACK_MINUTES.format(hours="due AS hours")}
    RETURNING attribute_id, bucket
), unpacked AS (  -- a due hour not packed whole now (a late point of a new series) keeps no row
    DELETE FROM rollup_1m_hours AS h USING due
    WHERE h.attribute_id = due.attribute_id AND h.bucket = due.bucket
      AND NOT EXISTS (SELECT FROM packed WHERE packed.attribute_id = h.attribute_id AND packed.bucket = h.bucket)
), points_packed AS ({PACK_SAMPLES.format(hours="due AS hours")}
), points_unpacked AS (  -- a due hour (or series) not packed now (a text point came) keeps no row
    DELETE FROM sample_hours AS h USING due
    WHERE h.attribute_id = due.attribute_id AND h.bucket = due.bucket
      AND NOT EXISTS (SELECT FROM points_packed AS p
                      WHERE p.attribute_id = h.attribute_id AND p.bucket = h.bucket AND p.idx = h.idx)
), built AS (
    INSERT INTO values_1h (attribute_id, idx, bucket, v)
    SELECT s.attribute_id, s.idx, due.bucket, array_agg(s.dbl ORDER BY s.dbl)
    FROM due JOIN samples AS s ON s.attribute_id = due.attribute_id
         AND s.ts >= due.bucket AND s.ts < due.bucket + 3600000
    WHERE s.dbl IS NOT NULL
    GROUP BY 1, 2, 3
    ON CONFLICT (attribute_id, bucket, idx) DO UPDATE SET v = EXCLUDED.v
    RETURNING 1
)
SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM built), (SELECT count(*) FROM packed)
"""

_STORE_TEMPLATE = """
WITH inserted AS (
    INSERT INTO samples (attribute_id, idx, ts, num, dbl, txt, quality)
    SELECT DISTINCT ON (attribute_id, ts, idx) attribute_id, idx, ts, num::numeric, dbl, txt,
           quality{new_rows}
    RETURNING attribute_id, idx, ts, dbl
), ten_groups AS (
    SELECT attribute_id, idx, ts - ts % 10000 AS bucket, count(*) AS n, sum(dbl) AS sum,
           coalesce(var_pop(dbl), 0) * count(*) AS m2, min(dbl) AS min, max(dbl) AS max,
           min(ts) AS first_ts, (array_agg(dbl ORDER BY ts))[1] AS first_v,
           max(ts) AS last_ts, (array_agg(dbl ORDER BY ts DESC))[1] AS last_v
    FROM inserted WHERE dbl IS NOT NULL GROUP BY 1, 2, 3
), minute_groups AS ({minute_groups}
), hour_groups AS ({hour_groups}
), tens AS ({tens}
), minutes AS ({minutes}
), hours AS ({hours}
), hour_values AS ({values}
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM minutes), (SELECT count(*) FROM hours),
       (SELECT count(*) FROM tens), (SELECT count(*) FROM hour_values)
"""
_MERGES = {"minute_groups": _COARSER.format(width=60000, source="ten_groups"),
           "hour_groups": _COARSER.format(width=3600000, source="minute_groups"),
           "tens": _ROLLUP_MERGE.format(table="rollup_10s", source="ten_groups"),
           "minutes": _ROLLUP_MERGE.format(table="rollup_1m", source="minute_groups"),
           "hours": _ROLLUP_MERGE.format(table="rollup_1h", source="hour_groups"),
           "values": _VALUES_MARK}
_STORES = {form: _STORE_TEMPLATE.format(new_rows=rows, **_MERGES) for form, rows in _NEW_ROWS.items()}
# The order write_batch tries them in: a batch expected to be new starts without the probe.
_FORMS = ("plain", "fast", "safe")

_EPOCH = "'epoch'::timestamptz + {col} * interval '1 millisecond'"

# After the samples, in one statement (one round trip): each attribute's current value where the
# new sample is newer, then devices' last_seen and instances' atime moved forward to the arrival.
# Device rows are locked in id order before they are updated, here and in the status endpoint
# (store/internal.py), so the consumer's batches and the ingest gateway's status posts always
# take them in one order and cannot deadlock. An UPDATE ... FROM locks rows in whatever order its
# plan visits them (an ORDER BY in the FROM list does not fix that); a SELECT ... ORDER BY ... FOR
# NO KEY UPDATE locks them as they come out of the sort. `seen` waits for all of `locked`: its
# condition on it refers to no row, so PostgreSQL checks it once, before the UPDATE reads any
# (a one-time filter), and the select list runs `currents`, `seen`, `touched` in that order.
_TOUCH = f"""
WITH currents AS (
    UPDATE attributes AS a
    SET value = u.value, stime = {_EPOCH.format(col="u.ts")}, atime = {_EPOCH.format(col="u.arrived")}
    FROM (SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[])
          AS t(id, value, ts, arrived) ORDER BY id) AS u
    WHERE a.id = u.id AND (a.stime IS NULL OR a.stime < {_EPOCH.format(col="u.ts")})
    RETURNING 1
), locked AS (
    SELECT id FROM devices WHERE id = ANY($5::bigint[]) ORDER BY id FOR NO KEY UPDATE
), seen AS (
    UPDATE devices AS d SET last_seen = {_EPOCH.format(col="u.arrived")}
    FROM (SELECT * FROM unnest($5::bigint[], $6::bigint[]) AS t(id, arrived) ORDER BY id) AS u
    WHERE (SELECT count(*) FROM locked) >= 0
      AND d.id = u.id AND (d.last_seen IS NULL OR d.last_seen < {_EPOCH.format(col="u.arrived")})
    RETURNING 1
), touched AS (
    UPDATE instances AS i SET atime = {_EPOCH.format(col="u.arrived")}
    FROM (SELECT * FROM unnest($7::bigint[], $8::bigint[]) AS t(id, arrived) ORDER BY id) AS u
    WHERE i.id = u.id AND (i.atime IS NULL OR i.atime < {_EPOCH.format(col="u.arrived")})
    RETURNING 1
)
SELECT (SELECT count(*) FROM currents), (SELECT count(*) FROM seen), (SELECT count(*) FROM touched)
"""

MONTHLY_TABLES = ("samples", "rollup_10s", "rollup_1m", "values_1h", "sample_hours")
# Every table that holds a series' points or their rollups (a series deleted leaves none behind).
SERIES_TABLES = ("samples", "rollup_10s", "rollup_1m", "rollup_1h", "values_1h", "rollup_1m_hours", "sample_hours")
_DAY_MS = 86_400_000


@dataclass(frozen=True)
class CurrentValue:
    """The newest sample of one attribute in a batch: its value text, device time, arrival."""

    attribute_id: int
    value: str
    ts: int
    arrived: int


@dataclass(frozen=True)
class WriteResult:
    """What one batch stored: new samples (repeats excluded) and rollup rows touched."""

    stored: int
    minute_rows: int
    hour_rows: int
    ten_second_rows: int = 0
    hour_value_rows: int = 0
    form: str = "fast"  # how new rows were told apart ("plain", "fast", "safe": see _NEW_ROWS)


def month_of(ts: int) -> tuple[int, int]:
    """(year, month) in UTC of an epoch-ms time: the partition that holds it."""
    moment = datetime.fromtimestamp(ts / 1000, UTC)
    return moment.year, moment.month


def month_bounds(year: int, month: int) -> tuple[int, int]:
    """[start, end) of a UTC month in epoch ms."""
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return int(start.timestamp()) * 1000, int(end.timestamp()) * 1000


class PartitionManager:
    """Creates monthly partitions on demand (once per process per month, race-safe)."""

    def __init__(self) -> None:
        self._known: set[tuple[str, int, int]] = set()

    async def ensure(self, conn: asyncpg.Connection, months: Iterable[tuple[int, int]]) -> None:
        """Make sure every table has a partition for each month (own short transactions)."""
        for year, month in sorted(set(months)):
            for table in MONTHLY_TABLES:
                if (table, year, month) in self._known:
                    continue
                start, end = month_bounds(year, month)
                name = f"{table}_p{year:04d}{month:02d}"
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || $1))", name)
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} "
                        f"FOR VALUES FROM ({start}) TO ({end})"
                    )
                self._known.add((table, year, month))

    def forget(self, months: Iterable[tuple[int, int]]) -> None:
        """Forget these months (their partitions were dropped by raw retention meanwhile)."""
        for year, month in months:
            for table in MONTHLY_TABLES:
                self._known.discard((table, year, month))


async def seal_hours(conn: asyncpg.Connection, *, now_ms: int, grace_ms: int = 120_000,
                     limit: int = 500) -> tuple[int, int]:
    """Build up to `limit` marked hours that ended `grace_ms` before `now_ms`: (hours sealed,
    arrays written). Replicas share the marks (SKIP LOCKED).

    One snapshot for the marks and the samples (REPEATABLE READ): under READ COMMITTED a batch
    that committed between the statement's snapshot and its lock on a mark had its mark locked
    and deleted (the lock follows the newest row version) while its samples, newer than the
    snapshot, were left out of the arrays: those points were then in no sealed array and under
    no mark. Now such a mark is a serialization failure, and the turn is tried again later with
    the marks kept: (0, 0)."""
    # the last hour start that is due: its hour ended `grace_ms` ago (an index range on bucket);
    # the packed texts as every reader writes doubles, whatever this session's setting; the
    # hours' samples sorted in memory (500 hours at 1 Hz are 1.8 million: a temp file at 4 MB)
    try:
        async with conn.transaction(isolation="repeatable_read"):
            await conn.execute("SET LOCAL extra_float_digits = 1; SET LOCAL work_mem = '64MB'")
            row = await conn.fetchrow(SEAL_HOURS, now_ms - 3_600_000 - grace_ms, limit)
    except asyncpg.SerializationError:
        return 0, 0
    assert row is not None
    return int(row[0]), int(row[1])


async def write_batch(
    conn: asyncpg.Connection,
    *,
    samples: Sequence[SampleRecord],
    currents: Sequence[CurrentValue],
    devices: dict[int, int],
    instances: dict[int, int],
    partitions: PartitionManager,
    expect_new: bool = False,
) -> WriteResult:
    """Store one batch in one transaction; the caller acks only after this returns.

    `expect_new`: the batch is most likely all new points (a live stream), so it is first
    inserted without probing for stored keys; if one is stored after all, the transaction is
    rolled back and the batch written again with the probe (a redelivery costs a wasted try)."""
    # a UTC day never straddles months: one month_of per distinct day, not per sample
    days = {record[2] // _DAY_MS for record in samples}
    months = {month_of(day * _DAY_MS) for day in days}
    forms: tuple[str, ...] = _FORMS if expect_new else _FORMS[1:]
    dropped_partitions = False
    while True:
        await partitions.ensure(conn, months)
        try:
            return await _write_once(conn, samples, currents, devices, instances, form=forms[0])
        except asyncpg.UniqueViolationError:
            if len(forms) == 1:
                raise
            forms = forms[1:]  # a key stored already (or being stored): the next, safer form
        except asyncpg.CheckViolationError as err:
            # a month's partitions dropped by raw retention in another process: made again (late
            # points are stored, and roll up; the next retention pass deletes the raw rows)
            if dropped_partitions or "no partition" not in str(err):
                raise
            dropped_partitions = True
            partitions.forget(months)


async def _write_once(conn: asyncpg.Connection, samples: Sequence[SampleRecord], currents: Sequence[CurrentValue],
                      devices: dict[int, int], instances: dict[int, int], *, form: str) -> WriteResult:
    async with conn.transaction():  # a savepoint in a caller's transaction
        await conn.execute(_STAGE)
        await conn.copy_records_to_table("ts_stage", records=samples, columns=STAGE_COLUMNS)
        row = await conn.fetchrow(_STORES[form])
        stored, minutes, hours, tens, values = row if row is not None else (0, 0, 0, 0, 0)
        if currents or devices or instances:
            ordered = sorted(currents, key=lambda c: c.attribute_id)
            device_ids, instance_ids = sorted(devices), sorted(instances)
            await conn.fetchrow(_TOUCH, [c.attribute_id for c in ordered], [c.value for c in ordered],
                                [c.ts for c in ordered], [c.arrived for c in ordered],
                                device_ids, [devices[i] for i in device_ids],
                                instance_ids, [instances[i] for i in instance_ids])
    return WriteResult(stored, minutes, hours, tens, values, form=form)
