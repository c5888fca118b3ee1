"""A deadlock or serialization failure PostgreSQL reports is transient: a consumer built with the
store's classification retries the batch in place, so it never counts toward the queue's delivery
limit and data that devices already had a 200 for is never dead-lettered by bad luck."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg

from twinbill_common.bus import Bus, Delivery
from twinbill_common.postgres import TRANSIENT_ERRORS
from twinbill_common.schemas import RegistryChanged
from twinbill_common.topology import REGISTRY, WorkQueue


async def _real_deadlock(dsn: str, table: str) -> None:
    """Two transactions that take two rows in opposite orders; PostgreSQL aborts one. Raises what
    PostgreSQL raised to the loser."""
    first, second = await asyncpg.connect(dsn), await asyncpg.connect(dsn)
    try:
        await first.execute("BEGIN")
        await second.execute("BEGIN")
        await first.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
        await second.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 2")
        outcomes = await asyncio.gather(first.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 2"),
                                        second.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1"),
                                        return_exceptions=True)
        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert errors, "PostgreSQL reported no deadlock"
        raise errors[0]
    finally:
        for conn in (first, second):
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK")
            await conn.close()


async def test_a_deadlock_is_retried_in_place_not_counted_toward_the_delivery_limit(
        pg_dsn: str, amqp_url: str, bus_namespace: str) -> None:
    table = f"deadlock_{uuid.uuid4().hex[:8]}"
    setup = await asyncpg.connect(pg_dsn)
    await setup.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v int NOT NULL)")
    await setup.execute(f"INSERT INTO {table} VALUES (1, 0), (2, 0)")
    bus = Bus(amqp_url, namespace=bus_namespace, transient=TRANSIENT_ERRORS, retry_first_pause=0.01)
    await bus.connect()
    queue = WorkQueue("probe.deadlock", REGISTRY, ("storey.*",), delivery_limit=1)
    await bus.declare_work_queue(queue)
    raised: list[BaseException] = []
    stored: list[str] = []
    done = asyncio.Event()

    async def store(batch: list[Delivery[RegistryChanged]]) -> None:
        if len(raised) < 3:  # three real deadlocks, more than the delivery limit allows requeues
            try:
                await _real_deadlock(pg_dsn, table)
            except asyncpg.DeadlockDetectedError as err:
                raised.append(err)
                raise
        stored.extend(delivery.message.id for delivery in batch)
        done.set()

    consumer = asyncio.create_task(bus.consume_batches(queue.name, RegistryChanged, store, max_wait=0.1))
    try:
        await bus.publish(REGISTRY, "storey.created", RegistryChanged(entity="storey", action="created", id="st1"))
        await asyncio.wait_for(done.wait(), timeout=60)
        assert len(raised) == 3
        assert stored == ["st1"]
        dlq = await bus.channel.get_queue(bus.name("probe.deadlock.dlq"))
        assert (await dlq.get(fail=False)) is None
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await bus.close()
        await setup.execute(f"DROP TABLE {table}")
        await setup.close()
