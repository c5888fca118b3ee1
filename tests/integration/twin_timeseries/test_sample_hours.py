"""Sealed hours' packed raw points (sample_hours, migration 0107): built from the samples when an
hour is sealed, read by a raw query for the hours it covers; every answer equals the samples
path's byte for byte, through partial hours at either end, millisecond times, array elements,
text values, qualities, late points into a sealed hour, deleted points and series, and raw
retention."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from twinbill_twin.api import stream_query
from twinbill_twin.bemserver.data import delete_points
from twinbill_twin.store import sample_hours
from twinbill_twin.store import series as series_store
from twinbill_twin.store.retention import apply_retention
from twinbill_twin.store.samples import SERIES_TABLES, SampleRecord
from twinbill_twin.store.series import Columns

from .conftest import make_device, seal_all, write_samples

PATH = "/dt/open/v1/instance/attribute/{}"
HOUR = 3_600_000
T0 = 1_777_582_800_000  # 2026-04-30T21:00:00Z: the hours cross a month (two partitions)
HOURS = 6
MILLIS_HOUR = T0 + 2 * HOUR  # its points 137 ms past the second
SPARSE_HOUR = T0 + 3 * HOUR  # its points at irregular times


def value(rng: random.Random) -> Decimal:
    """Mostly tenths (some integral, some negative), now and then a value written with an exponent."""
    if rng.random() < 0.01:
        return rng.choice([Decimal("1E+20"), Decimal("-2.5E-7"), Decimal("123456789012345678")])
    return Decimal(rng.randrange(-40000, 40000)) / 10


def points(attribute_id: int, rng: random.Random, *, idx: int = -1, hours: range = range(HOURS),
           quality: bool = False) -> list[SampleRecord]:
    """One point a second (the millisecond hour 137 ms past, the sparse hour at random seconds)."""
    records: list[SampleRecord] = []
    for hour in hours:
        start = T0 + hour * HOUR
        seconds = sorted(rng.sample(range(3600), 700)) if start == SPARSE_HOUR else range(3600)
        for second in seconds:
            ts = start + second * 1000 + (137 if start == MILLIS_HOUR else 0)
            v = value(rng)
            records.append((attribute_id, idx, ts, str(v), float(v), None, str(second % 5) if quality else None))
    rng.shuffle(records)
    return records


async def write(pool: asyncpg.Pool, records: list[SampleRecord]) -> None:
    await write_samples(pool, records, batch=5000)


async def samples_only(conn: asyncpg.Connection, attribute_id: int, start: int, end: int, *, limit: int,
                       packed: sample_hours.Packed | None = None) -> tuple[dict[int, Columns], bool] | None:
    """The raw read before the packed hours (the samples alone), whatever was read with the attribute."""
    return await series_store.fetch_raw_texts(conn, attribute_id, start, end, limit=limit)


async def bodies(twin: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch, attribute_id: int,
                 params: dict[str, str]) -> tuple[str, str]:
    """The answer as the service gives it, and with the packed hours turned off (the samples)."""
    fast = await twin.get(PATH.format(attribute_id), params=params)
    assert fast.status == 200, await fast.text()
    with monkeypatch.context() as unpacked:
        unpacked.setattr(sample_hours, "fetch_raw_texts", samples_only)
        slow = await twin.get(PATH.format(attribute_id), params=params)
    assert slow.status == 200, await slow.text()
    return await fast.text(), await slow.text()


# [start, end] in ms: whole hours, an hour to :59:59, cut inside the first and last hour, ending
# and starting within a minute of an hour's edge, across the millisecond and sparse hours, one
# hour alone, a few minutes, everything
RANGES = [
    (T0, T0 + HOURS * HOUR - 1), (T0 + HOUR, T0 + 2 * HOUR - 1000), (T0 + 1_234_567, T0 + 5 * HOUR - 7_654_321),
    (T0 + 30_000, T0 + 4 * HOUR - 20_000), (T0 + HOUR + 999, T0 + 3 * HOUR - 1), (T0 + 2 * HOUR, T0 + 3 * HOUR - 1),
    (T0 + 2 * HOUR + 137, T0 + 3 * HOUR - 863), (T0 + 3 * HOUR, T0 + 4 * HOUR - 1),
    (T0 + 3 * HOUR + 60_000, T0 + 3 * HOUR + 600_000), (T0 - HOUR, T0 + 10 * HOUR),
]


async def compare(twin: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch, attribute_id: int,
                  ranges: list[tuple[int, int]] = RANGES, **extra: str) -> None:
    for start, end in ranges:
        params = {"start": str(start), "end": str(end), **extra}
        fast, slow = await bodies(twin, monkeypatch, attribute_id, params)
        assert fast == slow, (start - T0, end - T0, extra)


async def packed_hours(pool: asyncpg.Pool, attribute_id: int) -> list[int]:
    rows = await pool.fetch("SELECT DISTINCT bucket FROM sample_hours WHERE attribute_id = $1 ORDER BY 1",
                            attribute_id)
    return [(r["bucket"] - T0) // HOUR for r in rows]


async def assert_packed_equal_samples(pool: asyncpg.Pool, attribute_id: int) -> None:
    """Each packed row holds its hour's samples: times (as a step or an array) and doubles' texts."""
    rows = await pool.fetch("""
        SELECT idx, ts - ts % 3600000 AS hour, array_agg(ts ORDER BY ts) AS ts,
               array_to_string(array_agg(dbl ORDER BY ts), ',') AS dbl, bool_or(ts % 1000 <> 0) AS millis
        FROM samples WHERE attribute_id = $1 GROUP BY 1, 2 ORDER BY 2, 1""", attribute_id)
    expected = {(r["hour"], r["idx"]): (r["ts"], r["dbl"], r["millis"]) for r in rows}
    packed = await pool.fetch("SELECT * FROM sample_hours WHERE attribute_id = $1", attribute_id)
    assert packed
    for row in packed:
        times = list(range(row["first_ts"], row["last_ts"] + 1, row["step"])) if row["step"] else row["ts"]
        assert (times, row["dbl"], row["millis"]) == expected[row["bucket"], row["idx"]]
        assert row["n"] == len(times)


async def test_raw_points_from_sealed_hours_equal_the_samples_through_edges_and_late_points(
    twin: TestClient[Any, Any], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every hour sealed is packed (one with millisecond times, one sparse: its times as an
    array), read from its row (proved by changing the row behind the store's back), a late point
    sends its hour back to the samples until the next seal repacks it; every answer equals the
    samples path's, for ranges cut anywhere, and for a sum across nothing (one series)."""
    device = await make_device(pool, timezone="UTC")
    humidity = device.attributes["humidity"]
    await write(pool, points(humidity, random.Random(107)))
    await seal_all(pool)
    assert await packed_hours(pool, humidity) == list(range(HOURS))
    await assert_packed_equal_samples(pool, humidity)
    steps = await pool.fetch("SELECT bucket, step FROM sample_hours WHERE attribute_id = $1 ORDER BY 1", humidity)
    assert [r["step"] for r in steps] == [1000, 1000, 1000, None, 1000, 1000]  # the sparse hour: an array
    await compare(twin, monkeypatch, humidity)
    await compare(twin, monkeypatch, humidity, aggregator="sum")
    # dates read in the project's zone (the packed hours then read after the attribute), or in
    # the query's own (read with it)
    for dates in ({"start": "2026/05/01-00:00:00", "end": "2026/05/01-01:59:59"},
                  {"start": "2026/05/01-03:00:00", "end": "2026/05/01-04:59:59", "timezone": "Asia/Kolkata"}):
        fast, slow = await bodies(twin, monkeypatch, humidity, dates)
        assert fast == slow and fast.count('": ') > 3600, dates

    # the packed row is what is read: a changed value shows in an hour's query to :59:59
    hour = T0 + 4 * HOUR
    await pool.execute("UPDATE sample_hours SET dbl = regexp_replace(dbl, '^[^,]*', '7.25') "
                       "WHERE attribute_id = $1 AND bucket = $2", humidity, hour)
    window = {"start": str(hour // 1000), "end": str((hour + HOUR) // 1000 - 1)}
    answer = await (await twin.get(PATH.format(humidity), params=window)).json()
    [series] = answer["data"]["value"]
    assert len(series["dps"]) == 3600 and series["dps"][str(hour // 1000)] == 7.25
    await pool.execute(sample_hours.PACK_SAMPLES.format(  # put back as the seal writes it
        hours="(SELECT $1::bigint AS attribute_id, $2::bigint AS bucket) AS hours"), humidity, hour)

    # a late point (between two seconds) into that sealed hour marks it: the samples answer it
    # until the hour is sealed again, then its row holds the point (the times now an array)
    await write(pool, [(humidity, -1, hour + 1500, "1000.5", 1000.5, None, None)])
    await compare(twin, monkeypatch, humidity)
    await seal_all(pool)
    await assert_packed_equal_samples(pool, humidity)
    fast, slow = await bodies(twin, monkeypatch, humidity, {"start": str(hour), "end": str(hour + HOUR - 1)})
    assert fast == slow and f'"{hour + 1500:013d}": 1000.5' in fast
    assert await pool.fetchval("SELECT step FROM sample_hours WHERE attribute_id = $1 AND bucket = $2",
                               humidity, hour) is None
    await compare(twin, monkeypatch, humidity)


async def test_array_elements_qualities_and_text_points_answer_as_the_samples_do(
    twin: TestClient[Any, Any], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two array elements (one missing an hour), struct points with qualities, and a number
    attribute with one text point (its hour is not packed, and the answer is the samples' text
    answer), also once the text point came late into a sealed hour."""
    device = await make_device(pool, timezone="Asia/Kolkata")
    temps, reading, total = device.attributes["temps"], device.attributes["reading"], device.attributes["total"]
    rng = random.Random(1070)
    await write(pool, points(temps, rng, idx=0) + points(temps, rng, idx=1, hours=range(0, HOURS, 2)))
    await write(pool, points(reading, rng, quality=True))
    await write(pool, [*points(total, rng, hours=range(3)), (total, -1, T0 + HOUR + 5, None, None, "offline", None)])
    await seal_all(pool)
    await assert_packed_equal_samples(pool, temps)
    assert await pool.fetchval("SELECT count(*) FROM sample_hours WHERE attribute_id = $1", temps) == HOURS + 3
    await compare(twin, monkeypatch, temps)
    await compare(twin, monkeypatch, temps, aggregator="sum")
    await compare(twin, monkeypatch, reading, quality="true")
    assert await packed_hours(pool, total) == [0, 2]  # the hour with the text point is not packed
    await compare(twin, monkeypatch, total)
    body = await (await twin.get(PATH.format(total), params={"start": str(T0), "end": str(T0 + 3 * HOUR - 1)})).json()
    assert body["data"]["value"][0]["dps"][f"{T0 + HOUR + 5:013d}"] == "offline"

    # a text point late into a sealed, packed hour marks it: the samples answer, then the next
    # seal leaves the hour unpacked
    await write(pool, [(total, -1, T0 + 2 * HOUR + 1, None, None, "late", None)])
    await compare(twin, monkeypatch, total)
    await seal_all(pool)
    assert await packed_hours(pool, total) == [0]
    await compare(twin, monkeypatch, total)


async def test_a_delete_leaves_an_hour_still_being_written_to_the_seal(
    twin: TestClient[Any, Any], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Points deleted in an hour that is marked (a point came after its seal) leave the hour
    unpacked, its points and minutes alike: readers take a marked hour from the samples and the
    rollups anyway, and the seal packs it from what the delete left."""
    device = await make_device(pool, timezone="UTC")
    humidity = device.attributes["humidity"]
    await write(pool, points(humidity, random.Random(11)))
    await seal_all(pool)
    minute_hours = "SELECT count(*) FROM rollup_1m_hours WHERE attribute_id = $1 AND bucket = $2"
    assert await pool.fetchval(minute_hours, humidity, T0 + HOUR) == 1
    late = T0 + HOUR + 1_500  # between two of the hour's points: marks hour 1 again
    await write(pool, [(humidity, -1, late, "12.5", 12.5, None, None)])
    assert await pool.fetchval("SELECT count(*) FROM hour_values_dirty WHERE attribute_id = $1", humidity) == 1
    async with pool.acquire() as conn, conn.transaction():
        await delete_points(conn, [humidity], T0 + HOUR + 600_000, T0 + 2 * HOUR + 600_000)  # hours 1 and 2
    assert await packed_hours(pool, humidity) == [0, 2, 3, 4, 5]  # hour 2 repacked, hour 1 left to the seal
    assert await pool.fetchval(minute_hours, humidity, T0 + HOUR) == 0
    await assert_packed_equal_samples(pool, humidity)
    await compare(twin, monkeypatch, humidity)

    await seal_all(pool)
    assert await packed_hours(pool, humidity) == [0, 1, 2, 3, 4, 5]
    await assert_packed_equal_samples(pool, humidity)
    await compare(twin, monkeypatch, humidity)



async def test_deleted_points_and_series_and_raw_retention_keep_the_packed_hours_true(
    twin: TestClient[Any, Any], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Points deleted (BEMServer's delete) repack their hours from the samples left (an hour
    emptied has no row left); raw retention deletes the packed hours before the horizon with the
    samples; a deleted series leaves none; an over-wide range is still refused."""
    device = await make_device(pool, timezone="UTC")
    humidity = device.attributes["humidity"]
    await write(pool, points(humidity, random.Random(7)))
    await seal_all(pool)
    async with pool.acquire() as conn, conn.transaction():
        await delete_points(conn, [humidity], T0 + HOUR + 90_000, T0 + 2 * HOUR)  # most of hour 1
        await delete_points(conn, [humidity], T0 + 4 * HOUR, T0 + 5 * HOUR)       # all of hour 4
    assert await packed_hours(pool, humidity) == [0, 1, 2, 3, 5]
    await assert_packed_equal_samples(pool, humidity)
    await compare(twin, monkeypatch, humidity)

    with monkeypatch.context() as narrow:  # more points than allowed: refused, packed or not
        narrow.setattr(stream_query, "MAX_RAW_POINTS", 3 * 3600)
        refused = await twin.get(PATH.format(humidity), params={"start": str(T0), "end": str(T0 + HOURS * HOUR)})
        assert refused.status == 400, await refused.text()
        allowed = await twin.get(PATH.format(humidity), params={"start": str(T0), "end": str(T0 + 3 * HOUR - 1)})
        assert allowed.status == 200, await allowed.text()

    project = await pool.fetchval("SELECT project_id FROM devices WHERE id = $1", device.id)
    await pool.execute("INSERT INTO ts_retention (project_id, raw_days) VALUES ($1, 1)", project)
    async with pool.acquire() as conn:  # the horizon at hour 3: hours 0-2 go
        done = await apply_retention(conn, now_ms=T0 + 3 * HOUR + 86_400_000, default_days=None)
    assert done.projects == 1
    assert await packed_hours(pool, humidity) == [3, 5]
    await compare(twin, monkeypatch, humidity, [(start, end) for start, end in RANGES if start >= T0 + 3 * HOUR])

    assert "sample_hours" in SERIES_TABLES
    for table in SERIES_TABLES:  # as BEMServer's series delete does
        await pool.execute(f"DELETE FROM {table} WHERE attribute_id = $1", humidity)
    assert not await pool.fetchval("SELECT count(*) FROM sample_hours WHERE attribute_id = $1", humidity)
