"""Webhook deliveries: the notifier's hook writes one delivery per enabled webhook of the event's
project (at or above the webhook's level) in the fan-out transaction; the dispatcher sends them.

The dispatcher claims due deliveries by moving their next attempt a lease ahead (committed before
sending), then posts each in a task of its own, at most `concurrency` at once, each with its own
timeout: a dead or slow webhook holds only its own deliveries, never another's. A 2xx marks the
delivery delivered; anything else schedules the next attempt with backoff until `max_attempts`,
after which it is `failed` (the log keeps the last status and error). A dispatcher that dies
mid-delivery leaves the lease to expire and the delivery is sent again, with the same idempotency
key: at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg

from twinbill_common.logging import get_logger
from twinbill_common.postgres import TRANSIENT_ERRORS
from twinbill_twin.domain.levels import NAMES
from twinbill_twin.domain.webhooks import retry_after, sign

log = get_logger(__name__)
CLAIM = """
UPDATE webhook_deliveries d SET next_attempt_at = now() + $2, attempts = d.attempts + 1
WHERE d.id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING d.id, d.webhook_id, d.event_id, d.idempotency_key, d.attempts,
          (SELECT url FROM webhooks w WHERE w.id = d.webhook_id) AS url,
          (SELECT secret FROM webhooks w WHERE w.id = d.webhook_id) AS secret
"""
EVENT = """
SELECT e.id, e.campaign_scope_id, e.category_id, c.name AS category, e.level, e.timestamp, e.source,
       e.description, s.campaign_id
FROM bem_events e JOIN bem_campaign_scopes s ON s.id = e.campaign_scope_id
JOIN bem_event_categories c ON c.id = e.category_id WHERE e.id = $1
"""


async def add_deliveries(conn: asyncpg.Connection, event: asyncpg.Record) -> None:
    """The notifier's hook: one delivery per enabled webhook of the project wanting this level."""
    await conn.execute(
        "INSERT INTO webhook_deliveries (webhook_id, event_id) SELECT id, $1 FROM webhooks "
        "WHERE project_id = $2 AND enabled AND min_level <= $3 ON CONFLICT (webhook_id, event_id) DO NOTHING",
        event["event_id"], event["campaign_id"], event["level"])


def payload(event: asyncpg.Record, *, key: str, webhook_id: int) -> bytes:
    """The JSON body of a delivery: the idempotency key and the event as BEMServer shows it."""
    body: dict[str, Any] = {
        "idempotency_key": key, "webhook_id": webhook_id, "project_id": event["campaign_id"],
        "event": {"id": event["id"], "campaign_id": event["campaign_id"],
                  "campaign_scope_id": event["campaign_scope_id"], "category_id": event["category_id"],
                  "category": event["category"], "level": NAMES.get(event["level"], str(event["level"])),
                  "timestamp": event["timestamp"].isoformat(), "source": event["source"],
                  "description": event["description"]}}
    return json.dumps(body, ensure_ascii=False, sort_keys=True).encode()


class Dispatcher:
    """Sends due deliveries."""

    def __init__(self, pool: asyncpg.Pool, *, lease: float = 60.0, timeout: float = 10.0, max_attempts: int = 10,
                 concurrency: int = 50, first_retry: float = 2.0) -> None:
        self.pool = pool
        self.lease = timedelta(seconds=lease)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.max_attempts = max_attempts
        self.first_retry = first_retry
        self.concurrency = concurrency
        self._inflight = 0
        self._freed = asyncio.Event()

    async def run(self, *, interval: float) -> None:
        """Claim and send, forever; in-flight sends are cancelled with the loop."""
        async with aiohttp.ClientSession(timeout=self.timeout) as http, asyncio.TaskGroup() as group:
            while True:
                free = self.concurrency - self._inflight
                claimed: list[asyncpg.Record] = []
                if free > 0:
                    try:
                        claimed = await self.pool.fetch(CLAIM, free, self.lease)
                    except TRANSIENT_ERRORS as err:
                        log.warning("webhooks: store did not answer, retrying", error=repr(err))
                for delivery in claimed:
                    self._inflight += 1
                    group.create_task(self._send(http, delivery))
                if claimed:
                    continue
                if free > 0:
                    await asyncio.sleep(interval)
                    continue
                # every slot busy: look again when a send finishes (or after the interval)
                self._freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), timeout=interval)

    async def _send(self, http: aiohttp.ClientSession, delivery: asyncpg.Record) -> None:
        try:
            await self._attempt(http, delivery)
        except TRANSIENT_ERRORS as err:  # the outcome is not recorded: the lease makes it retried
            log.warning("webhooks: outcome not recorded", delivery=delivery["id"], error=repr(err))
        finally:
            self._inflight -= 1
            self._freed.set()

    async def _attempt(self, http: aiohttp.ClientSession, delivery: asyncpg.Record) -> None:
        event = await self.pool.fetchrow(EVENT, delivery["event_id"])
        if event is None:
            return  # deleted with its event
        key = str(delivery["idempotency_key"])
        body = payload(event, key=key, webhook_id=delivery["webhook_id"])
        stamp = int(time.time())
        headers = {"Content-Type": "application/json", "X-Twinbill-Timestamp": str(stamp),
                   "X-Twinbill-Signature": sign(delivery["secret"], stamp, body),
                   "X-Twinbill-Idempotency-Key": key, "X-Twinbill-Webhook-Id": str(delivery["webhook_id"]),
                   "X-Twinbill-Event-Id": str(event["id"])}
        status: int | None = None
        error: str | None = None
        try:
            async with http.post(delivery["url"], data=body, headers=headers, allow_redirects=False) as response:
                status = response.status
                if not 200 <= status < 300:
                    error = (await response.text())[:300] or f"HTTP {status}"
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            error = f"{type(err).__name__}: {err}"[:300]
        if error is None:
            await self.pool.execute("UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), "
                                    "last_status = $2, last_error = NULL WHERE id = $1", delivery["id"], status)
            return
        attempts = delivery["attempts"]
        if attempts >= self.max_attempts:
            await self.pool.execute("UPDATE webhook_deliveries SET status = 'failed', last_status = $2, "
                                    "last_error = $3 WHERE id = $1", delivery["id"], status, error)
            log.warning("webhook delivery failed for good", delivery=delivery["id"], error=error)
            return
        await self.pool.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = now() + $2, last_status = $3, last_error = $4 "
            "WHERE id = $1", delivery["id"], retry_after(attempts, first=self.first_retry), status, error)
