"""The ingest gateway's status posts and the telemetry consumer lock device rows in one order (by
id), so a status post that arrives while a telemetry batch holds some of its devices waits for it
instead of deadlocking with it."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from twinbill_twin.app import POOL

from .conftest import make_device, make_product, make_project


async def _waiting_on_a_lock(pool: asyncpg.Pool, *, besides: int, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> $1 "
            "AND query LIKE '%devices%' AND datname = current_database()", besides)
        if waiting:
            return
        await asyncio.sleep(0.02)  # polling pg_stat_activity, bounded by the deadline
    raise AssertionError("the status post never waited for the consumer's lock")


async def test_status_post_waits_for_a_telemetry_batch_instead_of_deadlocking(
        twin: TestClient[Any, Any]) -> None:
    project = await make_project(twin)
    product = await make_product(twin)
    first = await make_device(twin, product_key=product["product_key"], project_id=project)
    second = await make_device(twin, product_key=product["product_key"], project_id=project)
    low, high = sorted((first, second), key=lambda d: int(d["id"]))
    pool: asyncpg.Pool = twin.app[POOL]
    # Put the lower id's row after the higher one on disk, so a plan that visits rows in heap
    # order meets the higher id first.
    await pool.execute("UPDATE devices SET updated_at = now() WHERE id = $1", low["id"])

    async with pool.acquire() as consumer:
        transaction = consumer.transaction()
        await transaction.start()
        try:
            # A telemetry batch (timeseries/writer.py) holds the lower id ...
            await consumer.execute("UPDATE devices SET last_seen = now() WHERE id = $1", low["id"])
            post = asyncio.create_task(twin.post("/internal/v1/devices/status", json={"devices": [
                {"product_key": product["product_key"], "device_key": d["device_key"], "online": True}
                for d in (high, low)]}))
            await _waiting_on_a_lock(pool, besides=await consumer.fetchval("SELECT pg_backend_pid()"))
            # ... and goes on to the higher one while the status post waits.
            await consumer.execute("UPDATE devices SET last_seen = now() WHERE id = $1", high["id"])
        finally:
            await transaction.commit()
    response = await asyncio.wait_for(post, timeout=30)
    assert response.status == 200, await response.text()
    assert await response.json() == {"updated": 2}
