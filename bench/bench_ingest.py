"""Ingest gateway throughput: the simulator drives the gateway over real MQTT (batches of 100
points); prints measurepoints per second acknowledged with 200, p50/p99 publish-to-reply, the
CPU seconds each process used per 100,000 points (less sensitive to other load on the machine
than the wall rate), and each process's RSS over the run with its growth per minute.

Self-contained: its own Mosquitto (project config, auth + ACLs), the gateway as `--processes`
separate processes sharing the MQTT load through the shared subscription (`python -m
twinbill_ingest`, registry from a file), its own bus namespace on the local RabbitMQ (deleted
afterwards), or with `--private-rabbitmq` a RabbitMQ node of its own (twinbill_devstack.rabbitmq:
its CPU is then the bench's alone, and the bench runs while the shared broker is busy or away).
`--port-base N` takes Mosquitto's, the gateways' HTTP and the private node's ports from N up
(else free ports).

    .venv/bin/python bench/bench_ingest.py [--seconds 20] [--gateways 8] [--sub-devices 50]
        [--processes 1] [--port-base N] [--private-rabbitmq] [--rate POINTS_PER_S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

# bench/procstats.py: a script's own folder is first on sys.path.
from procstats import RssSampler, cpu_seconds, find_rabbitmq_home, find_shared_rabbitmq

from twinbill_devstack.broker import SERVICE_USER, DevBroker
from twinbill_devstack.namespaces import delete_namespace
from twinbill_devstack.ports import free_port
from twinbill_devstack.rabbitmq import PrivateRabbitMQ
from twinbill_ingest.__main__ import event_loop_factory
from twinbill_ingest.mqtt import share_property_tables
from twinbill_ingest.mqttio import BatchedIO
from twinbill_simulator import run_simulator
from twinbill_simulator.config import generate_config, registry_for

AMQP_URL = os.environ.get("TWINBILL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def wait_ready(port: int, timeout: float = 30.0) -> None:
    """Poll the gateway's /readyz until it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the gateway did not become ready")


