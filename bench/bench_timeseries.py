"""Twin time series benchmark: the write path (RabbitMQ -> consumer -> PostgreSQL) and seed-002
attribute queries over HTTP against the real twin service.

Run: .venv/bin/python bench/bench_timeseries.py
(BENCH_KEEP_DB=1 keeps the database, BENCH_REUSE_DB=<it> queries it again without loading,
BENCH_REPEAT=N runs each query N times as often, BENCH_ONLY=write measures the write path alone,
TWINBILL_BENCH_AMQP_URL and BENCH_RABBITMQ_PID another RabbitMQ node and its beam.smp process.)

It creates its own database, starts the twin service as a subprocess (own schema, own bus
namespace, a free port), publishes 7 days of 1-second data (604,800 points) for one attribute
plus 10-second data for nine other attributes of another device (544,320 points) as the ingest
gateway would, measures until everything is committed, then times the queries.
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
from decimal import Decimal
from pathlib import Path

import aiohttp
import asyncpg
from procstats import (  # bench/ is first on sys.path
    bench_database,
    cpu_seconds,
    find_pid,
    samples_written,
    wait_ready,
    wait_sealed,
)

from twinbill_common.bus import Bus
from twinbill_common.topology import TELEMETRY, telemetry_key
from twinbill_devstack.namespaces import delete_namespace
from twinbill_devstack.ports import free_port  # inside TWINBILL_PORT_RANGE when set

PG_ADMIN = os.environ.get("TWINBILL_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("TWINBILL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
T0 = 1_793_145_600_000          # 2026-10-28T00:00:00Z: the week crosses a month (two partitions)
DAY = 86_400_000
POINTS_PER_MESSAGE = 500
OTHER_POINTS = [f"m{i}" for i in range(9)]
ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")




async def server_cpu(conn: asyncpg.Connection, pids: list[int]) -> float:
    """CPU seconds so far of these processes and of the PostgreSQL backends serving the bench
    database (the pool's connections persist across the runs of one case)."""
    backends = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                "AND pid <> pg_backend_pid()")
    return sum(cpu_seconds(pid) for pid in [*pids, *(r["pid"] for r in backends)])


async def write_path_cpu(conn: asyncpg.Connection, twin: int, rabbit: int | None) -> dict[str, float]:
    """CPU seconds so far of each part of the write path: the twin process, the PostgreSQL
    backends of the bench database, RabbitMQ (the whole node: other work on it counts too) and
    this process (publishing as the ingest gateway would)."""
    backends = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                "AND pid <> pg_backend_pid()")
    return {"twin": cpu_seconds(twin), "postgresql": sum(cpu_seconds(r["pid"]) for r in backends),
            "rabbitmq": cpu_seconds(rabbit) if rabbit else 0.0, "publisher": time.process_time()}


async def make_registry(conn: asyncpg.Connection, measurepoints: list[str],
                        tag: str) -> tuple[str, str, dict[str, int]]:
    """A project, product, device, instance and one Stream attribute per measurepoint."""
    project = await conn.fetchval("INSERT INTO projects (name, timezone) VALUES ($1, 'UTC') RETURNING id",
                                  f"bench-{tag}")
    product = await conn.fetchval("INSERT INTO products (product_key, name, billing_register) "
                                  "VALUES ($1, 'meter', $2) RETURNING id", f"pk{tag}", measurepoints[0])
    for mp in measurepoints:
        await conn.execute("INSERT INTO measurepoints (product_id, identifier, data_type) "
                           "VALUES ($1, $2, '{\"type\": \"double\"}')", product, mp)
    template = await conn.fetchval("INSERT INTO templates (product_id, name) VALUES ($1, 't') RETURNING id",
                                   product)
    device = await conn.fetchval("INSERT INTO devices (product_id, device_key, name, secret, project_id) "
                                 "VALUES ($1, $2, $2, 's', $3) RETURNING id", product, f"dk{tag}", project)
    instance = await conn.fetchval("INSERT INTO instances (template_id, device_id, name) "
                                   "VALUES ($1, $2, $3) RETURNING id", template, device, f"inst-{tag}")
    attributes = {}
    for mp in measurepoints:
        attributes[mp] = await conn.fetchval(
            "INSERT INTO attributes (instance_id, name, attrtype, datatype, measurepoint, metric) "
            "VALUES ($1, $2, 'Stream', 'Number', $2, $2) RETURNING id", instance, mp)
    return f"pk{tag}", f"dk{tag}", attributes


def body(pk: str, dk: str, points: list[tuple[int, dict[str, str]]]) -> tuple[str, bytes]:
    """A MeasurementsAccepted body with exact decimal number text, as the gateway publishes it."""
    message_id = uuid.uuid4().hex
    encoded = ",".join(
        f'{{"product_key":"{pk}","device_key":"{dk}","time":{ts},"measurepoints":{{'
        + ",".join(f'"{k}":{v}' for k, v in mps.items()) + "}}" for ts, mps in points)
    text = (f'{{"schema_version":1,"message_id":"{message_id}","produced_at":"2026-11-21T00:00:00Z",'
            f'"product_key":"{pk}","device_key":"{dk}","request_id":null,'
            f'"method":"thing.measurepoint.resume.batch","received_at":{T0 + 7 * DAY},'
            f'"points":[{encoded}]}}')
    return message_id, text.encode()


