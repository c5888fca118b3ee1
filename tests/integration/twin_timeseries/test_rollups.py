"""The 10 s / minute / hour rollups and the hours' sorted values against the raw samples: written
in shuffled batches with repeats and late points they hold exactly what the raw rows give, and
every query answered from them equals the same query answered from raw rows only (time zones
with a DST change and with half-hour offsets included)."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from twinbill_twin.store import series as series_store
from twinbill_twin.store.samples import PartitionManager, SampleRecord, seal_hours, write_batch

from .conftest import make_device

PATH = "/dt/open/v1/instance/attribute/{}"
DST = 1_774_738_800_000  # 2026-03-28T23:00:00Z: Europe/Berlin's midnight; clocks go forward at 01:00Z
ROLLUP_WIDTHS = (("rollup_10s", 10_000), ("rollup_1m", 60_000), ("rollup_1h", 3_600_000))


def quarter(rng: random.Random) -> Decimal:
    """A value exact in binary (a multiple of 0.25): sums are exact in any order."""
    return Decimal(rng.randrange(-4000, 4000)) / 4


async def write_shuffled(pool: asyncpg.Pool, attribute_id: int, points: list[tuple[int, Decimal]],
                         rng: random.Random, *, expect_new: bool = False) -> list[str]:
    """Write the points shuffled, in batches of random size; every tenth batch repeats earlier
    keys with other values (stored once: the repeat changes nothing). `expect_new` as the
    telemetry consumer passes it; returns how each batch was written (WriteResult.form)."""
    shuffled = points[:]
    rng.shuffle(shuffled)
    partitions = PartitionManager()
    written: list[tuple[int, Decimal]] = []
    forms: list[str] = []
    index = 0
    batch_number = 0
    while index < len(shuffled):
        size = rng.randrange(1, 400)
        batch = shuffled[index:index + size]
        index += size
        batch_number += 1
        if batch_number % 10 == 0 and written:
            batch += [(ts, value + 1) for ts, value in rng.sample(written, min(20, len(written)))]
        records: list[SampleRecord] = [(attribute_id, -1, ts, str(v), float(v), None, None) for ts, v in batch]
        async with pool.acquire() as conn:
            result = await write_batch(conn, samples=records, currents=[], devices={}, instances={},
                                       partitions=partitions, expect_new=expect_new)
        written += batch[:size]
        forms.append(result.form)
    return forms


async def seal_all(pool: asyncpg.Pool) -> None:
    """Build every marked hour now, as the twin's seal loop does for hours that have ended."""
    async with pool.acquire() as conn:
        while (await seal_hours(conn, now_ms=2**62))[0]:
            pass


async def assert_rollups_match_raw(pool: asyncpg.Pool, attribute_id: int) -> None:
    for table, width in ROLLUP_WIDTHS:
        expected = await pool.fetch(f"""
            SELECT ts - ts % {width} AS bucket, count(*) AS n, sum(dbl) AS sum, min(dbl) AS min,
                   max(dbl) AS max, var_pop(dbl) * count(*) AS m2, min(ts) AS first_ts,
                   (array_agg(dbl ORDER BY ts))[1] AS first_v, max(ts) AS last_ts,
                   (array_agg(dbl ORDER BY ts DESC))[1] AS last_v
            FROM samples WHERE attribute_id = $1 GROUP BY 1 ORDER BY 1""", attribute_id)
        got = await pool.fetch(f"SELECT bucket, n, sum, min, max, m2, first_ts, first_v, last_ts, last_v "
                               f"FROM {table} WHERE attribute_id = $1 ORDER BY bucket", attribute_id)
        assert len(got) == len(expected) > 0, table
        for want, have in zip(expected, got, strict=True):
            exact = {k: v for k, v in dict(want).items() if k != "m2"}
            assert {k: have[k] for k in exact} == exact, (table, want["bucket"])
            assert have["m2"] == pytest.approx(want["m2"], rel=1e-9, abs=1e-6), (table, want["bucket"])
    sorted_raw = await pool.fetch("SELECT ts - ts % 3600000 AS bucket, array_agg(dbl ORDER BY dbl) AS v "
                                  "FROM samples WHERE attribute_id = $1 GROUP BY 1 ORDER BY 1", attribute_id)
    await seal_all(pool)  # the hours' sorted values are built once their hours are marked over
    assert not await pool.fetchval("SELECT count(*) FROM hour_values_dirty WHERE attribute_id = $1", attribute_id)
    arrays = await pool.fetch("SELECT bucket, v FROM values_1h WHERE attribute_id = $1 ORDER BY bucket",
                              attribute_id)
    assert [dict(r) for r in arrays] == [dict(r) for r in sorted_raw]


