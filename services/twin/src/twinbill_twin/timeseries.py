"""Attribute time series: the telemetry consumer, sample storage with rollups, seed 002's
attribute data query and the billing readings endpoint. `setup_timeseries` wires it into the app."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from aiohttp import web

from twinbill_common.background import BACKGROUND
from twinbill_common.bus import Bus
from twinbill_common.http import json_response
from twinbill_twin.api.timeseries import add_timeseries_routes
from twinbill_twin.handlers import TelemetryConsumer
from twinbill_twin.keys import CONSUMER
from twinbill_twin.metrics import TwinMetrics
from twinbill_twin.refusals import WriteRefusals

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
) -> None:
    """Add the routes, and a cleanup context (after the app's lifespan, which opens the pool, the
    bus and the background loops) that runs the telemetry consumer as one of those loops.

    `refusals` is where the consumer records that PostgreSQL refuses its writes (disk full);
    `GET /internal/v1/telemetry/store` answers it for the ingest gateway."""
    store_state = refusals if refusals is not None else WriteRefusals()

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
                                     metrics=metrics)
        current[CONSUMER] = consumer
        # Stopped with the other loops, before the lifespan closes the pool and the bus.
        current[BACKGROUND].start("telemetry_consumer", consumer.run())
        yield

    if consume:
        app.cleanup_ctx.append(background)


__all__: list[str] = ["CONSUMER", "STORE_PATH", "TelemetryConsumer", "WriteRefusals", "setup_timeseries"]