def main_series() -> list[list[tuple[int, dict[str, str]]]]:
    """604,800 one-second points of a slowly rising register, in messages of 500."""
    points = [(T0 + i * 1000, {"total": str(Decimal(100000 + i) / 10)}) for i in range(7 * 86_400)]
    return [points[i:i + POINTS_PER_MESSAGE] for i in range(0, len(points), POINTS_PER_MESSAGE)]


def other_series() -> list[list[tuple[int, dict[str, str]]]]:
    """10-second points of nine measurepoints (60,480 instants x 9 values)."""
    points = [(T0 + i * 10_000, {mp: f"{(i * (k + 3)) % 1000}.{k}" for k, mp in enumerate(OTHER_POINTS)})
              for i in range(7 * 8_640)]
    step = POINTS_PER_MESSAGE // 9 or 1
    return [points[i:i + step] for i in range(0, len(points), step)]




async def time_query(http: aiohttp.ClientSession, url: str, params: dict[str, str], runs: int,
                     conn: asyncpg.Connection, pids: list[int]) -> tuple[float, float, float, int, float]:
    """p50 and p99 latency (ms) of a GET, from sending it to the answer's last byte (as curl or
    wrk time a request), the server's CPU ms per query (twin + PostgreSQL, less sensitive to
    other load than the latency), the number of dps in the answer, and the client's median
    time to decode that JSON (not in the latency: it is the client's work, and it grows with
    the answer, 1-3 ms for the 10,080 buckets of a week at one minute)."""
    latencies = []
    decoding = []
    dps = 0
    cpu_before = await server_cpu(conn, pids)
    for _ in range(runs):
        started = time.perf_counter()
        async with http.get(url, params=params) as resp:
            body = await resp.read()
        received = time.perf_counter()
        latencies.append((received - started) * 1000)
        payload = json.loads(body)
        decoding.append((time.perf_counter() - received) * 1000)
        if resp.status != 200:
            raise SystemExit(f"{params}: {resp.status} {payload}")
        dps = sum(len(series["dps"]) for series in payload["data"]["value"])
    cpu_ms = (await server_cpu(conn, pids) - cpu_before) * 1000 / runs
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return statistics.median(latencies), p99, cpu_ms, dps, statistics.median(decoding)


async def load(conn: asyncpg.Connection, bus: Bus, pid: int, port: int, tag: str) -> dict[str, int]:
    """The registry and a week of data through the bus and the twin's consumer, timed."""
    pk, dk, main_attrs = await make_registry(conn, ["total"], tag)
    opk, odk, _other_attrs = await make_registry(conn, OTHER_POINTS, tag + "o")
    print("encoding messages ...", flush=True)
    messages = [(pk, dk, body(pk, dk, chunk)) for chunk in main_series()]
    messages += [(opk, odk, body(opk, odk, chunk)) for chunk in other_series()]
    expected = 7 * 86_400 + 7 * 8_640 * len(OTHER_POINTS)
    await bus.connect()
    limiter = asyncio.Semaphore(64)

    async def send(item: tuple[str, str, tuple[str, bytes]]) -> None:
        key_pk, key_dk, (message_id, payload) = item
        async with limiter:
            await bus.publish_raw(TELEMETRY, telemetry_key(key_pk, key_dk), payload, message_id=message_id)

    print(f"publishing {len(messages)} messages, {expected} points ...", flush=True)
    # RabbitMQ's node (BENCH_RABBITMQ_PID names it when the bench uses one of several on the
    # machine); shared with other work there: an upper bound
    rabbit = int(os.environ.get("BENCH_RABBITMQ_PID", "0")) or find_pid("beam.smp")
    before = await write_path_cpu(conn, pid, rabbit)
    started = time.perf_counter()
    await asyncio.gather(*(send(item) for item in messages))
    published = time.perf_counter() - started
    # The twin's count of committed samples, not `count(*)` of the table: that scan, five times
    # a second over a growing table, was a large part of the PostgreSQL CPU this bench charged
    # to the write path.
    async with aiohttp.ClientSession() as http:
        while (stored := await samples_written(http, port)) < expected:
            if time.perf_counter() - started > 900:
                raise SystemExit(f"only {stored} of {expected} points stored after 15 minutes")
            await asyncio.sleep(0.2)
    elapsed = time.perf_counter() - started
    used = {part: seconds - before[part] for part, seconds in (await write_path_cpu(conn, pid, rabbit)).items()}
    if (counted := await conn.fetchval("SELECT count(*) FROM samples")) != expected:
        raise SystemExit(f"{counted} samples stored, {expected} expected")
    twin_pg = used["twin"] + used["postgresql"]
    print(f"write path: {expected} points in {elapsed:.1f} s = {expected / elapsed:,.0f} points/s "
          f"(publishing alone took {published:.1f} s); CPU: {twin_pg * 1e6 / expected:.1f} us/point "
          "(twin process + PostgreSQL backends)")
    print("  CPU us/point: " + ", ".join(f"{part} {seconds * 1e6 / expected:.2f}" for part, seconds in used.items())
          + f" (load average {os.getloadavg()[0]:.2f})")
    await conn.execute("ANALYZE")
    return main_attrs


