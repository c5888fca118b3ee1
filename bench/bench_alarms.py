"""Alarm rules on the live stream: can rule evaluation keep up with the ingest bench's rate?

Run: .venv/bin/python bench/bench_alarms.py [--rate 60000] [--seconds 20] [--backlog 400000] [--private]
     [--replicas N]

`--private` runs a RabbitMQ node of the bench's own (ports 18520/18521, or two free ones of
TWINBILL_PORT_RANGE when it is set; in a temporary directory, stopped at the end) instead of the
machine's shared one.

It creates its own database, starts the twin service as a subprocess with only the alarm consumer
on the telemetry side (TWIN_TELEMETRY_ENABLED=false: the sample store is measured by
bench_timeseries), on port 18510 (TWINBILL_BENCH_PORT) and a bus namespace of its own; registers
8 gateways x 100 meters in one project with three rules that every point passes (an implausible
register, a threshold, a continuous leak: none fires), and publishes MeasurementsAccepted as the
ingest gateway does (one message per gateway request of 100 points, as in bench_ingest).

1. backlog: `--backlog` points published as fast as RabbitMQ confirms, then drained: points/s
   of rule evaluation and the twin process's CPU seconds per 100,000 points;
2. live: `--rate` points/s for `--seconds` (the ingest bench measured 57,000-91,000), the lag
   (wall clock minus the newest device time the rules have seen) printed every second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
from procstats import wait_ready  # bench/ is first on sys.path

from twinbill_common.bus import Bus
from twinbill_common.topology import ALARM_SHARDS, TELEMETRY, telemetry_key, telemetry_slot
from twinbill_devstack.namespaces import delete_namespace
from twinbill_devstack.ports import PORT_RANGE_ENV, free_port
from twinbill_devstack.rabbitmq import PrivateRabbitMQ

PG_ADMIN = os.environ.get("TWINBILL_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
SHARED_AMQP_URL = os.environ.get("TWINBILL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PORT = int(os.environ.get("TWINBILL_BENCH_PORT", "18510"))
GATEWAYS, METERS = 8, 100
RULES_TTL = 1.0  # TWIN_ALARM_RULES_TTL of the bench's twins
ROOT = Path(__file__).resolve().parent.parent
RULES = [
    ("register", '{"measurepoint": "total", "max_per_hour": 1000000000}'),
    ("threshold", '{"measurepoint": "total", "above": 1000000000000, "hysteresis": 1}'),
    ("leak", '{"measurepoint": "total", "flow_above": 1000000000, "hours": 1}'),
]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def make_registry(conn: asyncpg.Connection, tag: str) -> list[tuple[str, list[str]]]:
    """One project with the rules, gateways and their meters: [(gateway key, [meter keys])]."""
    project = await conn.fetchval("INSERT INTO projects (name, timezone) VALUES ($1, 'Asia/Shanghai') RETURNING id",
                                  f"bench-{tag}")
    product = await conn.fetchval("INSERT INTO products (product_key, name, billing_register) "
                                  "VALUES ($1, 'meter', 'total') RETURNING id", f"pk{tag}")
    await conn.execute("INSERT INTO measurepoints (product_id, identifier, data_type) "
                       "VALUES ($1, 'total', '{\"type\": \"double\"}')", product)
    layout = []
    for g in range(GATEWAYS):
        gateway = f"gw{g}"
        await conn.execute("INSERT INTO devices (product_id, device_key, name, secret, project_id) "
                           "VALUES ($1, $2, $2, 's', $3)", product, gateway, project)
        meters = [f"gw{g}-m{m}" for m in range(METERS)]
        await conn.executemany("INSERT INTO devices (product_id, device_key, name, secret, project_id, device_type) "
                               "VALUES ($1, $2, $2, 's', $3, 1)", [(product, key, project) for key in meters])
        layout.append((gateway, meters))
    for kind, params in RULES:
        await conn.execute("INSERT INTO alarm_rules (project_id, kind, name, params) VALUES ($1, $2, $2, $3::jsonb)",
                           project, kind, params)
    return layout


def message(pk: str, gateway: str, meters: list[str], *, at_ms: int, reading: int) -> tuple[str, bytes]:
    """One gateway request: a reading per meter at `at_ms`, as the ingest gateway publishes it."""
    message_id = uuid.uuid4().hex
    points = ",".join(f'{{"product_key":"{pk}","device_key":"{key}","time":{at_ms},'
                      f'"measurepoints":{{"total":{reading}.{m % 10}}}}}' for m, key in enumerate(meters))
    text = (f'{{"schema_version":1,"message_id":"{message_id}","produced_at":"2026-12-06T00:00:00Z",'
            f'"product_key":"{pk}","device_key":"{gateway}","request_id":"1",'
            f'"method":"thing.measurepoint.post.batch","received_at":{at_ms},"points":[{points}]}}')
    return message_id, text.encode()




NEWEST = ("SELECT coalesce(max((rules->(SELECT id::text FROM alarm_rules WHERE kind = 'register'))->>'t'), '0')"
          "::bigint FROM alarm_device_state")
SEEN_ALL = ("SELECT count(*) FROM alarm_device_state WHERE "
            "((rules->(SELECT id::text FROM alarm_rules WHERE kind = 'register'))->>'t')::bigint >= $1")


async def run(args: argparse.Namespace, amqp_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    database = f"twinbill_bench_{tag}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    namespace = f"bench{tag}."
    env = {**os.environ, "TWIN_PG_DSN": dsn, "TWIN_SCHEMA_NAME": "twin", "TWIN_BUS_NAMESPACE": namespace,
           "TWIN_HTTP_PORT": str(PORT), "TWIN_AMQP_URL": amqp_url,
           "TWIN_LOG_LEVEL": os.environ.get("TWIN_LOG_LEVEL", "WARNING"),
           "TWIN_TELEMETRY_ENABLED": "false", "TWIN_ALARM_SWEEP_INTERVAL": "30",
           "TWIN_ALARM_RULES_TTL": str(RULES_TTL)}
    # --replicas N: N twin processes on the same database and bus namespace, sharing the alarm
    # shards through their leases (docs/architecture.md, "Alarm shards")
    processes = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "twinbill_twin", env={**env, "TWIN_HTTP_PORT": str(PORT + n)}, cwd=ROOT)
        for n in range(args.replicas)]
    bus = Bus(amqp_url, namespace=namespace)

    def twin_cpu() -> float:
        return sum(cpu_seconds(each.pid) for each in processes)

    try:
        for n, each in enumerate(processes):
            await wait_ready(PORT + n, each)
        conn = await asyncpg.connect(dsn, server_settings={"search_path": "twin"})
        pk = f"pk{tag}"
        layout = await make_registry(conn, tag)
        # The twin read its (empty) rules when it started (the offline sweep) and keeps them for
        # the rules' ttl: a backlog evaluated faster than that would all pass no rule.
        await asyncio.sleep(RULES_TTL + 0.5)
        await bus.connect()
        limiter = asyncio.Semaphore(64)
        reading = 1

        async def send(gateway: str, meters: list[str], at_ms: int) -> None:
            nonlocal reading
            reading += 1
            message_id, payload = message(pk, gateway, meters, at_ms=at_ms, reading=reading)
            async with limiter:
                await bus.publish_raw(TELEMETRY, telemetry_key(pk, gateway), payload, message_id=message_id)

        # 1. backlog
        requests = args.backlog // METERS
        start_ms = int(time.time() * 1000) - 3_600_000
        print(f"backlog: publishing {requests * METERS:,} points ({requests:,} messages) ...", flush=True)
        if args.replicas > 1:  # until every replica holds its share of the shards
            while len(set(await conn.fetch("SELECT member FROM alarm_shard_leases WHERE expires_at > now() "  # noqa: ASYNC110  # polls PostgreSQL
                                           "AND member IS NOT NULL"))) < args.replicas:
                await asyncio.sleep(0.2)
        slots = sorted(telemetry_slot(pk, gateway) % ALARM_SHARDS for gateway, _ in layout)
        print(f"{args.replicas} twin replica(s); the gateways' alarm shards: {slots}", flush=True)
        cpu0, started = twin_cpu(), time.perf_counter()
        await asyncio.gather(*(send(*layout[i % GATEWAYS], start_ms + i // GATEWAYS) for i in range(requests)))
        published = time.perf_counter() - started
        last_ms = start_ms + (requests - 1) // GATEWAYS
        devices = GATEWAYS * METERS
        while await conn.fetchval(SEEN_ALL, last_ms - GATEWAYS) < devices:
            if time.perf_counter() - started > 900:
                raise SystemExit("the backlog was not evaluated within 15 minutes")
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        cpu = twin_cpu() - cpu0
        points = requests * METERS
        print(f"backlog: {points:,} points evaluated in {elapsed:.1f} s = {points / elapsed:,.0f} points/s "
              f"(publishing alone {published:.1f} s); twin CPU {cpu:.1f} s = {cpu / points * 1e5:.2f} s "
              f"per 100,000 points, busy {cpu / elapsed:.0%} of a core")

        # 2. live at the ingest bench's rate
        per_second = args.rate // METERS
        print(f"live: {per_second * METERS:,} points/s for {args.seconds} s ...", flush=True)
        lags: list[float] = []
        cpu0, started = twin_cpu(), time.perf_counter()
        live_start_ms = int(time.time() * 1000)
        sent = 0
        for second in range(args.seconds):
            tick = time.perf_counter()
            now_ms = int(time.time() * 1000)
            await asyncio.gather(*(send(*layout[i % GATEWAYS], now_ms + i // GATEWAYS) for i in range(per_second)))
            sent += per_second * METERS
            # nothing of the live phase evaluated yet: at least since the phase began
            newest = max(await conn.fetchval(NEWEST), live_start_ms)
            lag = max(0.0, time.time() - newest / 1000)
            lags.append(lag)
            behind = time.perf_counter() - tick
            print(f"  {second + 1:3d} s: published in {behind:.2f} s, lag {lag:.2f} s", flush=True)
            if behind < 1:
                await asyncio.sleep(1 - behind)
        while await conn.fetchval(SEEN_ALL, now_ms) < devices:  # noqa: ASYNC110  # polls PostgreSQL
            await asyncio.sleep(0.05)
        drained = time.perf_counter() - started - args.seconds
        cpu = twin_cpu() - cpu0
        print(f"live: {sent:,} points at {sent / (time.perf_counter() - started):,.0f} points/s; lag p50 "
              f"{statistics.median(lags):.2f} s, max {max(lags):.2f} s; the last second evaluated "
              f"{max(drained, 0):.2f} s after the run; twin CPU {cpu / sent * 1e5:.2f} s per 100,000 points, "
              f"busy {cpu / (time.perf_counter() - started):.0%} of a core (a twin process uses one)")
        print(f"(machine: {os.cpu_count()} cores, shared with other work; load average "
              f"{os.getloadavg()[0]:.2f})")
        await conn.close()
    finally:
        for each in processes:
            each.send_signal(signal.SIGINT)
        for each in processes:
            try:
                await asyncio.wait_for(each.wait(), timeout=20)
            except TimeoutError:
                each.kill()
        await bus.close()
        await delete_namespace(amqp_url, namespace)
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=60_000, help="points per second in the live phase")
    parser.add_argument("--seconds", type=int, default=20, help="length of the live phase")
    parser.add_argument("--backlog", type=int, default=400_000, help="points in the backlog phase")
    parser.add_argument("--private", action="store_true", help="a RabbitMQ node of its own (18520/18521)")
    parser.add_argument("--replicas", type=int, default=1, help="twin processes sharing the alarm shards")
    args = parser.parse_args()
    if not args.private:
        asyncio.run(run(args, SHARED_AMQP_URL))
        return
    with tempfile.TemporaryDirectory(prefix="bench-alarms-") as directory:
        broker = PrivateRabbitMQ(Path(directory))
        if os.environ.get(PORT_RANGE_ENV):  # a developer's own ports on a shared machine
            broker.port, broker.dist_port = free_port(), free_port()
        else:
            broker.port, broker.dist_port = 18520, 18521
        broker.start(timeout=120)
        try:
            asyncio.run(run(args, broker.url))
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
