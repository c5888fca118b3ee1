"""Soak: the whole platform at half its measured ingest capacity for a long time (30 minutes by
default); every minute the ingest rate, the twin's lag, and each service's RSS and open file
descriptors; at the end, asserts that nothing grew without bound.

Self-contained: the fault campaign's private stack (its own PostgreSQL, 3-node RabbitMQ cluster,
Mosquitto and nx-27017 on free ports; twinbill_faults.stack), the five services as processes, the
simulator's meters, billing every minute. The capacity is measured first on the same stack (the
simulator sending as fast as replies allow for `--probe-seconds`).

"Without bound" is judged on a least-squares line through the per-minute samples of the second
half of the run: the first half is warm-up (imports, pools and caches filling, the allocator's
arenas and the collector's older generations reaching their working size took 5-10 minutes in
the 30-minute runs), and a leak goes on in the second half. A service fails if its RSS grows
faster than 1 MiB per minute there or its open fds faster than 0.5 per minute; the twin fails if
its lag grows faster than 0.5 s per minute or ends above 30 s. The slope over the whole run is
printed beside it, for information.

    .venv/bin/python bench/bench_soak.py [--minutes 30] [--probe-seconds 20] [--memdebug DIR]

`--memdebug DIR` has every service write a memory report to DIR each minute
(twinbill_common.memdebug: RSS, the collector's generations, tracked objects by type, and with
`TWINBILL_MEMDEBUG_FRAMES=8` the allocation sites that grew, at a cost in CPU; with
`TWINBILL_MEMDEBUG_GARBAGE=true` what a full collection finds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from twinbill_faults.checks import Stores
from twinbill_faults.stack import Options, Stack

RSS_SLOPE_MIB_PER_MIN = 1.0
FDS_SLOPE_PER_MIN = 0.5
LAG_SLOPE_S_PER_MIN = 0.5
LAG_END_LIMIT_S = 30.0

NEWEST_STORED = """
SELECT max(s.ts) FROM samples s
WHERE s.attribute_id = ANY($1::bigint[]) AND s.idx = -1 AND s.ts > $2
"""
ATTRIBUTES = """
SELECT a.id FROM devices d JOIN instances i ON i.device_id = d.id JOIN attributes a ON a.instance_id = i.id
WHERE d.project_id = $1 AND a.measurepoint = 'total'
"""


def rss_mib(pid: int) -> float:
    """Resident set size of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def slope(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minute, value) samples, per minute (0 with fewer than two)."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    var = sum((x - mean_x) ** 2 for x, _ in samples)
    return sum((x - mean_x) * (y - mean_y) for x, y in samples) / var if var else 0.0


@dataclass
class Series:
    """Per-minute samples of everything the soak watches."""

    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    fds: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    lag: list[tuple[float, float]] = field(default_factory=list)


async def twin_lag(stack: Stack, attributes: list[int]) -> float:
    """Seconds by which the newest stored point trails the newest acknowledged one."""
    newest_acked = max(stack.ledger.newest.values(), default=0)
    if not newest_acked:
        return 0.0
    connection = await asyncpg.connect(stack.twin_dsn(), server_settings={"search_path": "twin"})
    try:
        stored = await connection.fetchval(NEWEST_STORED, attributes, newest_acked - 3_600_000)
    finally:
        await connection.close()
    return max(0.0, (newest_acked - (stored or 0)) / 1000) if stored else float("inf")


async def soak(args: argparse.Namespace) -> bool:
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    options = Options(workdir=workdir, gateways=args.gateways, meters=args.meters, start_load=False, batch=100,
                      disk_mb=args.disk_mb, keep=args.keep, log=lambda line: print(line, flush=True))
    stack = Stack.create(options)
    stack.ledger.keep_points = False
    stack.ledger.keep_times = True  # the loss check at the end: every acknowledged time stored once
    try:
        await stack.start()
        capacity = await stack.probe_capacity(seconds=args.probe_seconds)
        options.rate = capacity / 2
        print(f"soak: measured ingest capacity {capacity:,.0f} points/s; soaking at {options.rate:,.0f} points/s "
              f"for {args.minutes} min", flush=True)
        await stack.start_simulator()
        connection = await asyncpg.connect(stack.twin_dsn(), server_settings={"search_path": "twin"})
        attributes = [r["id"] for r in await connection.fetch(ATTRIBUTES, stack.seeded["project_id"])]
        await connection.close()
        series = Series()
        started = time.monotonic()
        acked_before = stack.ledger.points_acked
        print(f"{'min':>4} {'points/s':>9} {'lag s':>6}  " + "  ".join(
            f"{name + ' MiB/fds':>16}" for name in stack.services), flush=True)
        for minute in range(1, args.minutes + 1):
            await asyncio.sleep(max(0.0, started + minute * 60 - time.monotonic()))  # the bench's own clock
            acked = stack.ledger.points_acked
            rate = (acked - acked_before) / 60
            acked_before = acked
            lag = await twin_lag(stack, attributes)
            series.lag.append((minute, lag))
            cells = []
            for name, service in stack.services.items():
                pid = service.process.pid if service.process is not None else 0
                rss, fds = rss_mib(pid), open_fds(pid)
                series.rss.setdefault(name, []).append((minute, rss))
                series.fds.setdefault(name, []).append((minute, fds))
                cells.append(f"{rss:10.1f}/{fds:<5d}")
            print(f"{minute:4d} {rate:9,.0f} {lag:6.1f}  " + "  ".join(cells), flush=True)
        ok = verdict(series, minutes=args.minutes, restarts=stack.supervisor_restarts)
        used = stack.disk.size_mb * 2**20 - stack.disk.free_bytes()
        print(f"  time-series disk: {used / 2**20:,.0f} of {stack.disk.size_mb:,} MB used, "
              f"{used / max(1, stack.ledger.points_acked):,.0f} bytes per acknowledged point", flush=True)
        return await losses(stack) and ok
    finally:
        await stack.stop()