async def run() -> None:
    tag = os.environ.get("BENCH_TAG") or uuid.uuid4().hex[:8]  # a name of one's own (shared servers)
    reuse = os.environ.get("BENCH_REUSE_DB", "")
    database, dsn = await bench_database(tag)
    port = free_port()
    namespace = f"bench{tag}."
    env = {**os.environ, "TWIN_PG_DSN": dsn, "TWIN_SCHEMA_NAME": "twin", "TWIN_BUS_NAMESPACE": namespace,
           "TWIN_HTTP_PORT": str(port), "TWIN_AMQP_URL": AMQP_URL, "TWIN_LOG_LEVEL": "WARNING",
           "TWIN_TELEMETRY_BATCH": os.environ.get("TWIN_TELEMETRY_BATCH", "500")}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "twinbill_twin", env=env,
                                                   cwd=ROOT)
    bus = Bus(AMQP_URL, namespace=namespace)
    try:
        await wait_ready(port, process)
        conn = await asyncpg.connect(dsn, server_settings={"search_path": "twin"})
        if reuse:
            main_attrs = {"total": await conn.fetchval("SELECT id FROM attributes WHERE name = 'total'")}
        else:
            main_attrs = await load(conn, bus, process.pid, port, tag)
        await conn.execute("ANALYZE")
        if os.environ.get("BENCH_ONLY") != "write":
            print(f"(the twin sealed the loaded hours {await wait_sealed(conn):.1f} s later; queries run after)")
        if os.environ.get("BENCH_ONLY") == "write":
            await conn.close()
            return

        url = f"http://127.0.0.1:{port}/dt/open/v1/instance/attribute/{main_attrs['total']}"
        week = {"start": str(T0 // 1000), "end": str((T0 + 7 * DAY) // 1000 - 1)}
        cases = [
            ("1h-avg (7 days)", {**week, "downsample": "1h-avg", "aggregator": "avg"}, 40, 3),
            ("1m-avg (7 days)", {**week, "downsample": "1m-avg", "aggregator": "avg"}, 20, 10),
            ("10s-avg (7 days)", {**week, "downsample": "10s-avg", "aggregator": "avg"}, 10, 100),
            ("1h-p95 (7 days)", {**week, "downsample": "1h-p95", "aggregator": "avg"}, 20, 30),
            ("1h-p50 (7 days)", {**week, "downsample": "1h-p50", "aggregator": "avg"}, 20, 30),
            ("1h-ep99r7 (7 days)", {**week, "downsample": "1h-ep99r7", "aggregator": "avg"}, 20, 30),
            ("1dc-p95 (7 days)", {**week, "downsample": "1dc-p95", "aggregator": "avg"}, 10, None),
            ("0all-count (7 days)", {**week, "downsample": "0all-count", "aggregator": "avg"}, 40, None),
            ("raw one hour", {"start": str((T0 + 3 * DAY) // 1000),
                              "end": str((T0 + 3 * DAY + 3_599_000) // 1000)}, 40, 3),
        ]
        repeat = int(os.environ.get("BENCH_REPEAT", "1"))  # more runs: finer CPU figures (10 ms ticks)
        cases = [(name, params, runs * repeat, target) for name, params, runs, target in cases]
        async with aiohttp.ClientSession() as http:
            await time_query(http, url, cases[0][1], 3, conn, [process.pid])  # warm the pool and caches
            print(f"{'query':24} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms':>8} {'dps':>7}  target p50  "
                  "client decode ms")
            for name, params, runs, target in cases:
                p50, p99, cpu_ms, dps, decode = await time_query(http, url, params, runs, conn, [process.pid])
                goal = f"<= {target} ms" if target else "-"
                print(f"{name:24} {p50:8.1f} {p99:8.1f} {cpu_ms:8.1f} {dps:7d}  {goal:10}  {decode:.1f}")
        print("(latency: the request sent to the answer's last byte; CPU ms: twin process + PostgreSQL "
              "backends per query; the client's JSON decoding after that, its median beside)")
        await conn.close()
        print(f"(machine: {os.cpu_count()} cores, shared with other work; load average "
              f"{os.getloadavg()[0]:.2f})")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), timeout=20)
        except TimeoutError:
            process.kill()
            await process.wait()
        await delete_namespace(bus.url, bus.namespace)
        await bus.close()
        if os.environ.get("BENCH_KEEP_DB") or reuse:
            print(f"kept database {dsn} (schema twin)")
        else:
            admin = await asyncpg.connect(PG_ADMIN)
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(run())
