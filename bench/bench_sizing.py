"""Time-series sizing (issue 16): rows and bytes per day per 1,000 meters at 1-minute and
15-minute reporting (raw samples, the 10 s / minute / hour rollups, the hours' sorted values),
and how long one meter's year takes to query at those rates.

Run: .venv/bin/python bench/bench_sizing.py [--meters 1000]

It creates its own database, applies the twin's migrations, writes one day of 1-minute data
and one day of 15-minute data for `--meters` meters through the store's own write path
(`write_batch`, 5,000 points a batch; then every hour sealed, as the twin's seal loop does),
measures the tables (heap, indexes and TOAST) per
reporting rate, then writes a year of 15-minute and of 1-minute data for one meter each and
times year-long reads through the store's query functions. Figures for 100,000 meters are
extrapolated from these (say so where you quote them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from twinbill_common.postgres import apply_migrations, create_pool
from twinbill_twin.api.stream_query import StreamQuery, stream_series
from twinbill_twin.domain.downsample import parse_downsample
from twinbill_twin.store.samples import PartitionManager, SampleRecord, seal_hours, write_batch

PG_ADMIN = os.environ.get("TWINBILL_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
MIGRATIONS = Path(__file__).resolve().parent.parent / "services/twin/src/twinbill_twin/migrations"
DAY = 86_400_000
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TABLES = ("samples", "rollup_10s", "rollup_1m", "rollup_1m_hours", "rollup_1h", "values_1h", "sample_hours",
          "hour_values_dirty")
BATCH = 5_000


async def write(pool: asyncpg.Pool, records: list[SampleRecord], partitions: PartitionManager) -> None:
    """Through the store's write path, then every hour written sealed as the twin's seal loop
    does once the hour has ended (`values_1h` built once per hour from its samples)."""
    for start in range(0, len(records), BATCH):
        async with pool.acquire() as conn:
            await write_batch(conn, samples=records[start:start + BATCH], currents=[], devices={},
                              instances={}, partitions=partitions)
    async with pool.acquire() as conn:
        while (await seal_hours(conn, now_ms=2**62, limit=5_000))[0]:
            pass


def meter_day(attribute_ids: range, step_ms: int, day: int) -> list[SampleRecord]:
    """A day of readings of rising registers, `step_ms` apart, for each meter (time-major, as
    a gateway reports them)."""
    records: list[SampleRecord] = []
    for ts in range(T0 + day * DAY, T0 + (day + 1) * DAY, step_ms):
        for meter in attribute_ids:
            value = Decimal(meter * 10_000 + (ts - T0) // step_ms) / 100
            records.append((meter, -1, ts, str(value), float(value), None, None))
    return records


async def sizes(conn: asyncpg.Connection) -> dict[str, tuple[int, int]]:
    """(rows, bytes) per table family of the connection's schema: heap, indexes and TOAST of the
    table and its partitions."""
    found = {}
    for table in TABLES:
        rows = await conn.fetchval(f"SELECT count(*) FROM {table}")
        total = await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
            "AND (c.relname = $1 OR c.relname LIKE $1 || '\\_p%')", table)
        found[table] = (int(rows), int(total))
    return found


def raw_share(found: dict[str, tuple[int, int]]) -> float:
    """The share of the bytes that raw retention deletes."""
    raw = sum(found[t][1] for t in ("samples", "rollup_10s", "values_1h", "sample_hours"))
    return raw / max(1, sum(v[1] for v in found.values()))


async def time_read(conn: asyncpg.Connection, attribute: asyncpg.Record, start: int, end: int,
                    downsample: str | None, runs: int = 5) -> tuple[float, int]:
    """p50 ms of a seed-002 read (store and shaping, no HTTP) and its number of dps."""
    query = StreamQuery(start, end, ZoneInfo("UTC"), "none",
                        parse_downsample(downsample) if downsample else None)
    latencies, points = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        answer = await stream_series(conn, attribute, query)
        latencies.append((time.perf_counter() - started) * 1000)
        points = sum(len(s["dps"]) for s in answer)
    return statistics.median(latencies), points


async def run(meters: int) -> None:
    database = f"twinbill_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    try:
        measured = {}
        for label, step in (("1-min", 60_000), ("15-min", 900_000)):
            schema = "size_" + label.replace("-", "")
            await apply_migrations(dsn, schema=schema, directory=MIGRATIONS)
            pool = await create_pool(dsn, schema=schema, min_size=1, max_size=2)
            records = meter_day(range(1, meters + 1), step, day=10)
            started = time.perf_counter()
            await write(pool, records, PartitionManager())
            spent = time.perf_counter() - started
            print(f"wrote one day of {label} data for {meters:,} meters: {len(records):,} points in "
                  f"{spent:.1f} s ({len(records) / spent:,.0f} points/s)")
            async with pool.acquire() as conn:
                await conn.execute("VACUUM ANALYZE")
                measured[label] = await sizes(conn)
            await pool.close()
        scale = 1000 / meters
        print(f"\nper day per 1,000 meters (measured on {meters:,}; heap + indexes + TOAST, after VACUUM)")
        print(f"{'table':12} {'1-min rows':>12} {'1-min MB':>10} {'15-min rows':>12} {'15-min MB':>10}")
        totals = [0.0, 0.0, 0.0, 0.0]
        for table in TABLES:
            a, b = measured["1-min"][table], measured["15-min"][table]
            row = [a[0] * scale, a[1] * scale / 1e6, b[0] * scale, b[1] * scale / 1e6]
            totals = [x + y for x, y in zip(totals, row, strict=True)]
            print(f"{table:12} {row[0]:12,.0f} {row[1]:10.2f} {row[2]:12,.0f} {row[3]:10.2f}")
        print(f"{'total':12} {totals[0]:12,.0f} {totals[1]:10.2f} {totals[2]:12,.0f} {totals[3]:10.2f}")
        print(f"raw-grade share (samples, rollup_10s, values_1h, sample_hours: what raw retention deletes): "
              f"{raw_share(measured['1-min']):.0%} at 1-min, {raw_share(measured['15-min']):.0%} at 15-min")

        await apply_migrations(dsn, schema="twin", directory=MIGRATIONS)
        pool = await create_pool(dsn, schema="twin", min_size=1, max_size=2)
        partitions = PartitionManager()
        print("\none meter's year (one series among the above; reads through the store, no HTTP)")
        for label, key, step in (("15-min", 900_001, 900_000), ("1-min", 900_002, 60_000)):
            year: list[SampleRecord] = []
            for day in range(365):
                year += meter_day(range(key, key + 1), step, day=day)
            started = time.perf_counter()
            await write(pool, year, partitions)
            print(f"  {label}: {len(year):,} points written in {time.perf_counter() - started:.1f} s")
            async with pool.acquire() as conn:
                await conn.execute("ANALYZE")
                attribute = {"id": key, "datatype": "Number", "device_key": "m", "instance_name": "m",
                             "metric": "total", "name": "total"}
                year_end = T0 + 365 * DAY - 1
                for downsample in ("1nc-sum", "1d-avg", "1h-avg", "1d-p95", None):
                    start = T0 if downsample else T0 + 180 * DAY
                    end = year_end if downsample else T0 + 211 * DAY - 1  # raw: one month
                    p50, points = await time_read(conn, attribute, start, end, downsample)
                    what = downsample or "raw, one month"
                    print(f"    {what:16} p50 {p50:8.1f} ms  {points:8,} dps")
        await pool.close()
        print(f"\n(machine: {os.cpu_count()} cores, shared with other work; load average {os.getloadavg()[0]:.2f})")
    finally:
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=1000)
    asyncio.run(run(parser.parse_args().meters))


if __name__ == "__main__":
    main()
