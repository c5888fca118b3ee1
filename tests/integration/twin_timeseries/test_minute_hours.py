"""Sealed hours' packed minutes (rollup_1m_hours, migration 0106): built from rollup_1m when an
hour is sealed, read for one-minute buckets over more than 2,000 minutes (seed 002 and BEMServer)
while the hour is unmarked and packed whole; every answer equals the rollup_1m path's byte for
byte, through late points into a sealed hour, a minute left empty, array elements, deletion of
points and series, and raw retention (which keeps the packed minutes, like rollup_1m)."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from twinbill_twin.bemserver.aggregates import fetch_aggregates
from twinbill_twin.bemserver.data import delete_points
from twinbill_twin.bemserver.payloads import Buckets
from twinbill_twin.store import series as series_store
from twinbill_twin.store.retention import apply_retention
from twinbill_twin.store.samples import SERIES_TABLES, SampleRecord

from .conftest import make_device, seal_all, write_samples

PATH = "/dt/open/v1/instance/attribute/{}"
HOUR = 3_600_000
T0 = 1_774_742_400_000  # 2026-03-29T00:00:00Z
GAP = T0 + 5 * HOUR + 17 * 60_000  # a minute without points: its hour is not packed whole
DOWNSAMPLES = ("1m-avg", "1m-sum", "1m-zimsum", "1m-min", "1m-max", "1m-mimmax", "1m-count", "1m-first",
               "1m-last", "1m-dev")


def quarter(rng: random.Random) -> Decimal:
    return Decimal(rng.randrange(-4000, 4000)) / 4 + Decimal("0.1")


async def write(pool: asyncpg.Pool, records: list[SampleRecord]) -> None:
    await write_samples(pool, records, batch=700)


def every_five_seconds(attribute_id: int, rng: random.Random, *, hours: int, idx: int = -1) -> list[SampleRecord]:
    records: list[SampleRecord] = []
    for ts in range(T0, T0 + hours * HOUR, 5_000):
        if not GAP <= ts < GAP + 60_000:
            value = quarter(rng)
            records.append((attribute_id, idx, ts, str(value), float(value), None, None))
    rng.shuffle(records)
    return records


async def bodies(twin: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch, attribute_id: int,
                 params: dict[str, str]) -> tuple[str, str]:
    """The answer as the service gives it, and with the packed minutes turned off (rollup_1m)."""
    fast = await twin.get(PATH.format(attribute_id), params=params)
    assert fast.status == 200, await fast.text()
    with monkeypatch.context() as unpacked:
        unpacked.setattr(series_store, "PACKED", {})
        slow = await twin.get(PATH.format(attribute_id), params=params)
    assert slow.status == 200, await slow.text()
    return await fast.text(), await slow.text()


async def assert_packed_equal_rollup(pool: asyncpg.Pool, attribute_id: int) -> None:
    """Each packed hour holds its rollup_1m rows' values, minute by minute."""
    rows = await pool.fetch("""
        SELECT r.idx, r.bucket - r.bucket % 3600000 AS hour,
               array_agg((r.bucket % 3600000 / 60000)::smallint ORDER BY r.bucket) AS minute,
               array_agg(r.n ORDER BY r.bucket) AS n, array_agg(r.sum ORDER BY r.bucket) AS sum,
               array_agg(r.sum / r.n ORDER BY r.bucket) AS mean,
               array_agg((r.sum / r.n)::numeric::float8 ORDER BY r.bucket) AS mean15,
               array_agg(r.min ORDER BY r.bucket) AS min, array_agg(r.max ORDER BY r.bucket) AS max,
               array_agg(r.first_v ORDER BY r.bucket) AS first_v, array_agg(r.last_v ORDER BY r.bucket) AS last_v
        FROM rollup_1m AS r WHERE r.attribute_id = $1 GROUP BY 1, 2 ORDER BY 2, 1""", attribute_id)
    whole_hours = {hour for hour in {r["hour"] for r in rows} if all(len(r["minute"]) == 60 for r in rows
                                                                    if r["hour"] == hour)}
    rows = [r for r in rows if r["hour"] in whole_hours]  # only hours whose every series is whole
    packed = await pool.fetch("SELECT idx, bucket AS hour, minute, n, sum, mean, mean15, min, max, first_v, last_v "
                              "FROM rollup_1m_hours WHERE attribute_id = $1 ORDER BY bucket, idx", attribute_id)
    # the texts read back are the doubles (shortest exact), the counts the integers
    packed_values = [{**dict(r), **{k: [(int if k == "n" else float)(t) for t in r[k].split(",")]
                                    for k in ("n", "sum", "mean", "mean15", "min", "max", "first_v", "last_v")}}
                     for r in packed]
    assert packed_values == [dict(r) for r in rows]
    # and written as PostgreSQL writes them (what the answers are made of)
    texts = await pool.fetch(
        "SELECT r.bucket - r.bucket % 3600000, array_to_string(array_agg(r.sum ORDER BY r.bucket), ',') "
        "FROM rollup_1m AS r WHERE r.attribute_id = $1 GROUP BY r.idx, r.bucket - r.bucket % 3600000 "
        "ORDER BY r.bucket - r.bucket % 3600000, r.idx", attribute_id)
    assert [r[1] for r in texts if r[0] in whole_hours] == [r["sum"] for r in packed]


