"""Exactly once across processes: three replicas race for 1,000 due fires, one is SIGKILLed
holding claims it never published; every (task, fire time) gives exactly one run message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.conditions import wait_until
from tests.integration.scheduler.helpers import drain_runs
from twinbill_common.postgres import apply_migrations
from twinbill_scheduler.app import MIGRATIONS

TASKS = 1000
ROOT = Path(__file__).resolve().parents[3]  # `python -m tests...` runs from the repository


class Replicas:
    """Scheduler processes started by a test, stopped (or killed) by it."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, replica: str, *, module: str = "twinbill_scheduler",
              **settings: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.env, "SCHEDULER_REPLICA_ID": replica,
               **{f"SCHEDULER_{k.upper()}": v for k, v in settings.items()}}
        log = (self.logs / f"{replica}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", module], env=env, cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.processes[replica] = process
        return process

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def replicas(pg_dsn: str, amqp_url: str, bus_namespace: str, schema_name: str,
             tmp_path: Path) -> Iterator[Replicas]:
    """Process launcher on this test's schema and bus namespace."""
    group = Replicas({"SCHEDULER_PG_DSN": pg_dsn, "SCHEDULER_AMQP_URL": amqp_url,
                      "SCHEDULER_BUS_NAMESPACE": bus_namespace,
                      "SCHEDULER_SCHEMA_NAME": schema_name, "SCHEDULER_HTTP_PORT": "0",
                      "SCHEDULER_LEASE_SECONDS": "5", "SCHEDULER_POLL_INTERVAL": "0.1",
                      "SCHEDULER_LOG_LEVEL": "WARNING"}, tmp_path)
    yield group
    group.stop_all()


async def test_three_replicas_one_killed_every_fire_exactly_once(
        replicas: Replicas, pg_dsn: str, amqp_url: str, bus_namespace: str,
        schema_name: str) -> None:
    """1,000 tasks due in the same minute; the victim claims, stalls and is SIGKILLed; the two
    survivors take over its fires after the lease: exactly 1,000 runs, one per (task, fire)."""
    await apply_migrations(pg_dsn, schema=schema_name, directory=MIGRATIONS)
    db = await asyncpg.connect(pg_dsn, server_settings={"search_path": schema_name})
    try:
        due = datetime.now(UTC).replace(second=0, microsecond=0)  # this minute, already due
        now = datetime.now(UTC)
        keys = [uuid.uuid4().hex for _ in range(TASKS)]
        # Hourly at this minute (UTC): the following fire is an hour away, so one fire each.
        await db.copy_records_to_table("tasks", columns=[
            "natrual_key", "name", "project_id", "device_type", "month", "day", "hour",
            "minute", "enabled", "description", "timezone", "next_fire_at", "create_time",
            "update_time"], records=[
            (key, f"task {n}", 1 + n // 2, 1 + n % 2, "*", "*", "*", str(due.minute), True, "", "UTC",
             due, now, now) for n, key in enumerate(keys)])

        async def claimed_by(replica: str) -> int:
            return int(await db.fetchval("SELECT count(*) FROM fires WHERE claimed_by = $1",
                                         replica))

        def has_claimed(replica: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return await claimed_by(replica) > 0
            return check

        # The victim claims small batches and stalls before publishing (fault injection).
        victim = replicas.start("victim", module="tests.integration.scheduler.stalling_replica",
                                claim_batch="40")
        await wait_until(has_claimed("victim"), timeout=60,
                         what="the victim's first claim")
        stranded = {row["task_key"] for row in await db.fetch(
            "SELECT task_key FROM fires WHERE claimed_by = 'victim'")}
        replicas.start("survivor-a", claim_batch="100")
        replicas.start("survivor-b", claim_batch="100")

        async def a_survivor_claimed() -> bool:  # either may win the whole remaining batch
            return await claimed_by("survivor-a") + await claimed_by("survivor-b") > 0
        await wait_until(a_survivor_claimed, timeout=60, what="a survivor claiming")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)

        async def all_published() -> bool:
            return bool(await db.fetchval(
                "SELECT count(*) = $1 AND bool_and(state = 'published') FROM fires", TASKS))
        await wait_until(all_published, timeout=90, what="all 1,000 fires published")
        retaken = {row["task_key"] for row in await db.fetch(
            "SELECT task_key FROM fires WHERE attempts > 1 AND claimed_by <> 'victim'")}
        assert stranded and stranded <= retaken  # the survivors published the victim's claims
        replicas.stop_all()
        runs = await drain_runs(amqp_url, bus_namespace)
    finally:
        await db.close()
    expected = {f"{key}:{int(due.timestamp())}" for key in keys}
    assert len(runs) == TASKS
    assert {run.run_id for run in runs} == expected
    assert all(run.period_end == due and run.period_start == due - timedelta(hours=1)
               for run in runs)

