"""The PostgreSQL side: tasks, their next fire times, and the atomic claim of due fires."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

import asyncpg

from twinbill_scheduler.domain.crontab import Crontab
from twinbill_scheduler.domain.tasks import Claim, DueTask, Fire, Task
from twinbill_scheduler.errors import TaskConflict

_TASK_COLUMNS = """natrual_key, name, project_id, device_type, month, day, hour, minute, enabled,
    description, timezone, next_fire_at, last_run_at, create_time, update_time"""

# One statement claims a batch: rows still due at the expected instant (compare-and-set on
# next_fire_at) and not locked by another replica are advanced to their next fire time, and a
# fire row is recorded under the unique key (task, fire time). A task whose previous fire is
# still unpublished is not claimed again, so its runs are requested in order.
_CLAIM = """
WITH wanted AS (
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[])
        AS w(natrual_key, due, next_fire, period_start)
), locked AS (
    SELECT t.natrual_key, w.due, w.next_fire, w.period_start
    FROM tasks t JOIN wanted w ON t.natrual_key = w.natrual_key
    WHERE t.enabled AND t.next_fire_at = w.due
      AND NOT EXISTS (SELECT 1 FROM fires f
                      WHERE f.task_key = t.natrual_key AND f.state = 'claimed')
    FOR UPDATE OF t SKIP LOCKED
), advanced AS (
    UPDATE tasks t SET next_fire_at = l.next_fire
    FROM locked l WHERE t.natrual_key = l.natrual_key
    RETURNING t.natrual_key, l.due, l.period_start, t.project_id, t.device_type
)
INSERT INTO fires (task_key, fire_time, period_start, project_id, device_type, state,
                   claimed_by, claimed_at)
SELECT natrual_key, due, period_start, project_id, device_type, 'claimed', $5, now()
FROM advanced
ON CONFLICT (task_key, fire_time) DO NOTHING
RETURNING task_key, fire_time, period_start, project_id, device_type
"""

# A fire claimed longer than the lease ago by a replica that has not said it is alive for as
# long (it died between claim and confirm) is taken over, one replica at a time. A live replica
# that is merely slow keeps its fires: taking them over would publish them twice.
_TAKE_STALE = """
UPDATE fires f SET claimed_by = $2, claimed_at = now(), attempts = f.attempts + 1
FROM (SELECT task_key, fire_time FROM fires p
      WHERE state = 'claimed' AND claimed_at < now() - make_interval(secs => $1)
        AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.replica_id = p.claimed_by
                        AND r.seen_at > now() - make_interval(secs => $1))
      ORDER BY fire_time LIMIT $3 FOR UPDATE OF p SKIP LOCKED) s
