"""Bus messages of registry changes: written to an outbox in the change's transaction, published
after the commit with confirms.

A request awaits `Outbox.flush` so its messages are on the bus (confirmed) before it answers; if
RabbitMQ does not answer, the rows stay and the relay task publishes them later. Nothing committed
is lost between the commit and the publish (delivery is at least once).
"""

from __future__ import annotations

import asyncio

import asyncpg

from twinbill_common.bus import Bus
from twinbill_common.errors import TransientError
from twinbill_common.logging import get_logger
from twinbill_common.schemas import Message, RegistryChanged
from twinbill_common.topology import REGISTRY

log = get_logger(__name__)
JOURNAL_QUEUE = "twin.registry.journal"
JOURNAL_LENGTH = 10_000
FLUSH_BATCH = 5000


def change(entity: str, action: str, ident: object, *, project_id: int | None = None,
           data: dict[str, object] | None = None) -> RegistryChanged:
    """A RegistryChanged event for one entity."""
    return RegistryChanged.model_validate(
        {"entity": entity, "action": action, "id": str(ident), "project_id": project_id,
         "data": data or {}})


async def enqueue(conn: asyncpg.Connection, events: list[RegistryChanged]) -> None:
    """Write registry events (routing key `{entity}.{action}`) to the outbox in the caller's
    transaction."""
    await enqueue_messages(conn, [(REGISTRY, f"{e.entity}.{e.action}", e) for e in events])


async def enqueue_messages(conn: asyncpg.Connection, messages: list[tuple[str, str, Message]]) -> None:
    """Write (exchange, routing key, message) triples to the outbox in the caller's transaction."""
    if not messages:
        return
    await conn.execute(
        "INSERT INTO outbox (exchange, routing_key, message_id, type, body) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])",
        [exchange for exchange, _, _ in messages],
        [key for _, key, _ in messages],
        [message.message_id for _, _, message in messages],
        [type(message).__name__ for _, _, message in messages],
        [message.model_dump_json() for _, _, message in messages],
    )


async def declare_journal(bus: Bus) -> None:
    """A bounded queue holding the newest registry events, so a publish is routable with no cache up.

    Publishing is `mandatory`; without a bound queue, a registry change made while no other
    service listens would be refused as unroutable.
    """
    queue = await bus.channel.declare_queue(
        bus.name(JOURNAL_QUEUE), durable=True,
        arguments={"x-queue-type": "quorum", "x-max-length": JOURNAL_LENGTH},
    )
    await queue.bind(bus.name(REGISTRY), routing_key="#")


class Outbox:
    """Publishes committed messages with confirms, in commit order, then deletes them."""

    def __init__(self, pool: asyncpg.Pool, bus: Bus) -> None:
        self.pool = pool
        self.bus = bus
        self._lock = asyncio.Lock()

    async def flush(self) -> int:
        """Publish every pending message; raises TransientError if RabbitMQ refuses (rows kept)."""
        sent = 0
        async with self._lock:
            while True:
                async with self.pool.acquire() as conn, conn.transaction():
                    rows = await conn.fetch(
                        "SELECT id, exchange, routing_key, message_id, type, body FROM outbox "
                        "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", FLUSH_BATCH)
                    if not rows:
                        return sent
                    await asyncio.gather(*(
                        self.bus.publish_raw(row["exchange"], row["routing_key"], row["body"].encode(),
                                             message_id=row["message_id"], headers={"type": row["type"]})
                        for row in rows))
                    await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                                       [row["id"] for row in rows])
                sent += len(rows)

    async def flush_quietly(self) -> None:
        """Flush after a commit; a failure (broker or database) is logged and left to the relay:
        the change is committed, so the request that made it must not fail now."""
        try:
            await self.flush()
        except (TransientError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as err:
            log.warning("messages left in the outbox", error=repr(err))

    async def relay(self, *, interval: float = 5.0) -> None:
        """Background task: publish what a failed flush left behind, forever."""
        while True:
            await self.flush_quietly()
            await asyncio.sleep(interval)

