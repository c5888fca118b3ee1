"""The hour seal against a batch that commits while it runs (store.samples.seal_hours): the seal
reads its marks and the samples in one REPEATABLE READ snapshot, so a batch that commits after
that snapshot, into an hour being sealed, makes the seal fail and keeps its mark; the next turn
seals every point. Under READ COMMITTED such a mark was locked at its newest version and deleted
while the batch's samples, newer than the statement's snapshot, were left out of the array; that
window is inside one statement, so the test commits the batch between the seal transaction's
snapshot and its statement instead (a READ COMMITTED seal takes a new snapshot there and seals
at once: the `(0, 0)` below fails on it)."""

from __future__ import annotations

import time
from typing import Any, cast

import asyncpg
from aiohttp.test_utils import TestClient

from twinbill_twin.store.samples import PartitionManager, SampleRecord, seal_hours, write_batch

from .conftest import make_device

HOUR = 3_600_000


class BatchAfterSnapshot:
    """The seal's connection, with another connection's batch committed right after the seal's
    transaction has taken its snapshot (its first statement after `SET LOCAL`)."""

    def __init__(self, conn: asyncpg.Connection, other: asyncpg.Connection, batch: list[SampleRecord]) -> None:
        self.conn, self.other, self.batch = conn, other, batch
        self.snapshots = 0

    def transaction(self, **options: Any) -> Any:
        return self.conn.transaction(**options)

    async def execute(self, query: str, *args: Any) -> str:
        status: str = await self.conn.execute(query, *args)
        if query.startswith("SET LOCAL"):
            await self.conn.fetchval("SELECT count(*) FROM hour_values_dirty")  # the snapshot
            self.snapshots += 1
            await write_batch(self.other, samples=self.batch, currents=[], devices={}, instances={},
                              partitions=PartitionManager())
        return status

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self.conn.fetchrow(query, *args)


async def test_a_batch_committed_after_the_seals_snapshot_keeps_its_mark_and_is_sealed_next_turn(
    twin: TestClient[Any, Any], pool: asyncpg.Pool
) -> None:
    device = await make_device(pool, timezone="UTC")
    humidity = device.attributes["humidity"]
    # the current hour: the app's own seal loop leaves it alone until it has ended
    hour = int(time.time() * 1000) // HOUR * HOUR
    async with pool.acquire() as conn:
        await write_batch(conn, samples=[(humidity, -1, hour + 1_000, "1.5", 1.5, None, None)], currents=[],
                          devices={}, instances={}, partitions=PartitionManager())
    marks = "SELECT count(*) FROM hour_values_dirty WHERE attribute_id = $1 AND bucket = $2"
    assert await pool.fetchval(marks, humidity, hour) == 1

    late: list[SampleRecord] = [(humidity, -1, hour + 2_000, "2.5", 2.5, None, None)]
    async with pool.acquire() as seal_conn, pool.acquire() as batch_conn:
        racing = BatchAfterSnapshot(seal_conn, batch_conn, late)
        assert await seal_hours(cast(asyncpg.Connection, racing), now_ms=2**62) == (0, 0)
        assert racing.snapshots == 1
    # nothing was sealed: the mark stays, with both points under it
    assert await pool.fetchval(marks, humidity, hour) == 1
    assert await pool.fetchval("SELECT count(*) FROM values_1h WHERE attribute_id = $1", humidity) == 0

    async with pool.acquire() as conn:
        assert await seal_hours(conn, now_ms=2**62) == (1, 1)
    assert await pool.fetchval("SELECT v FROM values_1h WHERE attribute_id = $1 AND bucket = $2",
                               humidity, hour) == [1.5, 2.5]
    assert await pool.fetchval(marks, humidity, hour) == 0
