"""Ingest gateway throughput: the simulator drives the gateway over real MQTT (batches of 100
points); prints measurepoints per second acknowledged with 200 and p50/p99 publish-to-reply.

Self-contained: its own Mosquitto (project config, auth + ACLs) on a free port, the gateway as a
separate process (`python -m twinbill_ingest`, registry from a file), its own bus namespace on
the local RabbitMQ (deleted afterwards).

    .venv/bin/python bench/bench_ingest.py [--seconds 20] [--gateways 8] [--sub-devices 50]
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

from twinbill_devstack.namespaces import delete_namespace
from twinbill_ingest.devbroker import SERVICE_USER, DevBroker, free_port
from twinbill_simulator import run_simulator
from twinbill_simulator.config import generate_config, registry_for

AMQP_URL = os.environ.get("TWINBILL_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def find_pid(name: str) -> int | None:
    """The first process whose command name is `name` (RabbitMQ's beam.smp)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    return int(entry.name)
            except OSError:
                continue
    return None


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
    parser.add_argument("--profile", type=Path, help="write a cProfile of the gateway process here")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    config = generate_config(args.gateways, args.sub_devices, prefix=f"b{uuid.uuid4().hex[:4]}")
    registry_file = workdir / "registry.json"
    registry_file.write_text(json.dumps(registry_for(config)))
    broker = DevBroker(workdir).start()
    broker.add_users({f"{g['product_key']}/{g['device_key']}": g["secret"] for g in config["gateways"]})
    namespace = f"bench{uuid.uuid4().hex[:6]}."
    http_port = free_port()
    env = {
        **os.environ,
        "INGEST_MQTT_PORT": str(broker.port),
        "INGEST_MQTT_USERNAME": SERVICE_USER,
        "INGEST_MQTT_PASSWORD": broker.service_password,
        "INGEST_REGISTRY_FILE": str(registry_file),
        "INGEST_BUS_NAMESPACE": namespace,
        "INGEST_HTTP_PORT": str(http_port),
        "INGEST_AMQP_URL": AMQP_URL,
        "INGEST_LOG_LEVEL": "WARNING",
        "INGEST_SHARE_GROUP": "bench",
    }
    profile = ["-m", "cProfile", "-o", str(args.profile)] if args.profile else []
    gateway = subprocess.Popen([sys.executable, *profile, "-m", "twinbill_ingest"], env=env)
    try:
        wait_ready(http_port)
        time.sleep(1.0)  # let the session observer subscribe too
        pids = {"gateway": gateway.pid, "mosquitto": broker.pid, "simulator (this process)": os.getpid()}
        if (beam := find_pid("beam.smp")) is not None:
            pids["rabbitmq (shared)"] = beam
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        stats = asyncio.run(
            run_simulator(
                config,
                port=broker.port,
                rate=None,
                duration=args.seconds,
                batch=100,
                window=args.window,
                auth=True,
                offline_every=None,
                report_every=5.0,
                log=lambda line: print(f"  {line}", flush=True),
            )
        )
        elapsed = args.seconds
        confirm_count = scrape(http_port, "ingest_publish_confirm_seconds_count")
        confirm_sum = scrape(http_port, "ingest_publish_confirm_seconds_sum")
        print()
        print(
            f"gateways={args.gateways} meters/gateway={args.sub_devices} batch=100 points "
            f"window={args.window}/gateway, {elapsed:.0f}s, 2 shared cores"
        )
        print(
            f"points acknowledged with 200: {stats.points_acked:,} -> "
            f"{stats.points_acked / elapsed:,.0f} points/s ({stats.points_acked / elapsed / 100:,.0f} requests/s)"
        )
        print(f"publish-to-reply: p50={stats.percentile(0.5) * 1000:.1f} ms p99={stats.percentile(0.99) * 1000:.1f} ms")
        if confirm_count:
            print(
                f"publish-to-confirm (gateway, mean): {confirm_sum / confirm_count * 1000:.1f} ms "
                f"over {confirm_count:,.0f} publishes"
            )
        print(f"reply codes: {dict(stats.codes)} timeouts={stats.timeouts} retries={stats.retries}")
        print("CPU seconds used during the run (where the time goes):")
        for name, pid in pids.items():
            used = cpu_seconds(pid) - before[name]
            print(f"  {name:26s} {used:6.1f} s  ({used / elapsed * 100:5.1f}% of one core)")
        print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[0]} on {os.cpu_count()} cores")
    finally:
        gateway.terminate()
        gateway.wait(timeout=15)
        broker.stop()
        asyncio.run(delete_namespace(AMQP_URL, namespace))


if __name__ == "__main__":
    main()
