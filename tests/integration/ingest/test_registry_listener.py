"""The registry listener outlives a RabbitMQ that is away: at its start, or going away while it
subscribes (a shutdown then fails the bind under way). It tries again, subscribes once the broker
is back and reloads the cache, so a gateway never exits for it, and a change published after the
broker came back reaches the cache."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from tests.integration.ingest.conftest import TIMEOUT, seed_world
from twinbill_common.bus import Bus
from twinbill_common.schemas.registry import RegistryChanged
from twinbill_devstack.rabbitmq import PrivateRabbitMQ
from twinbill_ingest.handlers import RegistryListener
from twinbill_ingest.store import RegistryCache, StaticRegistrySource


async def test_a_listener_started_while_rabbitmq_is_away_subscribes_once_it_is_back(
    private_rabbitmq: PrivateRabbitMQ,
) -> None:
    world = seed_world()
    source = StaticRegistrySource(world.products, world.devices)
    namespace = f"reg{uuid.uuid4().hex[:8]}."
    await asyncio.to_thread(private_rabbitmq.stop)
    listener = RegistryListener(private_rabbitmq.url, namespace=namespace, cache=RegistryCache(), source=source,
                                reload_delay=0.05)
    task = asyncio.create_task(listener.run(max_pause=0.5))
    try:
        await asyncio.sleep(1.5)  # several refused connections
        assert not task.done(), task.exception() if task.done() else None
        assert not listener.subscribed.is_set()

        await asyncio.to_thread(private_rabbitmq.start)
        await asyncio.wait_for(listener.subscribed.wait(), 2 * TIMEOUT)
        # the changes missed while it was away: the cache is reloaded once subscribed
        await asyncio.wait_for(listener.reloaded.wait(), TIMEOUT)
        assert listener.cache.loaded

        listener.reloaded.clear()
        reloads = listener.reloads
        bus = Bus(private_rabbitmq.url, namespace=namespace)
        await bus.connect(declare=False)
        try:
            await bus.publish("registry", "device.created", RegistryChanged(entity="device", action="created", id="7"))
        finally:
            await bus.close()
        await asyncio.wait_for(listener.reloaded.wait(), TIMEOUT)
        assert listener.reloads == reloads + 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