def scrape(port: int, name: str) -> float:
    """Sum of a metric family's samples from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def main() -> None:
    """Run the bench and print its figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--gateways", type=int, default=8)
    parser.add_argument("--sub-devices", type=int, default=50)
    parser.add_argument("--window", type=int, default=16, help="requests in flight per gateway")
    parser.add_argument("--rate", type=float, help="points/s offered (default: as fast as replies allow); "
                        "at one rate the CPU per point compares between runs on a busy machine")
    parser.add_argument("--processes", type=int, default=1, help="ingest gateway processes (one share group)")
    parser.add_argument("--port-base", type=int, default=0, help="take ports from here up (0: free ports)")
    parser.add_argument("--private-rabbitmq", action="store_true", help="a RabbitMQ node of the bench's own")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the (first) gateway process here")
    args = parser.parse_args()

    ports = iter(range(args.port_base, args.port_base + 100)) if args.port_base else None

    def port() -> int:
        return next(ports) if ports is not None else free_port()

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    config = generate_config(args.gateways, args.sub_devices, prefix=f"b{uuid.uuid4().hex[:4]}")
    registry_file = workdir / "registry.json"
    registry_file.write_text(json.dumps(registry_for(config)))
    rabbit: PrivateRabbitMQ | None = None
    amqp_url = AMQP_URL
    if args.private_rabbitmq:
        (workdir / "rabbit").mkdir()
        rabbit = PrivateRabbitMQ(workdir / "rabbit")
        rabbit.port, rabbit.dist_port = port(), port()
        rabbit.start()
        amqp_url = rabbit.url
    broker = DevBroker(workdir)
    broker.port = port()
    broker.start()
    broker.add_users({f"{g['product_key']}/{g['device_key']}": g["secret"] for g in config["gateways"]})
    namespace = f"bench{uuid.uuid4().hex[:6]}."
    gateways: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for number in range(args.processes):
            http_port = port()
            env = {
                **os.environ,
                "INGEST_MQTT_PORT": str(broker.port),
                "INGEST_MQTT_USERNAME": SERVICE_USER,
                "INGEST_MQTT_PASSWORD": broker.service_password,
                "INGEST_REGISTRY_FILE": str(registry_file),
                "INGEST_BUS_NAMESPACE": namespace,
                "INGEST_HTTP_PORT": str(http_port),
                "INGEST_AMQP_URL": amqp_url,
                "INGEST_LOG_LEVEL": "WARNING",
                "INGEST_SHARE_GROUP": "bench",
            }
            profile = ["-m", "cProfile", "-o", str(args.profile)] if args.profile and number == 0 else []
            gateways.append((subprocess.Popen([sys.executable, *profile, "-m", "twinbill_ingest"], env=env), http_port))
        for _, http_port in gateways:
            wait_ready(http_port)
        time.sleep(1.0)  # let the session observers subscribe too
        pids = {f"ingest gateway {n + 1}": process.pid for n, (process, _) in enumerate(gateways)}
        pids |= {"mosquitto": broker.pid, "simulator (this process)": os.getpid()}
        if rabbit is not None and (beam := find_rabbitmq_home(rabbit.directory)) is not None:
            pids["rabbitmq (the bench's own)"] = beam
        elif rabbit is None and (beam := find_shared_rabbitmq()) is not None:
            pids["rabbitmq (shared)"] = beam
        # The simulator runs here, on the same cores as the gateways: its paho builds no
        # per-packet lookup tables either, and its clients read and write in as few system
        # calls as the gateway's (twinbill_ingest.mqttio.BatchedIO), on the gateway's event loop
        # (uvloop where installed).
        share_property_tables()
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        with RssSampler(pids, every=1.0) as rss, asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            stats = runner.run(
                run_simulator(
                    config,
                    port=broker.port,
                    rate=args.rate,
                    duration=args.seconds,
                    batch=100,
                    window=args.window,
                    auth=True,
                    offline_every=None,
                    report_every=5.0,
                    log=lambda line: print(f"  {line}", flush=True),
                    client_class=BatchedIO,
                )
            )
        wall = time.monotonic() - started
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        confirm_count = sum(scrape(p, "ingest_publish_confirm_seconds_count") for _, p in gateways)
        confirm_sum = sum(scrape(p, "ingest_publish_confirm_seconds_sum") for _, p in gateways)
        elapsed = args.seconds
        points = stats.points_acked
        print()
        print(
            f"gateways={args.gateways} meters/gateway={args.sub_devices} batch=100 points "
            f"window={args.window}/gateway, {elapsed:.0f}s, ingest processes={args.processes}, "
            f"{os.cpu_count()} shared cores"
        )
        print(
            f"points acknowledged with 200: {points:,} -> "
            f"{points / elapsed:,.0f} points/s ({points / elapsed / 100:,.0f} requests/s)"
        )
        print(f"publish-to-reply: p50={stats.percentile(0.5) * 1000:.1f} ms p99={stats.percentile(0.99) * 1000:.1f} ms")
        if confirm_count:
            print(
                f"publish-to-confirm (gateways, mean): {confirm_sum / confirm_count * 1000:.1f} ms "
                f"over {confirm_count:,.0f} publishes"
            )
        print(f"reply codes: {dict(stats.codes)} timeouts={stats.timeouts} retries={stats.retries}")
        per = 100_000 / points if points else 0.0
        print(f"CPU seconds used during the run ({wall:.1f} s of wall time), and per 100,000 points acknowledged:")
        for name, seconds in used.items():
            print(f"  {name:28s} {seconds:6.1f} s  ({seconds / wall * 100:5.1f}% of one core)  "
                  f"{seconds * per:6.2f} s/100k points")
        ingest = sum(seconds for name, seconds in used.items() if name.startswith("ingest"))
        print(f"  {'ingest gateways together':28s} {ingest:6.1f} s  ({ingest / wall * 100:5.1f}% of one core)  "
              f"{ingest * per:6.2f} s/100k points")
        print("RSS, MiB: start, 25%, 50%, 75%, end of the run; growth after the first fifth (least squares)")
        for line in rss.report():
            print(line)
        print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[0]} on {os.cpu_count()} cores")
    finally:
        for process, _ in gateways:
            process.terminate()
        for process, _ in gateways:
            process.wait(timeout=15)
        broker.stop()
        if rabbit is not None:
            rabbit.stop()
        else:
            asyncio.run(delete_namespace(AMQP_URL, namespace))


if __name__ == "__main__":
    main()