async def test_one_minute_buckets_from_sealed_hours_equal_the_minute_rollup_through_late_points(
    twin: TestClient[Any, Any], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sealed hour is read from its packed row (proved by changing the row behind the store's
    back), a late point sends its hour back to rollup_1m until the next seal rebuilds it, and
    every answer equals the rollup_1m path's, for each aggregator, aligned and cut ranges."""
    device = await make_device(pool, timezone="UTC")
    humidity = device.attributes["humidity"]
    await write(pool, every_five_seconds(humidity, random.Random(106), hours=36))
    await seal_all(pool)
    await assert_packed_equal_rollup(pool, humidity)
    # 36 hours, one without a minute: not packed (read from rollup_1m)
    assert await pool.fetchval("SELECT count(*) FROM rollup_1m_hours WHERE attribute_id = $1", humidity) == 35
    week = {"start": str(T0), "end": str(T0 + 36 * HOUR - 1)}
    cut = {"start": str(T0 + 1_234_567), "end": str(T0 + 36 * HOUR - 7_654_321)}
    for span in (week, cut):
        for downsample in DOWNSAMPLES:
            for aggregator in ("none", "avg"):
                fast, slow = await bodies(twin, monkeypatch, humidity,
                                          {**span, "downsample": downsample, "aggregator": aggregator})
                assert fast == slow, (span, downsample, aggregator)

    # BEMServer's one-minute aggregates, over the hours and cut inside the first and last
    for start, end in ((T0, T0 + 36 * HOUR), (T0 + 1_260_000, T0 + 36 * HOUR - 7_620_000)):
        grid = Buckets(list(range(start, end, 60_000)), end, 60_000)
        for aggregation in ("avg", "sum", "min", "max", "count"):
            async with pool.acquire() as conn:
                fast_rows = await fetch_aggregates(conn, aggregation, grid, [humidity])
                with monkeypatch.context() as unpacked:
                    unpacked.setattr(series_store, "PACKED", {})
                    slow_rows = await fetch_aggregates(conn, aggregation, grid, [humidity])
            assert fast_rows == slow_rows and len(fast_rows[0][1]) == len(grid.starts) - 1, aggregation

    # the packed row is what is read: a changed mean (to 15 digits, seed 002's) shows (36 * 60
    # minutes, less the empty one)
    hour = T0 + 7 * HOUR
    await pool.execute("UPDATE rollup_1m_hours SET mean15 = array_to_string(array_fill(7, ARRAY[60]), ',') "
                       "WHERE attribute_id = $1 AND bucket = $2", humidity, hour)
    answer = await (await twin.get(PATH.format(humidity), params={**week, "downsample": "1m-avg"})).json()
    [series] = answer["data"]["value"]
    assert len(series["dps"]) == 36 * 60 - 1
    assert {series["dps"][str((hour + m * 60_000) // 1000)] for m in range(60)} == {7}
    # a late point into that sealed hour marks it: rollup_1m answers until the hour is sealed again
    await write(pool, [(humidity, -1, hour + 1, "1000.5", 1000.5, None, None)])
    fast, slow = await bodies(twin, monkeypatch, humidity, {**week, "downsample": "1m-avg"})
    assert fast == slow
    await seal_all(pool)
    await assert_packed_equal_rollup(pool, humidity)
    fast, slow = await bodies(twin, monkeypatch, humidity, {**week, "downsample": "1m-max"})
    assert fast == slow and f'"{hour // 1000}": 1000.5' in fast


async def test_array_elements_and_an_hour_not_whole_read_the_minute_rollup_where_needed(
    twin: TestClient[Any, Any], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two array elements (one missing an hour, both missing a minute): per element, the same
    answers as rollup_1m alone, also combined across elements."""
    device = await make_device(pool, timezone="Asia/Kolkata")
    temps = device.attributes["temps"]
    rng = random.Random(61)
    records = every_five_seconds(temps, rng, hours=35, idx=0) + [
        r for r in every_five_seconds(temps, rng, hours=35, idx=1) if not T0 + 9 * HOUR <= r[2] < T0 + 10 * HOUR]
    await write(pool, records)
    await seal_all(pool)
    await assert_packed_equal_rollup(pool, temps)
    span = {"start": str(T0 + 1_800_000), "end": str(T0 + 35 * HOUR - 1)}  # Kolkata: half hours
    gap_hour = "SELECT count(*) FROM rollup_1m_hours WHERE attribute_id = $1 AND bucket = $2"
    assert await pool.fetchval(gap_hour, temps, T0 + 9 * HOUR) == 1  # element 0 only, whole

    async def compare() -> None:
        for downsample in ("1m-avg", "1m-count", "1m-last"):
            for aggregator in ("none", "sum"):
                fast, slow = await bodies(twin, monkeypatch, temps,
                                          {**span, "downsample": downsample, "aggregator": aggregator})
                assert fast == slow, (downsample, aggregator)

    await compare()
    # a late point of element 1 into that sealed hour: not whole for every element any more,
    # so the next seal leaves the hour unpacked (rollup_1m answers it)
    await write(pool, [(temps, 1, T0 + 9 * HOUR + 61_000, "3.5", 3.5, None, None)])
    await seal_all(pool)
    await assert_packed_equal_rollup(pool, temps)
    assert await pool.fetchval(gap_hour, temps, T0 + 9 * HOUR) == 0
    await compare()


async def test_deleted_points_and_series_and_raw_retention_keep_the_packed_minutes_true(
    twin: TestClient[Any, Any], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Points deleted (BEMServer's delete) repack their hours from the rebuilt minute rollup (an
    hour emptied has no packed row left); raw retention keeps the packed minutes (minute grade)
    and their answers; a deleted series leaves none."""
    device = await make_device(pool, timezone="UTC")
    humidity = device.attributes["humidity"]
    await write(pool, every_five_seconds(humidity, random.Random(7), hours=36))
    await seal_all(pool)
    span = {"start": str(T0), "end": str(T0 + 36 * HOUR - 1), "downsample": "1m-avg"}
    async with pool.acquire() as conn, conn.transaction():
        await delete_points(conn, [humidity], T0 + 3 * HOUR + 90_000, T0 + 4 * HOUR)   # most of hour 3
        await delete_points(conn, [humidity], T0 + 20 * HOUR, T0 + 21 * HOUR)          # all of hour 20
    await assert_packed_equal_rollup(pool, humidity)
    assert not await pool.fetchval("SELECT count(*) FROM rollup_1m_hours WHERE attribute_id = $1 AND bucket = $2",
                                   humidity, T0 + 20 * HOUR)
    before, slow = await bodies(twin, monkeypatch, humidity, span)
    assert before == slow

    project = await pool.fetchval("SELECT project_id FROM devices WHERE id = $1", device.id)
    await pool.execute("INSERT INTO ts_retention (project_id, raw_days) VALUES ($1, 1)", project)
    async with pool.acquire() as conn:
        done = await apply_retention(conn, now_ms=T0 + 40 * 86_400_000, default_days=None)
    assert done.projects == 1
    assert not await pool.fetchval("SELECT count(*) FROM samples WHERE attribute_id = $1", humidity)
    # 36 hours, less the one with an empty minute, the emptied one, the one mostly deleted
    assert await pool.fetchval("SELECT count(*) FROM rollup_1m_hours WHERE attribute_id = $1", humidity) == 33
    after, slow = await bodies(twin, monkeypatch, humidity, span)
    assert after == before == slow

    assert "rollup_1m_hours" in SERIES_TABLES
    for table in SERIES_TABLES:  # as BEMServer's series delete does
        await pool.execute(f"DELETE FROM {table} WHERE attribute_id = $1", humidity)
    assert not await pool.fetchval("SELECT count(*) FROM rollup_1m_hours WHERE attribute_id = $1", humidity)