async def losses(stack: Stack, *, within: float = 300) -> bool:
    """Stop the meters, let the twin drain, and check that every point acknowledged with 200 during
    the whole soak is stored exactly once (by time, meter by meter)."""
    await stack.stop_simulator()
    stack.simulator = None  # stopped on purpose: not a device to restart
    await asyncio.sleep(2)  # the last replies reach the observer
    times = dict(stack.ledger.times)
    stores = Stores(twin_dsn=stack.twin_dsn(), scheduler_dsn=stack.scheduler_dsn(), mongo_url=stack.mongo.url,
                    project_id=stack.seeded["project_id"])
    started = time.monotonic()
    while True:
        check = await stores.check_times(times)
        if check.ok or time.monotonic() - started > within:
            break
        await asyncio.sleep(5)
    good = check.ok and check.acked > 0
    print(f"  {'ok  ' if good else 'FAIL'} points acknowledged with 200: {check.acked:,}, stored {check.stored:,}, "
          f"missing {check.missing}, duplicates {check.duplicates} (drained in {time.monotonic() - started:.0f} s)"
          + (f"; e.g. {', '.join(check.examples)}" if check.examples else ""), flush=True)
    return good


def warm_up_minutes(minutes: int) -> int:
    """The minutes left out of the fitted slopes: the first half (at least one)."""
    return max(1, minutes // 2)


def verdict(series: Series, *, minutes: int, restarts: list[str]) -> bool:
    """Print the fitted slopes against their limits; True when none grew without bound."""
    skip = warm_up_minutes(minutes)
    ok = True
    print(f"\nslopes fitted over minutes {skip + 1}..{minutes}, the second half (limits: RSS {RSS_SLOPE_MIB_PER_MIN} "
          f"MiB/min, fds {FDS_SLOPE_PER_MIN}/min, twin lag {LAG_SLOPE_S_PER_MIN} s/min and <= {LAG_END_LIMIT_S} s "
          "at the end); in brackets: over the whole run, and RSS first -> last minute")
    for name in series.rss:
        second = [s for s in series.rss[name] if s[0] > skip]
        rss = slope(second)
        fds = slope([s for s in series.fds[name] if s[0] > skip])
        good = rss <= RSS_SLOPE_MIB_PER_MIN and fds <= FDS_SLOPE_PER_MIN
        ok &= good
        whole = series.rss[name]
        print(f"  {'ok  ' if good else 'FAIL'} {name:<9} RSS {rss:+.2f} MiB/min  fds {fds:+.2f}/min  "
              f"({slope(whole):+.2f} MiB/min; {whole[0][1]:.1f} -> {whole[-1][1]:.1f} MiB)")
    lag_slope = slope([s for s in series.lag if s[0] > skip])
    lag_end = series.lag[-1][1] if series.lag else 0.0
    good = lag_slope <= LAG_SLOPE_S_PER_MIN and lag_end <= LAG_END_LIMIT_S
    ok &= good
    print(f"  {'ok  ' if good else 'FAIL'} twin lag {lag_slope:+.2f} s/min, {lag_end:.1f} s at the end")
    if restarts:
        ok = False
        print(f"  FAIL services exited during the soak: {restarts}")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--probe-seconds", type=float, default=20.0)
    parser.add_argument("--gateways", type=int, default=8)
    parser.add_argument("--meters", type=int, default=25)
    parser.add_argument("--disk-mb", type=int, default=8192,
                        help="the time-series tmpfs (MB, in RAM as it fills): 3 GB filled at minute 14 at 2,600 "
                             "points/s (values_1h's rewritten arrays: docs/architecture.md, 'Fault campaign')")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--memdebug", type=Path, help="every service writes a memory report here each minute")
    args = parser.parse_args()
    if args.memdebug is not None:
        os.environ["TWINBILL_MEMDEBUG_DIR"] = str(args.memdebug.resolve())  # the services inherit it
        os.environ.setdefault("TWINBILL_MEMDEBUG_FRAMES", "0")
    ok = asyncio.run(soak(args))
    print(f"soak: {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