WHERE f.task_key = s.task_key AND f.fire_time = s.fire_time
RETURNING f.task_key, f.fire_time, f.period_start, f.project_id, f.device_type
"""

_MARK_PUBLISHED = """
WITH done AS (
    UPDATE fires f SET state = 'published', published_at = now()
    FROM unnest($1::text[], $2::timestamptz[]) AS d(task_key, fire_time)
    WHERE f.task_key = d.task_key AND f.fire_time = d.fire_time AND f.state = 'claimed'
    RETURNING f.task_key, f.fire_time
), latest AS (
    SELECT task_key, max(fire_time) AS fire_time FROM done GROUP BY task_key
)
UPDATE tasks t SET last_run_at = greatest(t.last_run_at, l.fire_time)
FROM latest l WHERE t.natrual_key = l.task_key
"""


def _task(row: asyncpg.Record) -> Task:
    return Task(
        natrual_key=row["natrual_key"].strip(),
        name=row["name"],
        project_id=row["project_id"],
        device_type=row["device_type"],
        crontab=Crontab(month=row["month"], day=row["day"], hour=row["hour"],
                        minute=row["minute"]),
        enabled=row["enabled"],
        description=row["description"],
        timezone=row["timezone"],
        next_fire_at=row["next_fire_at"],
        last_run_at=row["last_run_at"],
        create_time=row["create_time"],
        update_time=row["update_time"],
    )


def _fire(row: asyncpg.Record) -> Fire:
    return Fire(task_key=row["task_key"].strip(), fire_time=row["fire_time"],
                period_start=row["period_start"], project_id=row["project_id"],
                device_type=row["device_type"])


class TaskStore:
    """Tasks and fires in the scheduler schema (the pool's search_path points at it)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def _conflict(self, task: Task) -> TaskConflict:
        """The 409 for a task that would be a second enabled one of its project and device type."""
        other = await self.pool.fetchval(
            """SELECT natrual_key FROM tasks WHERE enabled AND project_id = $1 AND device_type = $2
               AND natrual_key <> $3 LIMIT 1""", task.project_id, task.device_type, task.natrual_key)
        return TaskConflict(project_id=task.project_id, device_type=task.device_type, other_key=other)

    async def insert(self, task: Task) -> Task:
        """Store a new task; TaskConflict when another enabled task has its project and type."""
        try:
            return await self._insert(task)
        except asyncpg.UniqueViolationError as err:
            if err.constraint_name != "tasks_one_enabled":
                raise
            raise await self._conflict(task) from err

    async def _insert(self, task: Task) -> Task:
        row = await self.pool.fetchrow(
            f"""INSERT INTO tasks ({_TASK_COLUMNS})
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                RETURNING {_TASK_COLUMNS}""",
            task.natrual_key, task.name, task.project_id, task.device_type, task.crontab.month,
            task.crontab.day, task.crontab.hour, task.crontab.minute, task.enabled,
            task.description, task.timezone, task.next_fire_at, task.last_run_at,
            task.create_time, task.update_time,
        )
        return _task(row)

    async def get(self, key: str) -> Task | None:
        """One task, or None."""
        row = await self.pool.fetchrow(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE natrual_key = $1", key)
        return None if row is None else _task(row)

    async def page(self, *, project_id: int, device_type: int | None, limit: int,
                   offset: int) -> tuple[int, list[Task]]:
        """A project's tasks (of one device type, or all), oldest first, and their total."""
        where = "project_id = $1 AND ($2::smallint IS NULL OR device_type = $2)"
        async with self.pool.acquire() as conn:
            count = await conn.fetchval(f"SELECT count(*) FROM tasks WHERE {where}",
                                        project_id, device_type)
            rows = await conn.fetch(
                f"""SELECT {_TASK_COLUMNS} FROM tasks WHERE {where}
                    ORDER BY create_time, seq LIMIT $3 OFFSET $4""",
                project_id, device_type, limit, offset)
        return int(count), [_task(row) for row in rows]

    async def replace(self, task: Task) -> Task | None:
        """Write a task's editable fields and its next fire time; None if it is gone.

        TaskConflict when it would be a second enabled task of its project and device type (the
        partial unique index `tasks_one_enabled` decides, so concurrent requests cannot both win).
        """
        try:
            return await self._replace(task)
        except asyncpg.UniqueViolationError as err:
            if err.constraint_name != "tasks_one_enabled":
                raise
            raise await self._conflict(task) from err

    async def _replace(self, task: Task) -> Task | None:
        row = await self.pool.fetchrow(
            f"""UPDATE tasks SET name = $2, month = $3, day = $4, hour = $5, minute = $6,
                    enabled = $7, description = $8, timezone = $9, next_fire_at = $10,
                    update_time = $11
                WHERE natrual_key = $1 RETURNING {_TASK_COLUMNS}""",
            task.natrual_key, task.name, task.crontab.month, task.crontab.day,
            task.crontab.hour, task.crontab.minute, task.enabled, task.description,
            task.timezone, task.next_fire_at, task.update_time)
        return None if row is None else _task(row)

    async def delete(self, key: str) -> bool:
        """Delete a task; False if there was none. Fires already claimed still publish."""
        status = await self.pool.execute("DELETE FROM tasks WHERE natrual_key = $1", key)
        return bool(status.endswith(" 1"))

    async def due(self, *, limit: int) -> list[DueTask]:
        """Enabled tasks whose next fire time has come, earliest first."""
        rows = await self.pool.fetch(
            """SELECT natrual_key, next_fire_at, month, day, hour, minute, timezone
               FROM tasks t
               WHERE enabled AND next_fire_at <= now()
                 AND NOT EXISTS (SELECT 1 FROM fires f
                                 WHERE f.task_key = t.natrual_key AND f.state = 'claimed')
               ORDER BY next_fire_at LIMIT $1""", limit)
        return [DueTask(natrual_key=r["natrual_key"].strip(), due=r["next_fire_at"],
                        crontab=Crontab(month=r["month"], day=r["day"], hour=r["hour"],
                                        minute=r["minute"]),
                        timezone=r["timezone"]) for r in rows]

    async def claim(self, claims: Sequence[Claim], *, replica: str) -> list[Fire]:
        """Claim fires atomically; returns only those this replica won."""
        if not claims:
            return []
        rows = await self.pool.fetch(
            _CLAIM, [c.natrual_key for c in claims], [c.due for c in claims],
            [c.next_fire for c in claims], [c.period_start for c in claims], replica)
        return sorted((_fire(r) for r in rows), key=lambda f: f.fire_time)

    async def take_stale(self, *, lease_seconds: float, replica: str, limit: int) -> list[Fire]:
        """Take over fires claimed but unconfirmed for longer than the lease."""
        rows = await self.pool.fetch(_TAKE_STALE, lease_seconds, replica, limit)
        return sorted((_fire(r) for r in rows), key=lambda f: f.fire_time)

    async def mark_published(self, fires: Sequence[Fire]) -> None:
        """Record confirmed fires and move their tasks' last_run_at forward."""
        if fires:
            await self.pool.execute(_MARK_PUBLISHED, [f.task_key for f in fires],
                                    [f.fire_time for f in fires])

    async def rezone(self, project_id: int, *, zone: str,
                     reschedule: Callable[[Task], datetime | None]) -> int:
        """Move a project's tasks to `zone`; `reschedule` gives each one's next fire time.
        Returns how many tasks changed. Rows are locked, so a concurrent claim either sees the
        old next fire time (and wins it) or the new one."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""SELECT {_TASK_COLUMNS} FROM tasks
                    WHERE project_id = $1 AND timezone <> $2 FOR UPDATE""", project_id, zone)
            moved = [replace(_task(row), timezone=zone) for row in rows]
            await conn.executemany(
                "UPDATE tasks SET timezone = $2, next_fire_at = $3 WHERE natrual_key = $1",
                [(task.natrual_key, zone, reschedule(task)) for task in moved])
        return len(moved)

    async def heartbeat(self, replica: str) -> None:
        """Say this replica is alive (its claimed fires are its own to publish)."""
        await self.pool.execute(
            """INSERT INTO replicas (replica_id, seen_at) VALUES ($1, now())
               ON CONFLICT (replica_id) DO UPDATE SET seen_at = now()""", replica)

    async def retire(self, replica: str) -> None:
        """Forget a stopping replica, so its unconfirmed fires are taken over after the lease."""
        await self.pool.execute("DELETE FROM replicas WHERE replica_id = $1", replica)

    async def count_enabled(self) -> int:
        """How many tasks are enabled (a metric)."""
        return int(await self.pool.fetchval("SELECT count(*) FROM tasks WHERE enabled"))
