"""Make sure the local services answer: PostgreSQL, RabbitMQ, Mosquitto, and a MongoDB.

PostgreSQL, RabbitMQ and Mosquitto come from the machine's packages; one that is installed but
stopped is started with the machine's documented command. MongoDB has no package here, so the
embedded wire-protocol server (nx-27017) is started unless MONGO_URL names a real one.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from twinbill_common.settings import load_settings
from twinbill_devstack.mongo import start_embedded_mongo
from twinbill_devstack.ports import port_open
from twinbill_devstack.settings import DevstackSettings


@dataclass(frozen=True)
class Service:
    """A local service: where it listens and how the machine starts it."""

    name: str
    port: int
    binary: str
    start: list[str]


def _pg_start() -> list[str]:
    versions = sorted(os.path.basename(p) for p in glob.glob("/etc/postgresql/*"))
    version = versions[-1] if versions else "15"
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"]


SERVICES = (
    Service("PostgreSQL", 5432, "pg_ctlcluster", _pg_start()),
    Service("RabbitMQ", 5672, "rabbitmq-server", ["rabbitmq-server", "-detached"]),
    Service("Mosquitto", 1883, "mosquitto", ["mosquitto", "-d", "-c", "/etc/mosquitto/mosquitto.conf"]),
)


# AMQP 0-9-1's protocol header; a broker that answers it sends Connection.Start, a method frame.
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
_METHOD_FRAME = 1


def amqp_answers(host: str, port: int, *, timeout: float = 15.0) -> bool:
    """Whether the broker at host:port begins the AMQP handshake (its first frame) within
    `timeout`. A RabbitMQ 3.10 node has been seen to wedge under heavy quorum-queue churn: it
    still accepts TCP connections but never answers one, so an open port proves nothing."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_AMQP_HEADER)
            first = sock.recv(1)
    except OSError:  # refused, reset or timed out
        return False
    return first == bytes([_METHOD_FRAME])


def ensure_services(*, wait: float = 90.0) -> list[str]:
    """Start any stopped local service that is installed; return the problems that remain."""
    problems = []
    for service in SERVICES:
        if port_open("127.0.0.1", service.port):
            if service.name == "RabbitMQ" and not amqp_answers("127.0.0.1", service.port):
                problems.append(
                    f"RabbitMQ accepts connections on {service.port} but does not begin the AMQP handshake: "
                    "the broker is wedged (seen with RabbitMQ 3.10 under heavy quorum-queue churn); "
                    "restart it (stop its beam.smp, then rabbitmq-server -detached)")
            continue
        if shutil.which(service.binary) is None:
            problems.append(f"{service.name} is not listening on {service.port} and is not installed")
            continue
        print(f"starting {service.name}: {' '.join(service.start)}", file=sys.stderr)
        subprocess.run(service.start, check=False)  # noqa: S603  # the machine's documented command
        deadline = time.monotonic() + wait
        while not port_open("127.0.0.1", service.port) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not port_open("127.0.0.1", service.port):
            problems.append(f"{service.name} did not start listening on {service.port} within {wait}s")
    return problems


def ensure_mongo(*, state_dir: Path, url: str | None = None,
                 port: int = 27017) -> tuple[str, subprocess.Popen[bytes] | None]:
    """The MongoDB URL to use: `url` (MONGO_URL) if set, else one already on `port`, else a new
    nx-27017 (returned too, so whoever started it can stop it)."""
    if url:
        return url, None
    started = None
    if not port_open("127.0.0.1", port):
        started = start_embedded_mongo(data_dir=state_dir / "mongo", port=port, log_file=state_dir / "mongo.log")
    return f"mongodb://127.0.0.1:{port}", started


# Namespaces the test suite and the benchmarks make: `t<hex>.`, `tts<hex>.`, `bench<hex>.`, ...
TEST_NAMESPACE = re.compile(r"^(t|tts|tbr|al|bench|bsched)[0-9a-f]{4,}\.")


def _rabbitmqctl_names(kind: str) -> list[str]:
    found = subprocess.run(["rabbitmqctl", "-q", kind, "name"],  # noqa: S603, S607  # the machine's broker CLI, fixed argv
                           capture_output=True, text=True, check=False, timeout=60)
    if found.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {kind} failed: {found.stderr.strip()}")
    return [line.strip() for line in found.stdout.splitlines()[1:] if line.strip()]


async def _delete(url: str, queues: list[str], exchanges: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url, timeout=10)
    async with connection:
        channel = await connection.channel()
        for name in queues:
            await channel.queue_delete(name)
        for name in exchanges:
            await channel.exchange_delete(name)


def sweep_test_namespaces(*, url: str, pattern: re.Pattern[str] = TEST_NAMESPACE) -> tuple[int, int]:
    """Delete every queue and exchange of a test or bench namespace left on the local broker.

    Lists names with rabbitmqctl (AMQP cannot list) and deletes them over AMQP. Only for a broker
    that no test run is using at that moment: CI calls it before the suite.
    """
    if shutil.which("rabbitmqctl") is None:
        return 0, 0
    queues = [n for n in _rabbitmqctl_names("list_queues") if pattern.match(n)]
    exchanges = [n for n in _rabbitmqctl_names("list_exchanges") if pattern.match(n)]
    asyncio.run(_delete(url, queues, exchanges))
    return len(queues), len(exchanges)


def main() -> None:
    """`twinbill-stack`: check and start the local services, print what answers."""
    settings = load_settings(DevstackSettings)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=settings.state_dir)
    parser.add_argument("--no-mongo", action="store_true", help="do not start the embedded MongoDB")
    parser.add_argument("--sweep-test-queues", action="store_true",
                        help="delete queues and exchanges left by earlier test or bench runs")
    args = parser.parse_args()
    problems = ensure_services()
    for problem in problems:
        print(f"stack: {problem}", file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print("stack: PostgreSQL 5432, RabbitMQ 5672, Mosquitto 1883 answer")
    if args.sweep_test_queues:
        queues, exchanges = sweep_test_namespaces(url=settings.test_amqp_url)
        print(f"stack: deleted {queues} queues and {exchanges} exchanges left by earlier test runs")
    if not args.no_mongo:
        # left running: that is what `make stack` is for
        url, _ = ensure_mongo(state_dir=args.state_dir, url=settings.mongo_url)
        print(f"stack: MongoDB at {url}")


if __name__ == "__main__":
    main()
