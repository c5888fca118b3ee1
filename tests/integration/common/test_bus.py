"""The bus on the real RabbitMQ: confirmed publishing, ack after the handler, dead-letter with reason."""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
import pytest

from twinbill_common.bus import REASON_HEADER, Bus, Delivery
from twinbill_common.errors import BusUnavailable, PermanentError
from twinbill_common.schemas import RegistryChanged
from twinbill_common.topology import REGISTRY, WorkQueue


async def test_publish_consume_and_dead_letter(amqp_url: str, bus_namespace: str) -> None:
    bus = Bus(amqp_url, namespace=bus_namespace)
    await bus.connect()
    queue = WorkQueue("probe.registry", REGISTRY, ("device.*",), delivery_limit=3)
    await bus.declare_work_queue(queue)
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(delivery: Delivery[RegistryChanged]) -> None:
        if delivery.message.id == "poison":
            raise PermanentError("device id poison is not a number")
        seen.append(delivery.message.id)
        if len(seen) == 2:
            done.set()

    consumer = asyncio.create_task(bus.consume(queue.name, RegistryChanged, handler))
    try:
        for ident in ("1", "poison", "2"):
            await bus.publish(REGISTRY, "device.created",
                              RegistryChanged(entity="device", action="created", id=ident))
        await asyncio.wait_for(done.wait(), timeout=10)
        assert seen == ["1", "2"]
        dlq = await bus.channel.get_queue(bus.name("probe.registry.dlq"))
        dead = await _get_one(dlq)
        assert dead.headers[REASON_HEADER] == "device id poison is not a number"
        assert RegistryChanged.model_validate_json(dead.body).id == "poison"
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await bus.close()


async def test_unroutable_publish_is_an_error(amqp_url: str, bus_namespace: str) -> None:
    """A message no queue takes is refused, never silently dropped."""
    bus = Bus(amqp_url, namespace=bus_namespace)
    await bus.connect()
    try:
        with pytest.raises(BusUnavailable):
            await bus.publish(REGISTRY, "nobody.listens",
                              RegistryChanged(entity="device", action="created", id="x"))
    finally:
        await bus.close()


async def _get_one(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    for _ in range(50):
        message = await queue.get(fail=False)
        if message is not None:
            await message.ack()
            return message
        await asyncio.sleep(0.1)
    raise AssertionError("nothing was dead-lettered")
