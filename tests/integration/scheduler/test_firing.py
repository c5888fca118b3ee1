"""Firing on the real PostgreSQL and RabbitMQ: catch-up in order, disable, edits, lease takeover."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conditions import wait_until
from tests.integration.scheduler.helpers import drain_runs
from twinbill_common.bus import Bus
from twinbill_common.metrics import new_registry
from twinbill_common.postgres import create_pool
from twinbill_scheduler.domain.crontab import next_fire, parse_crontab, previous_fire
from twinbill_scheduler.firing import Firer
from twinbill_scheduler.metrics import scheduler_metrics
from twinbill_scheduler.settings import SchedulerSettings
from twinbill_scheduler.store import TaskStore

Client = TestClient[web.Request, web.Application]
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def firer(client: Client, settings: SchedulerSettings) -> AsyncIterator[Firer]:
    """One replica's firing loop on the test's schema and namespace (driven by the test)."""
    pool = await create_pool(settings.pg_dsn.get_secret_value(), schema=settings.schema_name)
    bus = Bus(settings.amqp_url.get_secret_value(), namespace=settings.bus_namespace)
    await bus.connect(declare=False)
    replica = Firer(TaskStore(pool), bus, metrics=scheduler_metrics(new_registry()),
                    replica="test-replica", poll_interval=0.05, lease_seconds=1.0)
    yield replica
    await bus.close()
    await pool.close()


async def create_task(client: Client, **overrides: Any) -> dict[str, Any]:
    body = {"name": "抄表", "project_id": 49, "device_type": 1, "enabled": True,
            "description": "", "crontab": {"month": "*", "day": "*", "hour": "*", "minute": "0"},
            **overrides}
    async with client.post("/api/v1/scheduler/task/", json=body) as response:
        answer = await response.json()
        assert response.status == 200, answer
        data: dict[str, Any] = answer["data"]
        return data


async def fires_of(db: asyncpg.Connection, key: str) -> list[asyncpg.Record]:
    """The task's fire rows, earliest first."""
    rows: list[asyncpg.Record] = await db.fetch("SELECT * FROM fires WHERE task_key = $1 ORDER BY fire_time", key)
    return rows


async def test_catch_up_after_downtime_in_order(
        client: Client, db: asyncpg.Connection, firer: Firer, settings: SchedulerSettings,
        amqp_url: str) -> None:
    """All replicas down across three fire times: one replica requests the three runs, in
    order, each period running from the schedule's previous fire to this one; none doubled."""
    now = datetime.now(UTC)
    minute = (now + timedelta(minutes=30)).astimezone(SHANGHAI).minute  # next fire ~30 min away
    crontab = parse_crontab({"month": "*", "day": "*", "hour": "*", "minute": str(minute)})
    task = await create_task(client, crontab=crontab.as_dict())
    key = task["natrual_key"]
    # The downtime: the stored next fire time is three fires in the past.
    last_missed = previous_fire(now, crontab=crontab, tz=SHANGHAI)
    first_missed = last_missed - timedelta(hours=2)
    await db.execute("UPDATE tasks SET next_fire_at = $2 WHERE natrual_key = $1", key,
                     first_missed)

    loop = asyncio.create_task(firer.run())
    try:
        async def three_published() -> bool:
            rows = await fires_of(db, key)
            return len(rows) == 3 and all(r["state"] == "published" for r in rows)
        await wait_until(three_published, timeout=30, what="three caught-up fires")
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    runs = await drain_runs(amqp_url, settings.bus_namespace)
    expected_ends = [first_missed + timedelta(hours=h) for h in range(3)]
    assert [r.period_end for r in runs] == expected_ends
    assert [r.period_start for r in runs] == [first_missed - timedelta(hours=1),
                                              *expected_ends[:2]]
    assert [r.run_id for r in runs] == [f"{key}:{int(t.timestamp())}" for t in expected_ends]
    assert {(r.project_id, r.device_type, r.task_key) for r in runs} == {(49, 1, key)}
    row = await db.fetchrow("SELECT next_fire_at, last_run_at FROM tasks WHERE natrual_key = $1",
                            key)
    assert row["last_run_at"] == last_missed
    assert row["next_fire_at"] == next_fire(now, crontab=crontab, tz=SHANGHAI) > now
    async with client.get(f"/api/v1/scheduler/tasks/{key}/") as response:
        shown = (await response.json())["data"]["last_run_at"]
    assert shown == last_missed.astimezone(SHANGHAI).replace(tzinfo=None).isoformat()


async def test_disabled_task_never_fires_and_enabling_is_not_retroactive(
        client: Client, db: asyncpg.Connection, firer: Firer) -> None:
    """A disabled task is not claimed even if due; switching it on schedules from now."""
    task = await create_task(client)
    key = task["natrual_key"]
    async with client.put(f"/api/v1/scheduler/tasks/{key}/status/",
                          json={"enabled": False}) as response:
        assert response.status == 200
    past = datetime.now(UTC) - timedelta(hours=5)
    await db.execute("UPDATE tasks SET next_fire_at = $2 WHERE natrual_key = $1", key, past)
    assert await firer.round() is False
    assert await fires_of(db, key) == []
    async with client.put(f"/api/v1/scheduler/tasks/{key}/status/",
                          json={"enabled": True}) as response:
        assert response.status == 200
    row = await db.fetchrow("SELECT next_fire_at FROM tasks WHERE natrual_key = $1", key)
    assert row["next_fire_at"] > datetime.now(UTC)
    assert await firer.round() is False
    assert await fires_of(db, key) == []


