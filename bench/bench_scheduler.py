"""Scheduler fire lateness: a burst of 10,000 tasks due in one minute, then a light load.

Self-contained: its own PostgreSQL database (dropped afterwards), its own bus namespace on the
local RabbitMQ (queues deleted afterwards), and `python -m twinbill_scheduler` processes.
The tasks are written straight into the scheduler's table:

- burst: `--tasks` hourly tasks, all due at the next whole minute;
- light: `--light-tasks` every-minute tasks, first due the minute after the burst, watched
  for `--light-minutes` fire times (the scheduler has nothing else to do then).

For each load it prints the time from the fire time until every run message is confirmed (the
scheduler marks a fire published only after RabbitMQ confirmed it) and until a consumer has
received them all, and the p50/p99/max lateness of a fire against its scheduled time
(confirmed, and received).

    .venv/bin/python bench/bench_scheduler.py [--tasks 10000] [--light-tasks 100]
        [--light-minutes 3] [--replicas 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import asyncpg
from aio_pika.abc import AbstractIncomingMessage
from procstats import cpu_seconds  # bench/ is first on sys.path

from twinbill_common.postgres import apply_migrations
from twinbill_common.schemas import RunBilling
from twinbill_common.topology import BILLING_RUNS
from twinbill_devstack.namespaces import delete_namespace
from twinbill_scheduler.app import MIGRATIONS

AMQP_URL = os.environ.get("TWINBILL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG_ADMIN = os.environ.get("TWINBILL_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
SCHEMA = "scheduler"
TICKS = os.sysconf("SC_CLK_TCK")




def quantile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of non-empty values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def seed_tasks(dsn: str, count: int, light: int) -> datetime:
    """Write `count` hourly tasks due at the next whole minute at least 8 s away, and `light`
    every-minute tasks first due one minute later. Returns the burst's fire time."""
    now = datetime.now(UTC)
    due = (now + timedelta(seconds=68)).replace(second=0, microsecond=0)
    if due - now > timedelta(seconds=60):
        due -= timedelta(minutes=1)
    columns = ["natrual_key", "name", "project_id", "device_type", "month", "day", "hour",
               "minute", "enabled", "description", "timezone", "next_fire_at", "create_time",
               "update_time"]
    conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
    try:
        await conn.copy_records_to_table("tasks", columns=columns, records=[
            (uuid.uuid4().hex, f"bench {n}", 1 + n // 2, 1 + n % 2, "*", "*", "*",
             str(due.minute), True, "", "Asia/Shanghai", due, now, now) for n in range(count)])
        await conn.copy_records_to_table("tasks", columns=columns, records=[
            (uuid.uuid4().hex, f"light {n}", 1_000_000 + n // 2, 1 + n % 2, "*", "*", "*", "*", True,
             "", "Asia/Shanghai", due + timedelta(minutes=1), now, now) for n in range(light)])
    finally:
        await conn.close()
    return due


def report(label: str, confirmed: list[float], received: list[float]) -> None:
    """Print one load's figures (seconds after the fire time)."""
    print(f"{label}: {len(confirmed)} fires")
    print(f"  all confirmed   {max(confirmed):6.2f} s after the fire time")
    print(f"  all received    {max(received):6.2f} s after the fire time")
    print(f"  lateness confirmed  p50 {quantile(confirmed, 0.5):.3f} s  "
          f"p99 {quantile(confirmed, 0.99):.3f} s  max {max(confirmed):.3f} s")
    print(f"  lateness received   p50 {quantile(received, 0.5):.3f} s  "
          f"p99 {quantile(received, 0.99):.3f} s  max {max(received):.3f} s")


