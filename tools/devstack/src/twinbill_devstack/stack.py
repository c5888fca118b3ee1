"""Make sure the local services answer: PostgreSQL, RabbitMQ, Mosquitto, and a MongoDB.

PostgreSQL, RabbitMQ and Mosquitto come from the machine's packages; one that is installed but
stopped is started with the machine's documented command. MongoDB has no package here, so the
embedded wire-protocol server (nx-27017) is started unless MONGO_URL names a real one.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from twinbill_common.mongo import port_open, start_embedded_mongo


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


def ensure_services(*, wait: float = 90.0) -> list[str]:
    """Start any stopped local service that is installed; return the problems that remain."""
    problems = []
    for service in SERVICES:
        if port_open("127.0.0.1", service.port):
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


def ensure_mongo(*, state_dir: Path, port: int = 27017) -> str:
    """The MongoDB URL to use: MONGO_URL if set, else one already on `port`, else a new nx-27017."""
    if url := os.environ.get("MONGO_URL"):
        return url
    if not port_open("127.0.0.1", port):
        start_embedded_mongo(data_dir=state_dir / "mongo", port=port, log_file=state_dir / "mongo.log")
    return f"mongodb://127.0.0.1:{port}"


def main() -> None:
    """`twinbill-stack`: check and start the local services, print what answers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".stack"))
    parser.add_argument("--no-mongo", action="store_true", help="do not start the embedded MongoDB")
    args = parser.parse_args()
    problems = ensure_services()
    for problem in problems:
        print(f"stack: {problem}", file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print("stack: PostgreSQL 5432, RabbitMQ 5672, Mosquitto 1883 answer")
    if not args.no_mongo:
        print(f"stack: MongoDB at {ensure_mongo(state_dir=args.state_dir)}")


if __name__ == "__main__":
    main()
