"""Scale-out on one machine: do two ingest processes and two twin consumers move more than one?

Two parts, each run with one and then two processes under the same conditions, printing the
throughput, the CPU seconds per 100,000 points of each process, and what bounds them:

1. ingest: `bench_ingest.py --processes 1` and `--processes 2` (the same simulator load; the
   processes share the MQTT requests through the shared subscription `$share/bench//sys/...`).
2. twin writes: 1 or 2 twin service processes (one schema, one bus namespace: competing
   consumers of the one quorum queue `twin.telemetry`) are started, then MeasurementsAccepted
   messages of 100 points (as the gateway publishes them, 200 meters) are published as fast as
   RabbitMQ confirms them; the rate is points stored per second from the first publish to the
   last point committed.

Self-contained: its own database, bus namespaces, Mosquitto; ports from `--port-base` up
(else free ports). `--seconds` is each ingest run's length, `--points` the twin part's size.

    .venv/bin/python bench/bench_scaleout.py [--seconds 20] [--points 400000] [--port-base N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

# bench/procstats.py: a script's own folder is first on sys.path.
from procstats import cpu_seconds, find_rabbitmq_home, find_shared_rabbitmq, samples_written, wait_ready

from twinbill_common.bus import Bus
from twinbill_common.topology import TELEMETRY, telemetry_key
from twinbill_devstack.namespaces import delete_namespace
from twinbill_devstack.ports import free_port
from twinbill_devstack.rabbitmq import PrivateRabbitMQ

PG_ADMIN = os.environ.get("TWINBILL_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("TWINBILL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
HERE = Path(__file__).resolve().parent
T0 = 1_793_145_600_000  # 2026-10-28T00:00:00Z
METERS = 200
POINTS_PER_MESSAGE = 100


def run_ingest(processes: int, *, seconds: float, port_base: int, private: bool) -> dict[str, str]:
    """One bench_ingest run; the figures it printed, by name."""
    command = [sys.executable, str(HERE / "bench_ingest.py"), "--seconds", str(seconds),
               "--processes", str(processes), *(["--private-rabbitmq"] if private else [])]
    if port_base:
        command += ["--port-base", str(port_base)]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise SystemExit(f"bench_ingest --processes {processes} failed:\n{finished.stdout}\n{finished.stderr}")
    output = finished.stdout
    figures: dict[str, str] = {}
    if match := re.search(r"-> ([\d,]+) points/s", output):
        figures["points/s"] = match.group(1)
    if match := re.search(r"p99=([\d.]+) ms", output.split("publish-to-reply:")[-1]):
        figures["p99 ms"] = match.group(1)
    for line in output.splitlines():
        if "s/100k points" in line and line.strip().startswith(("ingest", "simulator", "mosquitto", "rabbitmq")):
            name = re.split(r"\s{2,}", line.strip())[0]
            figures[name] = re.sub(r"\s+", " ", line.strip()[len(name):]).strip()
    if match := re.search(r"load average at the end: ([\d.]+)", output):
        figures["load average"] = match.group(1)
    return figures


async def make_meters(conn: asyncpg.Connection, tag: str) -> list[tuple[str, str]]:
    """A project, one product with a `total` measurepoint, METERS devices each with an instance
    and a Stream attribute for it; their (product_key, device_key)."""
    project = await conn.fetchval("INSERT INTO projects (name, timezone) VALUES ($1, 'UTC') RETURNING id",
                                  f"scaleout-{tag}")
    product = await conn.fetchval("INSERT INTO products (product_key, name, billing_register) "
                                  "VALUES ($1, 'meter', 'total') RETURNING id", f"pk{tag}")
    await conn.execute("INSERT INTO measurepoints (product_id, identifier, data_type) "
                       "VALUES ($1, 'total', '{\"type\": \"double\"}')", product)
    template = await conn.fetchval("INSERT INTO templates (product_id, name) VALUES ($1, 't') RETURNING id",
                                   product)
    keys = []
    for number in range(METERS):
        device_key = f"m{number}-{tag}"
        device = await conn.fetchval("INSERT INTO devices (product_id, device_key, name, secret, project_id) "
                                     "VALUES ($1, $2, $2, 's', $3) RETURNING id", product, device_key, project)
        instance = await conn.fetchval("INSERT INTO instances (template_id, device_id, name) "
                                       "VALUES ($1, $2, $3) RETURNING id", template, device, device_key)
        await conn.execute("INSERT INTO attributes (instance_id, name, attrtype, datatype, measurepoint, metric) "
                           "VALUES ($1, 'total', 'Stream', 'Number', 'total', 'total')", instance)
        keys.append((f"pk{tag}", device_key))
    return keys


def bodies(meters: list[tuple[str, str]], points: int) -> list[tuple[str, bytes]]:
    """MeasurementsAccepted bodies of 100 points each (every meter in turn, one reading a
    second), with the exact decimal text the gateway writes."""
    out = []
    for first in range(0, points, POINTS_PER_MESSAGE):
        entries = []
        for n in range(first, min(first + POINTS_PER_MESSAGE, points)):
            pk, dk = meters[n % METERS]
            entries.append(f'{{"product_key":"{pk}","device_key":"{dk}","time":{T0 + (n // METERS) * 1000},'
                           f'"measurepoints":{{"total":{1000 + n // METERS}.{n % 1000:03d}}}}}')
        message_id = uuid.uuid4().hex
        out.append((message_id, (
            f'{{"schema_version":1,"message_id":"{message_id}","produced_at":"2026-11-21T00:00:00+00:00",'
            f'"product_key":"gw","device_key":"gw","request_id":null,"method":"thing.measurepoint.post.batch",'
            f'"received_at":{T0},"points":[{",".join(entries)}]}}').encode()))
    return out




async def start_twin(dsn: str, namespace: str, port: int, amqp_url: str) -> asyncio.subprocess.Process:
    """A twin service process on the bench's schema and namespace."""
    env = {**os.environ, "TWIN_PG_DSN": dsn, "TWIN_SCHEMA_NAME": "twin", "TWIN_BUS_NAMESPACE": namespace,
           "TWIN_HTTP_PORT": str(port), "TWIN_AMQP_URL": amqp_url, "TWIN_LOG_LEVEL": "WARNING"}
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "twinbill_twin", env=env)


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGINT, then kill after 20 s."""
    if process.returncode is None:
        process.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(process.wait(), timeout=20)
    except TimeoutError:
        process.kill()
        await process.wait()


async def run_twin(consumers: int, *, points: int, ports: list[int], rabbit: PrivateRabbitMQ | None
                   ) -> dict[str, str]:
    """Publish `points` to twin.telemetry while `consumers` twin processes store them."""
    amqp_url = rabbit.url if rabbit is not None else AMQP_URL
    tag = uuid.uuid4().hex[:8]
    database = f"twinbill_scaleout_{tag}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    dsn = PG_ADMIN.rsplit("/", 1)[0] + f"/{database}"
    namespace = f"scaleout{tag}."
    bus = Bus(amqp_url, namespace=namespace)
    processes: list[asyncio.subprocess.Process] = []
    try:
        processes = [await start_twin(dsn, namespace, ports[0], amqp_url)]
        await wait_ready(ports[0], processes[0], attempts=1200)  # migrations done: the schema is there
        processes += [await start_twin(dsn, namespace, ports[n], amqp_url) for n in range(1, consumers)]
        for n, process in enumerate(processes):
            await wait_ready(ports[n], process, attempts=1200)
        conn = await asyncpg.connect(dsn, server_settings={"search_path": "twin"})
        meters = await make_meters(conn, tag)
        await bus.connect()
        messages = bodies(meters, points)
        limiter = asyncio.Semaphore(64)

        async def send(message_id: str, body: bytes) -> None:
            async with limiter:
                await bus.publish_raw(TELEMETRY, telemetry_key("gw", "gw"), body, message_id=message_id)

        before = [cpu_seconds(p.pid) for p in processes]
        backends = [row["pid"] for row in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", database)]
        backends_before = sum(cpu_seconds(pid) for pid in backends)
        beam = find_rabbitmq_home(rabbit.directory) if rabbit is not None else find_shared_rabbitmq()
        beam_before = cpu_seconds(beam) if beam else 0.0
        started = time.perf_counter()
        await asyncio.gather(*(send(message_id, body) for message_id, body in messages))
        published = time.perf_counter() - started
        # The twins' counters of committed samples, not `count(*)` of the table ten times a
        # second: that scan ran in a backend of this database and was counted as the twins'.
        async with aiohttp.ClientSession() as http:
            while (stored := sum([await samples_written(http, ports[n]) for n in range(consumers)])) < points:
                if time.perf_counter() - started > 600:
                    raise SystemExit(f"only {stored} of {points} points stored after 10 minutes")
                await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        used = [cpu_seconds(p.pid) - b for p, b in zip(processes, before, strict=True)]
        backends_used = sum(cpu_seconds(pid) for pid in backends) - backends_before
        beam_used = cpu_seconds(beam) - beam_before if beam else 0.0
        if (counted := await conn.fetchval("SELECT count(*) FROM samples")) != points:
            raise SystemExit(f"{counted} samples stored, {points} expected")
        await conn.close()
        figures = {"points/s": f"{points / elapsed:,.0f}",
                   "seconds": f"{elapsed:.1f} (publishing them took {published:.1f})"}
        for n, seconds in enumerate(used):
            figures[f"twin {n + 1}"] = (f"{seconds:.1f} s CPU ({seconds / elapsed * 100:.0f}% of one core) "
                                        f"{seconds * 100_000 / points:.2f} s/100k points")
        figures["postgresql backends"] = (f"{backends_used:.1f} s CPU ({len(backends)} connections of the twins) "
                                          f"{backends_used * 100_000 / points:.2f} s/100k points")
        whose = "the bench's own node" if rabbit is not None else "shared: with others' work"
        figures["rabbitmq"] = (f"{beam_used:.1f} s CPU ({whose}; with the bench's publishing) "
                               f"{beam_used * 100_000 / points:.2f} s/100k points")
        figures["load average"] = f"{os.getloadavg()[0]:.1f}"
        return figures
    finally:
        for process in processes:
            await stop(process)
        if rabbit is None:
            await delete_namespace(AMQP_URL, namespace)
        await bus.close()
        admin = await asyncpg.connect(PG_ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def show(title: str, figures: dict[str, str]) -> None:
    """Print one run's figures."""
    print(title)
    for name, value in figures.items():
        print(f"  {name:28s} {value}")