async def broker_baseline(connection: aio_pika.abc.AbstractConnection, namespace: str,
                          count: int = 3000) -> float:
    """Confirmed persistent publishes per second to a scratch quorum queue, right now: the
    ceiling the broker (and this machine's current load) puts on any publisher."""
    channel = await connection.channel(publisher_confirms=True)
    name = f"{namespace}baseline"
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    body = b'{"run_id": "' + b"x" * 300 + b'"}'
    started = time.perf_counter()
    await asyncio.gather(*(channel.default_exchange.publish(
        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=name, mandatory=True) for _ in range(count)))
    rate = count / (time.perf_counter() - started)
    await queue.delete(if_unused=False, if_empty=False)
    await channel.close()
    return rate


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--light-tasks", type=int, default=100)
    parser.add_argument("--light-minutes", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()

    database = f"twinbill_bench_sched_{uuid.uuid4().hex[:8]}"
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    namespace = f"bsched{uuid.uuid4().hex[:6]}."
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    processes: list[subprocess.Popen[bytes]] = []
    connection = await aio_pika.connect(AMQP_URL)
    logs = Path(tempfile.mkdtemp(prefix="bench_scheduler_"))
    try:
        await apply_migrations(dsn, schema=SCHEMA, directory=MIGRATIONS)
        env = {**os.environ, "SCHEDULER_PG_DSN": dsn, "SCHEDULER_AMQP_URL": AMQP_URL,
               "SCHEDULER_BUS_NAMESPACE": namespace, "SCHEDULER_SCHEMA_NAME": SCHEMA,
               "SCHEDULER_HTTP_PORT": "0",
               "SCHEDULER_LOG_LEVEL": os.environ.get("SCHEDULER_LOG_LEVEL", "WARNING")}
        for n in range(args.replicas):
            log = (logs / f"replica{n}.log").open("wb")
            processes.append(subprocess.Popen(  # noqa: ASYNC220  # start-up only, not timed
                [sys.executable, "-m", "twinbill_scheduler"],
                env={**env, "SCHEDULER_REPLICA_ID": f"bench-{n}"}, stdout=log,
                stderr=subprocess.STDOUT))
        baseline = await broker_baseline(connection, namespace)
        due = await seed_tasks(dsn, args.tasks, args.light_tasks)
        expected = args.tasks + args.light_tasks * args.light_minutes
        print(f"burst: {args.tasks} tasks due at {due.isoformat()} "
              f"({(due - datetime.now(UTC)).total_seconds():.1f} s from now); light: "
              f"{args.light_tasks} tasks every minute from the next, {args.light_minutes} "
              f"fire times; {args.replicas} replica(s), logs in {logs}")

        channel = await connection.channel()
        await channel.set_qos(prefetch_count=2000)
        queue = None
        while queue is None:  # the replica declares the queue when it starts
            try:
                queue = await channel.get_queue(f"{namespace}{BILLING_RUNS.name}", ensure=True)
            except aio_pika.exceptions.ChannelClosed:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=2000)
                await asyncio.sleep(0.2)
        last_light = due + timedelta(minutes=args.light_minutes)
        received: dict[str, tuple[datetime, float]] = {}
        all_in = asyncio.Event()

        watched = 0

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal watched
            run = RunBilling.model_validate_json(message.body)
            if run.run_id not in received:
                received[run.run_id] = (run.fire_time, time.time() - run.fire_time.timestamp())
                watched += run.fire_time <= last_light
            await message.ack()
            if watched >= expected:
                all_in.set()

        cpu_before = [cpu_seconds(p.pid) for p in processes]
        consumer_tag = await queue.consume(on_message)
        await asyncio.wait_for(all_in.wait(), timeout=max(120.0, args.tasks / 50)
                               + 60 * args.light_minutes)
        await queue.cancel(consumer_tag)
        cpu_used = sum(cpu_seconds(p.pid) for p in processes) - sum(cpu_before)

        conn = await asyncpg.connect(dsn, server_settings={"search_path": SCHEMA})
        try:
            published = ("SELECT count(*) FROM fires WHERE state = 'published' "
                         "AND fire_time <= $1")
            while await conn.fetchval(published, last_light) < expected:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the last marks follow the last confirms
            rows = await conn.fetch(
                "SELECT fire_time, extract(epoch FROM published_at - fire_time) AS late "
                "FROM fires WHERE state = 'published' AND fire_time <= $1", last_light)
            duplicates = await conn.fetchval(
                "SELECT count(*) - count(DISTINCT (task_key, fire_time)) FROM fires")
        finally:
            await conn.close()
        print(f"fires confirmed: {len(rows)} / {expected}; duplicates: {duplicates}")
        report("burst", [float(r["late"]) for r in rows if r["fire_time"] == due],
               [late for t, late in received.values() if t == due])
        if args.light_tasks and args.light_minutes:
            report(f"light ({args.light_tasks} per minute)",
                   [float(r["late"]) for r in rows if due < r["fire_time"] <= last_light],
                   [late for t, late in received.values() if due < t <= last_light])
        print(f"broker baseline: {baseline:.0f} confirmed publishes/s (pre-encoded, no database)")
        print(f"scheduler CPU during the run: {cpu_used:.2f} s "
              f"({len(os.sched_getaffinity(0))} cores, load {os.getloadavg()[0]:.2f})")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        await connection.close()
        await delete_namespace(AMQP_URL, namespace)
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
