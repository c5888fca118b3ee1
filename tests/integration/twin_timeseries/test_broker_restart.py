"""The twin service keeps storing telemetry across a RabbitMQ restart, by itself: on a private
node the test stops and starts while the consumer has a burst in hand, every point published
before and after is stored exactly once, and /readyz is 200 again without a restart of the twin."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from twinbill_common.bus import Bus
from twinbill_common.errors import BusUnavailable
from twinbill_devstack.rabbitmq import PrivateRabbitMQ
from twinbill_twin.app import POOL, create_app
from twinbill_twin.settings import TwinSettings

from .conftest import count_samples, make_device, measurements, publish, wait_for

T0 = 1_700_000_000_000
BURST = 300


async def _publish_when_back(bus: Bus, message: Any, *, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await publish(bus, message)
            return
        except BusUnavailable:
            assert loop.time() < deadline, "the publisher never reconnected"
            await asyncio.sleep(0.2)  # polling the robust connection's reconnect, bounded


async def test_telemetry_is_stored_across_a_rabbitmq_restart(pg_dsn: str,
                                                             private_rabbitmq: PrivateRabbitMQ) -> None:
    tag = uuid.uuid4().hex[:10]
    settings = TwinSettings(pg_dsn=pg_dsn, amqp_url=private_rabbitmq.url, schema_name=f"tbr_{tag}",
                            bus_namespace=f"tbr{tag}.", pg_pool_max=5, telemetry_batch=50)
    async with TestClient(TestServer(create_app(settings))) as twin:
        pool: asyncpg.Pool = twin.app[POOL]
        publisher = Bus(private_rabbitmq.url, namespace=settings.bus_namespace)
        await publisher.connect()
        try:
            device = await make_device(pool)
            total = device.attributes["total"]
            for n in range(BURST):  # a burst the consumer is still working through at the stop
                await publish(publisher, measurements(device, [(T0 + n * 1000, {"total": n})]))
            await asyncio.to_thread(private_rabbitmq.stop)
            await asyncio.to_thread(private_rabbitmq.start)
            await _publish_when_back(publisher, measurements(device, [(T0 + BURST * 1000, {"total": BURST})]))

            async def all_stored() -> bool:
                return await count_samples(pool, total) == BURST + 1
            await wait_for(all_stored, timeout=90)

            async def ready() -> bool:
                return (await twin.get("/readyz")).status == 200
            await wait_for(ready, timeout=60)
        finally:
            await publisher.close()