async def test_editing_crontab_recomputes_from_now(
        client: Client, db: asyncpg.Connection, firer: Firer) -> None:
    """A due task whose crontab is edited gets its next fire from now: nothing retroactive.
    An edit that keeps the crontab keeps the pending fire time."""
    task = await create_task(client)
    key = task["natrual_key"]
    past = datetime.now(UTC) - timedelta(hours=5)
    await db.execute("UPDATE tasks SET next_fire_at = $2 WHERE natrual_key = $1", key, past)
    body = {"name": "renamed", "enabled": True, "description": "d", "crontab": task["crontab"]}
    async with client.put(f"/api/v1/scheduler/tasks/{key}/", json=body) as response:
        assert response.status == 200
    kept = await db.fetchval("SELECT next_fire_at FROM tasks WHERE natrual_key = $1", key)
    assert kept == past
    new_tab = {"month": "*", "day": "1", "hour": "1", "minute": "0"}
    async with client.put(f"/api/v1/scheduler/tasks/{key}/", json={**body, "crontab": new_tab}
                          ) as response:
        answer = await response.json()
        assert answer["data"]["crontab"] == new_tab
    moved = await db.fetchval("SELECT next_fire_at FROM tasks WHERE natrual_key = $1", key)
    expected = next_fire(datetime.now(UTC) - timedelta(seconds=5),
                         crontab=parse_crontab(new_tab), tz=SHANGHAI)
    assert moved == expected > datetime.now(UTC)
    assert await firer.round() is False
    assert await fires_of(db, key) == []


async def test_claimed_but_unpublished_fire_is_published_after_lease(
        client: Client, db: asyncpg.Connection, firer: Firer, settings: SchedulerSettings,
        amqp_url: str) -> None:
    """A replica died between claim and publish: while its lease runs nobody touches the task;
    after it, another replica publishes that fire (same run id) and only then the next one."""
    task = await create_task(client)
    key = task["natrual_key"]
    fire_time = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    await db.execute(
        """INSERT INTO fires (task_key, fire_time, period_start, project_id, device_type, state,
                              claimed_by, claimed_at)
           VALUES ($1, $2, $3, 49, 1, 'claimed', 'dead-replica', now())""",
        key, fire_time, fire_time - timedelta(hours=1))
    following = fire_time + timedelta(hours=1)
    await db.execute("UPDATE tasks SET next_fire_at = $2 WHERE natrual_key = $1", key, following)

    assert await firer.round() is False  # lease still running: the next fire waits its turn
    assert [r["state"] for r in await fires_of(db, key)] == ["claimed"]

    await db.execute("UPDATE fires SET claimed_at = now() - interval '1 hour'")  # lease over
    await firer.round()
    assert [(r["state"], r["claimed_by"], r["attempts"]) for r in await fires_of(db, key)] == [
        ("published", "test-replica", 2)]
    await firer.round()  # only now is the following fire claimed
    rows = await fires_of(db, key)
    assert [(r["fire_time"], r["state"], r["claimed_by"], r["attempts"]) for r in rows] == [
        (fire_time, "published", "test-replica", 2),
        (following, "published", "test-replica", 1)]
    runs = await drain_runs(amqp_url, settings.bus_namespace)
    assert [r.run_id for r in runs] == [f"{key}:{int(fire_time.timestamp())}",
                                        f"{key}:{int(following.timestamp())}"]
    assert [(r.period_start, r.period_end) for r in runs] == [
        (fire_time - timedelta(hours=1), fire_time), (fire_time, following)]


async def test_a_slow_live_replica_keeps_its_claims(
        client: Client, db: asyncpg.Connection, firer: Firer) -> None:
    """A fire past its lease whose replica still beats is not taken over (that would publish
    it twice); once the replica falls silent for a lease, it is."""
    task = await create_task(client)
    key = task["natrual_key"]
    fire_time = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    await db.execute(
        """INSERT INTO fires (task_key, fire_time, period_start, project_id, device_type, state,
                              claimed_by, claimed_at)
           VALUES ($1, $2, $3, 49, 1, 'claimed', 'slow-replica', now() - interval '1 hour')""",
        key, fire_time, fire_time - timedelta(hours=1))
    await db.execute("INSERT INTO replicas VALUES ('slow-replica', now())")
    await firer.round()
    assert [(r["state"], r["claimed_by"]) for r in await fires_of(db, key)] == [
        ("claimed", "slow-replica")]
    await db.execute("UPDATE replicas SET seen_at = now() - interval '1 minute'")
    await firer.round()
    assert [(r["state"], r["claimed_by"]) for r in await fires_of(db, key)] == [
        ("published", "test-replica")]