@pytest.mark.parametrize("expect_new", [False, True], ids=["probe first", "plain insert first"])
async def test_rollups_hold_exactly_the_stored_points_through_shuffled_repeated_and_late_batches(
    pool: asyncpg.Pool, expect_new: bool,
) -> None:
    """With the probe first, and with the plain insert first (a batch holding a stored key is
    then rolled back and written again with the probe: every tenth batch here)."""
    device = await make_device(pool, timezone="Europe/Berlin")
    humidity = device.attributes["humidity"]
    rng = random.Random(12)
    points = [(DST - 3_600_000 + i * 3_000 + rng.randrange(0, 2_500), quarter(rng)) for i in range(4_000)]
    forms = await write_shuffled(pool, humidity, points, rng, expect_new=expect_new)
    assert set(forms) == ({"plain", "fast"} if expect_new else {"fast"})
    assert await pool.fetchval("SELECT count(*) FROM samples WHERE attribute_id = $1", humidity) == 4_000
    await assert_rollups_match_raw(pool, humidity)
    # late points: new keys in old buckets (one before everything, some between stored points)
    late = [(DST - 7_200_000, Decimal("999.5"))] + [(ts + 1, Decimal("-999.25")) for ts, _ in points[::97]]
    await write_shuffled(pool, humidity, late, rng, expect_new=expect_new)
    await assert_rollups_match_raw(pool, humidity)
    first = await pool.fetchrow("SELECT bucket, n, first_v FROM rollup_1h WHERE attribute_id = $1 "
                                "ORDER BY bucket LIMIT 1", humidity)
    assert (first["bucket"], first["n"], first["first_v"]) == (DST - 7_200_000, 1, 999.5)


def _same(rollup_answer: Any, raw_answer: Any, downsample: str) -> None:
    """Equal, except a deviation (merged M2 vs a two-pass variance) within 1e-9 relative."""
    assert rollup_answer["data"]["value"] != [] or raw_answer["data"]["value"] == []
    if "-dev" not in downsample:
        assert rollup_answer == raw_answer, downsample
        return
    [a], [b] = rollup_answer["data"]["value"], raw_answer["data"]["value"]
    assert a["dps"].keys() == b["dps"].keys(), downsample
    for key, value in a["dps"].items():
        assert math.isclose(value, b["dps"][key], rel_tol=1e-9, abs_tol=1e-9), (downsample, key)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Asia/Kolkata", "UTC"])
