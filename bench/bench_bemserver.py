"""BEMServer-surface benchmark (issue 12): uploads through /bemserver/timeseries_data/, streamed
downloads of a week of 1 Hz data, and download_aggregate latencies, through the real gateway and
twin services.

Run: .venv/bin/python bench/bench_bemserver.py
(BENCH_KEEP_DB=1 keeps the database, BENCH_REUSE_DB=<it> queries it again without loading,
BENCH_ONLY=aggregate times only download_aggregate, BENCH_REPEAT=N runs each case N times as often.)

It creates its own database, starts the twin and the gateway as subprocesses (own schemas, own
bus namespace, free ports), makes a campaign with two free series, uploads 1,000,000 points
(604,800 one-second points of one series as JSON, 395,200 of the other as CSV, in requests of
100,000 points, as a client would batch them), then times downloads and aggregates.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
from procstats import bench_database, cpu_seconds, wait_ready, wait_sealed  # bench/ is first on sys.path

from twinbill_devstack.namespaces import delete_namespace
from twinbill_devstack.ports import free_port  # inside TWINBILL_PORT_RANGE when set

PG_ADMIN = os.environ.get("TWINBILL_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("TWINBILL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 10, 28, tzinfo=UTC)  # the week crosses a month: two partitions
WEEK = 7 * 86_400
OTHER = 1_000_000 - WEEK
BATCH = 100_000
ADMIN = ("bench@twinbill.test", "bench-password")
TICKS = os.sysconf("SC_CLK_TCK")




async def server_cpu(conn: asyncpg.Connection, pids: list[int]) -> float:
    """CPU seconds so far of these processes and of the PostgreSQL backends serving the bench
    database (the pools' connections persist across the runs of one case)."""
    return sum(await cpu_split(conn, pids))


async def cpu_split(conn: asyncpg.Connection, pids: list[int]) -> list[float]:
    """CPU seconds so far of each of these processes, then of the PostgreSQL backends."""
    backends = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                "AND pid <> pg_backend_pid()")
    return [*(cpu_seconds(pid) for pid in pids), sum(cpu_seconds(r["pid"]) for r in backends)]


def stamp(second: int) -> str:
    return (T0 + timedelta(seconds=second)).isoformat()




def p50_p99(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values), values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]


async def upload(http: aiohttp.ClientSession, base: str, body: bytes, kind: str, campaign: int | None) -> None:
    path = f"{base}/timeseries_data/" + (f"campaign/{campaign}/" if campaign else "")
    async with http.post(path, params={"data_state": "1"}, data=body, headers={"Content-Type": kind}) as resp:
        if resp.status != 201:
            raise SystemExit(f"upload: {resp.status} {await resp.text()}")


async def load(http: aiohttp.ClientSession, base: str) -> int:
    """A campaign, two series and 1,000,000 points uploaded (timed); the week series' id."""
    campaign = await (await http.post(f"{base}/campaigns/", json={"name": "bench", "timezone": "UTC"})).json()
    scope = await (await http.post(f"{base}/campaign_scopes/", json={
        "name": "all", "campaign_id": campaign["id"]})).json()
    series = []
    for name in ("week", "other"):
        made = await http.post(f"{base}/timeseries/", json={
            "name": name, "campaign_id": campaign["id"], "campaign_scope_id": scope["id"]})
        series.append((await made.json())["id"])
    week_id = series[0]

    print("encoding ...", flush=True)
    json_bodies = [json.dumps({str(week_id): {stamp(s): 100 + s / 10 for s in range(i, min(i + BATCH, WEEK))}})
                   .encode() for i in range(0, WEEK, BATCH)]
    csv_bodies = [("Datetime,other\n" + "".join(f"{stamp(WEEK + s)},{s % 977 / 8}\n"
                                                for s in range(i, min(i + BATCH, OTHER)))).encode()
                  for i in range(0, OTHER, BATCH)]
    started = time.perf_counter()
    for body in json_bodies:
        await upload(http, base, body, "application/json", None)
    json_s = time.perf_counter() - started
    started = time.perf_counter()
    for body in csv_bodies:
        await upload(http, base, body, "text/csv", campaign["id"])
    csv_s = time.perf_counter() - started
    print(f"upload JSON: {WEEK:,} points in {json_s:.1f} s = {WEEK / json_s:,.0f} points/s "
          f"({len(json_bodies)} requests, {sum(map(len, json_bodies)) / 1e6:.0f} MB)")
    print(f"upload CSV:  {OTHER:,} points in {csv_s:.1f} s = {OTHER / csv_s:,.0f} points/s "
          f"({len(csv_bodies)} requests, {sum(map(len, csv_bodies)) / 1e6:.0f} MB)")
    total = WEEK + OTHER
    spent = json_s + csv_s
    print(f"upload total: {total:,} points in {spent:.1f} s = {total / spent:,.0f} points/s")
    del json_bodies, csv_bodies
    return int(week_id)


