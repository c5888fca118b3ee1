"""The notifier: drains the events' fan-out outbox (bem_event_fanout) into per-user notifications
and per-webhook deliveries.

A notification reaches only the users whose group is linked to the event's campaign scope (asked
of the gateway, which owns users and groups) and who are notified at that level (their
subscription to the category, or WARNING and above without one). bemserver-core 0.22's
Event.notify joins the scope without tying it to the users' groups, so it notifies subscribed
users of every campaign; that is deliberately not copied.

Replicas share the outbox (`FOR UPDATE SKIP LOCKED`); a row leaves it only in the transaction
that wrote its notifications and deliveries (unique keys make a repeat write nothing), so an
event is fanned out at least once and its effects exist once. A gateway that does not answer
delays the users' notifications (backoff, retried), never the webhooks'.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg

from twinbill_common.errors import TransientError
from twinbill_common.logging import get_logger
from twinbill_common.postgres import TRANSIENT_ERRORS
from twinbill_twin.directory import Directory
from twinbill_twin.domain.levels import notified

log = get_logger(__name__)
CLAIM = """
SELECT f.event_id, f.attempts, e.campaign_scope_id, e.category_id, e.level, e.created_at, s.campaign_id
FROM bem_event_fanout f JOIN bem_events e ON e.id = f.event_id
JOIN bem_campaign_scopes s ON s.id = e.campaign_scope_id
WHERE f.due_at <= now() ORDER BY f.due_at, f.event_id LIMIT $1 FOR UPDATE OF f SKIP LOCKED
"""
MAX_BACKOFF = timedelta(minutes=5)
FanoutHook = Callable[[asyncpg.Connection, asyncpg.Record], Awaitable[None]]


def backoff(attempts: int) -> timedelta:
    """1 s doubling per failed attempt, at most five minutes."""
    return min(timedelta(seconds=2 ** min(attempts, 10)), MAX_BACKOFF)


class Notifier:
    """Fans events out; `hooks` add per-event work in the same transaction (webhook deliveries)."""

    def __init__(self, pool: asyncpg.Pool, directory: Directory, *, batch: int = 100,
                 hooks: tuple[FanoutHook, ...] = ()) -> None:
        self.pool = pool
        self.directory = directory
        self.batch = batch
        self.hooks = hooks

    async def run(self, *, interval: float) -> None:
        """Fan out what is due, then wait `interval` seconds when nothing was; forever."""
        while True:
            try:
                done = await self.fan_out()
            except TRANSIENT_ERRORS as err:
                log.warning("notifier: store did not answer, retrying", error=repr(err))
                done = 0
            if done == 0:
                await asyncio.sleep(interval)

    async def fan_out(self) -> int:
        """One batch of due events; returns how many were handled (fanned out or postponed)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(CLAIM, self.batch)
            for row in rows:
                for hook in self.hooks:
                    await hook(conn, row)
                try:
                    await self._notify_users(conn, row)
                except TransientError as err:
                    await conn.execute(
                        "UPDATE bem_event_fanout SET attempts = attempts + 1, due_at = now() + $2, last_error = $3 "
                        "WHERE event_id = $1", row["event_id"], backoff(row["attempts"]), str(err)[:500])
                    log.warning("notifier: recipients unknown, event postponed", event_id=row["event_id"],
                                error=str(err))
                    continue
                await conn.execute("DELETE FROM bem_event_fanout WHERE event_id = $1", row["event_id"])
        return len(rows)

    async def _notify_users(self, conn: asyncpg.Connection, row: asyncpg.Record) -> None:
        users = await self.directory.users_of_scope(row["campaign_scope_id"])
        if not users:
            return
        levels = dict(await conn.fetch(
            "SELECT user_id, notification_level FROM bem_event_categories_by_users "
            "WHERE category_id = $1 AND user_id = ANY($2::int[])", row["category_id"], users))
        chosen = [user for user in users if notified(row["level"], levels.get(user))]
        if chosen:
            await conn.execute(
                "INSERT INTO bem_notifications (user_id, event_id, timestamp) "
                "SELECT u, $2, $3 FROM unnest($1::int[]) AS u ON CONFLICT (event_id, user_id) DO NOTHING",
                chosen, row["event_id"], row["created_at"])