async def test_queries_from_rollups_equal_raw_reads_across_dst_and_half_hour_zones(
    twin: TestClient[Any, Any], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    """Each downsample answered as the service chooses (10 s / minute / hour rollups, hour
    values for percentiles, raw at the edges) equals the answer from raw rows only."""
    device = await make_device(pool, timezone=zone)
    humidity = device.attributes["humidity"]
    rng = random.Random(zone)
    # 1 to 3 s apart over ~30 hours around Berlin's DST change (a UTC hour has 1,800 points)
    points, ts = [], DST - 20 * 3_600_000
    while ts < DST + 10 * 3_600_000:
        points.append((ts, quarter(rng)))
        ts += rng.randrange(1_000, 3_001)
    await write_shuffled(pool, humidity, points, rng)
    url = PATH.format(humidity)
    downsamples = ["10s-avg", "10s-min", "20s-max", "1m-sum", "1m-count", "1m-dev", "5m-first", "5m-last",
                   "1h-avg", "1h-dev", "1h-p95", "1h-p50", "1h-ep99r3", "1h-ep90r7", "2h-p99", "1hc-p75",
                   "1dc-p95", "1dc-avg", "1hc-sum", "0all-p90", "0all-avg"]
    ranges = [(DST - 20 * 3_600_000, DST + 10 * 3_600_000 - 1),           # hour aligned
              (DST - 19 * 3_600_000 + 1_234_567, DST + 9 * 3_600_000 + 7_777)]  # not aligned
    for start, end in ranges:
        for downsample in downsamples:
            params = {"start": str(start), "end": str(end), "downsample": downsample}
            fast = await twin.get(url, params=params)
            assert fast.status == 200, await fast.text()
            with monkeypatch.context() as raw_only:
                raw_only.setattr(series_store, "ROLLUPS", ())
                raw_only.setattr(series_store, "HOUR_VALUES", (3_600_000, "samples"))
                slow = await twin.get(url, params=params)
            assert slow.status == 200, await slow.text()
            _same(await fast.json(), await slow.json(), f"{downsample} {start}")


async def test_hour_percentiles_read_the_sorted_values_and_survive_late_points(
    twin: TestClient[Any, Any], pool: asyncpg.Pool
) -> None:
    """An hour still marked (being written) answers from its raw rows; once sealed, 1h-p95 comes
    from values_1h (proved by changing an array behind the store's back); a late point marks its
    hour again, so the answer is the raw rows' until the hour is sealed again."""
    device = await make_device(pool, timezone="UTC")
    humidity = device.attributes["humidity"]
    rng = random.Random(3)
    hour = DST + 3_600_000
    points = [(hour + i * 1_000, Decimal(i)) for i in range(100)]
    await write_shuffled(pool, humidity, points, rng)
    params = {"start": str(hour), "end": str(hour + 3_599_999), "downsample": "1h-p50"}
    answer = await (await twin.get(PATH.format(humidity), params=params)).json()
    assert list(answer["data"]["value"][0]["dps"].values()) == [49.5]
    await write_shuffled(pool, humidity, [(hour + 500_000, Decimal(1000))], rng)
    answer = await (await twin.get(PATH.format(humidity), params=params)).json()
    assert list(answer["data"]["value"][0]["dps"].values()) == [50]   # 101 values: the 51st
    await seal_all(pool)
    await pool.execute("UPDATE values_1h SET v = array_fill(7::float8, ARRAY[101]) WHERE attribute_id = $1",
                       humidity)
    answer = await (await twin.get(PATH.format(humidity), params=params)).json()
    assert list(answer["data"]["value"][0]["dps"].values()) == [7]
    await write_shuffled(pool, humidity, [(hour + 500_001, Decimal(-5)), (hour + 500_002, Decimal(-6))], rng)
    answer = await (await twin.get(PATH.format(humidity), params=params)).json()
    assert list(answer["data"]["value"][0]["dps"].values()) == [49]   # 103 raw values: the 52nd
    await seal_all(pool)
    assert await pool.fetchval("SELECT cardinality(v) FROM values_1h WHERE attribute_id = $1", humidity) == 103
    answer = await (await twin.get(PATH.format(humidity), params=params)).json()
    assert list(answer["data"]["value"][0]["dps"].values()) == [49]


async def test_long_reads_of_array_elements_equal_raw_reads_through_gaps_and_late_points(
    twin: TestClient[Any, Any], pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over 2,000 buckets of a rollup are read in index order as one row of arrays and split per
    array element (issue 16): each element's buckets, the partial first and last buckets, the
    combined series and the raw points equal what raw rows alone give, with a gap of an hour in
    one element and late points written after the first read."""
    device = await make_device(pool, timezone="Asia/Kolkata")
    temps = device.attributes["temps"]
    rng = random.Random(16)
    records: list[SampleRecord] = []
    ts = DST - 4 * 3_600_000
    while ts < DST + 4 * 3_600_000:
        for idx in (0, 1):
            if idx == 0 or not DST <= ts < DST + 3_600_000:  # element 1 has an hour's gap
                value = quarter(rng)
                records.append((temps, idx, ts, str(value), float(value), None, None))
        ts += rng.randrange(1_000, 4_001)
    rng.shuffle(records)
    partitions = PartitionManager()
    for index in range(0, len(records), 500):
        async with pool.acquire() as conn:
            await write_batch(conn, samples=records[index:index + 500], currents=[], devices={}, instances={},
                              partitions=partitions)
    url = PATH.format(temps)
    start, end = DST - 4 * 3_600_000 + 4_321, DST + 4 * 3_600_000 - 9_876  # partial edge buckets

    async def compare(*, late: bool) -> None:
        for params in ({"downsample": "10s-avg"}, {"downsample": "10s-max", "aggregator": "sum"},
                       {"downsample": "1m-count"}, {"downsample": "10s-first-null"}, {}):
            query = {"start": str(start), "end": str(end), **params}
            fast = await twin.get(url, params=query)
            assert fast.status == 200, await fast.text()
            with monkeypatch.context() as raw_only:
                raw_only.setattr(series_store, "ROLLUPS", ())
                slow = await twin.get(url, params=query)
            fast_body, slow_body = await fast.json(), await slow.json()
            assert fast_body == slow_body, params
            if params.get("aggregator") != "sum":
                assert [s["tags"]["index"] for s in fast_body["data"]["value"]] == ["0", "1"]
            if params == {"downsample": "10s-avg"}:
                assert len(fast_body["data"]["value"][0]["dps"]) > 2_000
                # the gap: element 1 has no bucket inside that hour (but the late point's)
                inside = {k: v for k, v in fast_body["data"]["value"][1]["dps"].items()
                          if DST // 1000 + 10 <= int(k) < (DST + 3_600_000) // 1000 - 10}
                assert inside == ({str((DST + 1_800_000) // 1000): 42.5} if late else {})

    await compare(late=False)
    late: list[SampleRecord] = [(temps, 1, DST + 1_800_000, "42.5", 42.5, None, None),
                                (temps, 0, start + 1, "-7", -7.0, None, None)]
    async with pool.acquire() as conn:
        await write_batch(conn, samples=late, currents=[], devices={}, instances={}, partitions=partitions)
    await compare(late=True)
    body = await (await twin.get(url, params={"start": str(DST + 1_800_000), "end": str(DST + 1_800_999),
                                              "downsample": "0all-max"})).json()
    assert [(s["tags"]["index"], s["dps"]) for s in body["data"]["value"]] == \
        [("1", {str((DST + 1_800_000) // 1000): 42.5})]
