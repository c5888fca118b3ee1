"""Partitions made ahead and raw retention: raw-grade data before a project's horizon goes (rows
or whole month partitions) while the minute and hour rollups stay; queries over the horizon
answer from the rollups where they can and name `start` where they can't."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from decimal import Decimal
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from twinbill_twin.store.retention import apply_retention, create_ahead, horizon, months_ahead
from twinbill_twin.store.samples import PartitionManager, SampleRecord, write_batch
from twinbill_twin.timeseries import upkeep

from .conftest import make_device, wait_for

PATH = "/dt/open/v1/instance/attribute/{}"
HOUR = 3_600_000
DAY = 86_400_000
NOW = 1_796_000_000_000  # 2026-11-30T...Z, a fixed "now" for the passes


async def write(pool: asyncpg.Pool, attribute_id: int, points: list[tuple[int, Decimal]],
                partitions: PartitionManager | None = None) -> None:
    records: list[SampleRecord] = [(attribute_id, -1, ts, str(v), float(v), None, None) for ts, v in points]
    async with pool.acquire() as conn:
        await write_batch(conn, samples=records, currents=[], devices={}, instances={},
                          partitions=partitions or PartitionManager())


async def counts(pool: asyncpg.Pool, attribute_id: int, before: int) -> dict[str, int]:
    found = {}
    for table, column in (("samples", "ts"), ("rollup_10s", "bucket"), ("values_1h", "bucket"),
                          ("rollup_1m", "bucket"), ("rollup_1h", "bucket")):
        found[table] = await pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE attribute_id = $1 AND {column} < $2", attribute_id, before)
    return found


async def dps(twin: TestClient[Any, Any], attribute_id: int, **params: str) -> tuple[int, Any]:
    resp = await twin.get(PATH.format(attribute_id), params=params)
    body = await resp.json()
    return resp.status, body


async def test_a_project_retention_deletes_raw_grade_data_and_queries_say_where_rollups_cannot_answer(
    twin: TestClient[Any, Any], pool: asyncpg.Pool
) -> None:
    kept = await make_device(pool, timezone="UTC")
    forever = await make_device(pool, timezone="UTC")
    rng = random.Random(5)
    start = NOW - 5 * DAY - NOW % HOUR
    points = [(start + i * 20_000, Decimal(rng.randrange(0, 4000)) / 4) for i in range(5 * 24 * 180)]
    for device in (kept, forever):
        await write(pool, device.attributes["humidity"], points)
    humidity = kept.attributes["humidity"]
    project = await pool.fetchval("SELECT project_id FROM devices WHERE id = $1", kept.id)
    await pool.execute("INSERT INTO ts_retention (project_id, raw_days) VALUES ($1, 2)", project)
    week = {"start": str(start), "end": str(NOW - NOW % HOUR - 1)}
    answers = {ds: await dps(twin, humidity, **week, downsample=ds)
               for ds in ("1h-avg", "1m-max", "1h-dev", "0all-count")}

    async with pool.acquire() as conn:
        done = await apply_retention(conn, now_ms=NOW, default_days=None)
    cut = horizon(NOW, 2)
    assert cut % HOUR == 0 and NOW - 2 * DAY - HOUR < cut <= NOW - 2 * DAY
    assert done.projects == 1 and done.rows > 0 and done.dropped == []
    assert await pool.fetchval("SELECT raw_kept_from FROM ts_retention WHERE project_id = $1", project) == cut
    gone = await counts(pool, humidity, cut)
    assert gone["samples"] == gone["rollup_10s"] == gone["values_1h"] == 0
    assert gone["rollup_1m"] == (cut - start) // 60_000 and gone["rollup_1h"] == (cut - start) // HOUR
    untouched = await counts(pool, forever.attributes["humidity"], cut)
    assert untouched["samples"] == (cut - start) // 20_000
    assert (await counts(pool, humidity, NOW))["samples"] == len(points) - (cut - start) // 20_000

    # whole minutes / hours over the horizon: the rollups answer, exactly as before
    for downsample, before in answers.items():
        assert before[0] == 200
        assert await dps(twin, humidity, **week, downsample=downsample) == before, downsample
    # raw rows, 10 s buckets, percentiles and edge buckets before the horizon: 400 naming start
    for params in ({**week}, {**week, "downsample": "10s-avg"}, {**week, "downsample": "1h-p95"},
                   {"start": str(start + 1234), "end": week["end"], "downsample": "1h-avg"}):
        status, body = await dps(twin, humidity, **params)
        assert status == 400, params
        assert "raw retention" in " ".join(body["data"]["errors"]["start"]), body
    # from the horizon on, everything answers as it would have
    status, body = await dps(twin, humidity, start=str(cut), end=str(cut + HOUR - 1))
    assert status == 200 and len(body["data"]["value"][0]["dps"]) == 180
    status, body = await dps(twin, humidity, start=str(cut), end=week["end"], downsample="1h-p95")
    assert status == 200 and len(body["data"]["value"][0]["dps"]) == (NOW - NOW % HOUR - cut) // HOUR

    # a late point before the horizon still rolls up (and goes at the next pass)
    minute_before = await pool.fetchval("SELECT n FROM rollup_1m WHERE attribute_id = $1 AND bucket = $2",
                                        humidity, start)
    await write(pool, humidity, [(start + 5_000, Decimal(1))])
    assert await pool.fetchval("SELECT n FROM rollup_1m WHERE attribute_id = $1 AND bucket = $2",
                               humidity, start) == minute_before + 1
    async with pool.acquire() as conn:
        again = await apply_retention(conn, now_ms=NOW + 1, default_days=None)
    assert again.projects == 0  # the horizon did not move: the late row stays until it does
    async with pool.acquire() as conn:
        later = await apply_retention(conn, now_ms=NOW + HOUR, default_days=None)
    assert later.projects == 1 and (await counts(pool, humidity, cut))["samples"] == 0


async def test_partitions_are_made_ahead_and_whole_old_months_dropped_when_every_project_has_a_horizon(
    pool: asyncpg.Pool,
) -> None:
    partitions = PartitionManager()
    async with pool.acquire() as conn:
        await create_ahead(conn, partitions, now_ms=NOW, months=2)
    names = {r["relname"] for r in await pool.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'")}
    assert months_ahead(NOW, 2) == [(2026, 11), (2026, 12), (2027, 1)]
    for table in ("samples", "rollup_10s", "rollup_1m", "values_1h"):
        assert {f"{table}_p202611", f"{table}_p202612", f"{table}_p202701"} <= names

    device = await make_device(pool, timezone="UTC")
    humidity = device.attributes["humidity"]
    old = 1_788_220_800_000  # 2026-09-01T00:00:00Z: a month wholly before every horizon
    await write(pool, humidity, [(old + i * 1000, Decimal(i)) for i in range(120)], partitions)
    async with pool.acquire() as conn:
        done = await apply_retention(conn, now_ms=NOW, default_days=30)
    assert {"samples_p202609", "rollup_10s_p202609", "values_1h_p202609"} <= set(done.dropped)
    assert "rollup_1m_p202609" not in done.dropped
    assert await pool.fetchval("SELECT sum(n) FROM rollup_1m WHERE attribute_id = $1", humidity) == 120
    # a late point for the dropped month: this process's partition cache is stale, the write
    # makes the partitions again and the point rolls up
    await write(pool, humidity, [(old + 500_000, Decimal(7))], partitions)
    assert await pool.fetchval("SELECT count(*) FROM samples WHERE attribute_id = $1", humidity) == 1
    assert await pool.fetchval("SELECT sum(n) FROM rollup_1h WHERE attribute_id = $1", humidity) == 121


async def test_the_upkeep_loop_makes_partitions_at_once_and_applies_retention_after_an_interval(
    pool: asyncpg.Pool,
) -> None:
    device = await make_device(pool, timezone="UTC")
    humidity = device.attributes["humidity"]
    now = int(time.time() * 1000)
    await write(pool, humidity, [(now - 3 * DAY + i * 1000, Decimal(i)) for i in range(60)])
    project = await pool.fetchval("SELECT project_id FROM devices WHERE id = $1", device.id)
    await pool.execute("INSERT INTO ts_retention (project_id, raw_days) VALUES ($1, 1)", project)
    loop = asyncio.create_task(upkeep(pool, PartitionManager(), months_ahead=3, default_days=None, interval=0.2))
    try:
        year, month = months_ahead(now, 3)[-1]

        async def ahead() -> bool:
            return bool(await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", f"samples_p{year:04d}{month:02d}"))

        async def applied() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM samples WHERE attribute_id = $1", humidity) == 0)

        await wait_for(ahead)
        await wait_for(applied)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert await pool.fetchval("SELECT sum(n) FROM rollup_1m WHERE attribute_id = $1", humidity) == 60
