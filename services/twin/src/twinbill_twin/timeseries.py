"""Attribute time series: the telemetry consumer, sample storage with rollups, seed 002's
attribute data query and the billing readings endpoint, and the upkeep loop (partitions made
ahead, raw retention). `setup_timeseries` wires it into the app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import documented
from twinbill_common.background import BACKGROUND
from twinbill_common.bus import Bus
from twinbill_common.http import json_response
from twinbill_common.logging import get_logger
from twinbill_twin.api.timeseries import add_timeseries_routes
from twinbill_twin.handlers import TelemetryConsumer
from twinbill_twin.keys import CONSUMER
from twinbill_twin.metrics import TwinMetrics
from twinbill_twin.refusals import WriteRefusals
from twinbill_twin.store.retention import apply_retention, create_ahead
from twinbill_twin.store.samples import PartitionManager, seal_hours

log = get_logger(__name__)
STORE_PATH = "/internal/v1/telemetry/store"


def setup_timeseries(
    app: web.Application,
    *,
    pool_key: web.AppKey[asyncpg.Pool],
    bus_key: web.AppKey[Bus],
    default_zone: str,
    max_batch: int = 500,
    max_wait: float = 0.05,
    parallel: int = 2,
    consume: bool = True,
    refusals: WriteRefusals | None = None,
    metrics: TwinMetrics | None = None,
    partitions_ahead: int = 2,
    raw_retention_days: int = 0,
    maintenance_interval: float = 3600.0,
    full_collect_every: float = 60.0,
    seal_interval: float = 30.0,
) -> None:
    """Add the routes, and a cleanup context (after the app's lifespan, which opens the pool, the
    bus and the background loops) that runs the telemetry consumer as one of those loops.

    `refusals` is where the consumer records that PostgreSQL refuses its writes (disk full);
    `GET /internal/v1/telemetry/store` answers it for the ingest gateway."""
    store_state = refusals if refusals is not None else WriteRefusals()

    @documented(summary="Whether the time-series store takes writes (for the ingest gateway)", tags=("internal",),
                response=dict[str, Any])
    async def get_store(_: web.Request) -> web.Response:
        """GET /internal/v1/telemetry/store: whether the time-series store takes writes."""
        return json_response(store_state.status())

    app.router.add_get(STORE_PATH, get_store)

    def pool(current: web.Application) -> asyncpg.Pool:
        return current[pool_key]

    def zone(_: web.Application) -> str:
        return default_zone

    add_timeseries_routes(app, pool=pool, default_zone=zone)

    async def background(current: web.Application) -> AsyncIterator[None]:
        consumer = TelemetryConsumer(current[pool_key], current[bus_key], max_batch=max_batch,
                                     max_wait=max_wait, parallel=parallel, refusals=store_state,
                                     metrics=metrics, full_collect_every=full_collect_every)
        current[CONSUMER] = consumer
        # Stopped with the other loops, before the lifespan closes the pool and the bus.
        current[BACKGROUND].start("telemetry_consumer", consumer.run())
        current[BACKGROUND].start("timeseries_upkeep", upkeep(
            current[pool_key], PartitionManager(), months_ahead=partitions_ahead,
            default_days=raw_retention_days or None, interval=maintenance_interval))
        current[BACKGROUND].start("hour_values_seal", seal_loop(current[pool_key], interval=seal_interval))
        yield

    if consume:
        app.cleanup_ctx.append(background)


async def upkeep(pool: asyncpg.Pool, partitions: PartitionManager, *, months_ahead: int,
                 default_days: int | None, interval: float) -> None:
    """At start and every `interval` seconds: this month's and the next months' partitions made;
    after each interval, one raw-retention pass (none at start: a restarted service does not
    begin with a burst of deletes). A failed turn (the database away) is logged and retried at
    the next one."""
    first = True
    while True:
        try:
            async with pool.acquire() as conn:
                now_ms = int(time.time() * 1000)
                await create_ahead(conn, partitions, now_ms=now_ms, months=months_ahead)
                if not first:
                    done = await apply_retention(conn, now_ms=now_ms, default_days=default_days)
                    if done.projects or done.dropped:
                        log.info("raw retention", projects=done.projects, rows=done.rows, dropped=done.dropped)
        except (OSError, asyncpg.PostgresError) as err:
            log.warning("time series upkeep failed; the next turn retries", error=str(err))
        first = False
        await asyncio.sleep(interval)


async def seal_loop(pool: asyncpg.Pool, *, interval: float) -> None:
    """Every `interval` seconds, the hours' sorted values built for the marked hours that have
    ended (store/samples.py seal_hours), in turns of 500 until none is due; a failed turn (the
    database away) is logged and retried at the next one."""
    while True:
        try:
            while True:
                async with pool.acquire() as conn:
                    sealed, _ = await seal_hours(conn, now_ms=int(time.time() * 1000))
                if sealed < 500:
                    break
        except (OSError, asyncpg.PostgresError) as err:
            log.warning("sealing the hours' values failed; the next turn retries", error=str(err))
        await asyncio.sleep(interval)


__all__: list[str] = ["CONSUMER", "STORE_PATH", "TelemetryConsumer", "WriteRefusals", "seal_loop",
                      "setup_timeseries", "upkeep"]