async def save_answers(http: aiohttp.ClientSession, base: str, week: dict[str, str], into: Path) -> None:
    """BENCH_SAVE=<dir>: download_aggregate's bodies (JSON and CSV) for each aggregation and width,
    over the week and over a range cut inside hours, written as files to compare two versions'
    answers byte for byte."""
    await asyncio.to_thread(into.mkdir, parents=True, exist_ok=True)
    ranges = {"week": week, "cut": {**week, "start_time": stamp(3_725), "end_time": stamp(WEEK - 7_385)}}
    for name, span in ranges.items():
        for aggregation in ("avg", "sum", "min", "max", "count"):
            for value, unit in (("1", "minute"), ("1", "hour"), ("10", "second"), ("5", "minute")):
                params = {**span, "aggregation": aggregation, "bucket_width_value": value, "bucket_width_unit": unit}
                for kind, accept in (("json", "application/json"), ("csv", "text/csv")):
                    async with http.get(f"{base}/timeseries_data/aggregate", params=params,
                                        headers={"Accept": accept}) as resp:
                        body = await resp.read()
                    await asyncio.to_thread((into / f"{name}-{aggregation}-{value}{unit}.{kind}").write_bytes, body)
    print(f"answers written to {into}")


async def run() -> None:
    tag = uuid.uuid4().hex[:8]
    reuse = os.environ.get("BENCH_REUSE_DB", "")
    database, dsn = await bench_database(tag)
    twin_port, gateway_port = free_port(), free_port()
    namespace = f"bench{tag}."
    twin_env = {**os.environ, "TWIN_PG_DSN": dsn, "TWIN_SCHEMA_NAME": "twin", "TWIN_BUS_NAMESPACE": namespace,
                "TWIN_HTTP_PORT": str(twin_port), "TWIN_AMQP_URL": AMQP_URL, "TWIN_LOG_LEVEL": "WARNING"}
    gateway_env = {**os.environ, "GATEWAY_PG_DSN": dsn, "GATEWAY_SCHEMA_NAME": "identity",
                   "GATEWAY_HTTP_PORT": str(gateway_port), "GATEWAY_TWIN_URL": f"http://127.0.0.1:{twin_port}",
                   "GATEWAY_ADMIN_EMAIL": ADMIN[0], "GATEWAY_ADMIN_PASSWORD": ADMIN[1],
                   "GATEWAY_LOG_LEVEL": "WARNING", "GATEWAY_UPSTREAM_TIMEOUT": "600"}
    twin = await asyncio.create_subprocess_exec(sys.executable, "-m", "twinbill_twin", env=twin_env, cwd=ROOT)
    gateway = await asyncio.create_subprocess_exec(sys.executable, "-m", "twinbill_gateway", env=gateway_env,
                                                   cwd=ROOT)
    try:
        await wait_ready(twin_port, twin, "twin")
        await wait_ready(gateway_port, gateway, "gateway")
        base = f"http://127.0.0.1:{gateway_port}/bemserver"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as http:
            tokens = await (await http.post(f"{base}/auth/token", json={"email": ADMIN[0],
                                                                       "password": ADMIN[1]})).json()
            http.headers["Authorization"] = f"Bearer {tokens['access_token']}"
            if reuse:
                found = await (await http.get(f"{base}/timeseries/", params={"name": "week"})).json()
                week_id = found[0]["id"]
            else:
                week_id = await load(http, base)

            conn = await asyncpg.connect(dsn, server_settings={"search_path": "twin"})
            await conn.execute("ANALYZE")
            print(f"(the twin sealed the loaded hours {await wait_sealed(conn):.1f} s later; queries run after)")
            week = {"start_time": stamp(0), "end_time": stamp(WEEK), "data_state": "1", "timeseries": str(week_id)}
            downloads = () if os.environ.get("BENCH_ONLY") == "aggregate" else (("JSON", "application/json"),
                                                                                   ("CSV", "text/csv"))
            for label, accept in downloads:
                times, size = [], 0
                for _ in range(3):
                    started = time.perf_counter()
                    async with http.get(f"{base}/timeseries_data/", params=week, headers={"Accept": accept}) as resp:
                        size = 0
                        async for chunk in resp.content.iter_chunked(1 << 16):
                            size += len(chunk)
                    times.append(time.perf_counter() - started)
                print(f"download a week of 1 Hz ({WEEK:,} points) as {label}: median {statistics.median(times):.2f} s "
                      f"(min {min(times):.2f} s), {size / 1e6:.1f} MB, streamed")
            print(f"{'download_aggregate (avg, week)':34} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>8} {'buckets':>8}"
                  "  target p50   CPU ms: twin / gateway / PostgreSQL   client decode ms")
            repeat = int(os.environ.get("BENCH_REPEAT", "1"))  # more runs: finer CPU figures (10 ms ticks)
            for value, unit, runs, target in (("1", "hour", 40 * repeat, 3), ("1", "minute", 20 * repeat, 10),
                                              ("10", "second", 10 * repeat, 100)):
                params = {**week, "aggregation": "avg", "bucket_width_value": value, "bucket_width_unit": unit}
                latencies, decoding, buckets = [], [], 0
                split = [0.0, 0.0, 0.0]
                for run in range(runs + 2):
                    if run == 2:  # after the warm-up runs
                        split = await cpu_split(conn, [twin.pid, gateway.pid])
                    # the latency runs to the answer's last byte (as curl or wrk time a request);
                    # the client's JSON decoding is timed after it and printed beside
                    started = time.perf_counter()
                    async with http.get(f"{base}/timeseries_data/aggregate", params=params) as resp:
                        body = await resp.read()
                    received = time.perf_counter()
                    latencies.append((received - started) * 1000)
                    payload = json.loads(body)
                    decoding.append((time.perf_counter() - received) * 1000)
                    buckets = len(payload[str(week_id)])
                spent = [(after - before) * 1000 / runs
                         for before, after in zip(split, await cpu_split(conn, [twin.pid, gateway.pid]), strict=True)]
                p50, p99 = p50_p99(latencies[2:])
                print(f"{value + ' ' + unit:34} {p50:8.1f} {p99:8.1f} {sum(spent):8.1f} {buckets:8d}  <= {target:3d} ms"
                      f"   {' / '.join(f'{ms:.1f}' for ms in spent):28}   {statistics.median(decoding[2:]):.1f}")
            print("(latency: the request sent to the answer's last byte; CPU ms: twin + gateway processes + "
                  "PostgreSQL backends per query; the client's JSON decoding after that, its median beside)")
            if os.environ.get("BENCH_SAVE"):
                await save_answers(http, base, week, Path(os.environ["BENCH_SAVE"]))
            await conn.close()
        print(f"(machine: {os.cpu_count()} cores, shared with other work; load average {os.getloadavg()[0]:.2f})")
    finally:
        for process in (gateway, twin):
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(process.wait(), timeout=20)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        await delete_namespace(AMQP_URL, namespace)
        if os.environ.get("BENCH_KEEP_DB") or reuse:
            print(f"kept database {dsn} (schemas twin, identity)")
        else:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(run())