def main() -> None:
    """Run both parts with one and two processes and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--points", type=int, default=400_000)
    parser.add_argument("--port-base", type=int, default=0, help="take ports from here up (0: free ports)")
    parser.add_argument("--only", choices=["ingest", "twin"], help="run one part")
    parser.add_argument("--private-rabbitmq", action="store_true",
                        help="a RabbitMQ node of the bench's own (each ingest run has one, the twin part one)")
    args = parser.parse_args()
    ports = [args.port_base + 90 + n for n in range(2)] if args.port_base else [free_port(), free_port()]
    print(f"{os.cpu_count()} cores shared with other work; load average at the start "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    if args.only in (None, "ingest"):
        for processes in (1, 2):
            show(f"ingest, {processes} process(es), simulator as fast as replies allow:",
                 run_ingest(processes, seconds=args.seconds, port_base=args.port_base,
                            private=args.private_rabbitmq))
    if args.only in (None, "twin"):
        rabbit = None
        if args.private_rabbitmq:
            directory = Path(tempfile.mkdtemp(prefix="bench-scaleout-rabbit-"))
            rabbit = PrivateRabbitMQ(directory)
            if args.port_base:
                rabbit.port, rabbit.dist_port = args.port_base + 95, args.port_base + 96
            rabbit.start()
        try:
            for consumers in (1, 2):
                show(f"twin writes, {consumers} consumer process(es), {args.points:,} points:",
                     asyncio.run(run_twin(consumers, points=args.points, ports=ports, rabbit=rabbit)))
        finally:
            if rabbit is not None:
                rabbit.stop()


if __name__ == "__main__":
    main()
