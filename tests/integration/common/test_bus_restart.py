"""Consumers survive a RabbitMQ restart by themselves, on a private node the test restarts: a
handler that finishes while the broker is away does not end the consumer (its ack goes nowhere,
and the broker redelivers what was not acked), and consumption resumes once the node is back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from twinbill_common.bus import Bus, Delivery
from twinbill_common.errors import BusUnavailable
from twinbill_common.schemas import RegistryChanged
from twinbill_common.topology import REGISTRY, WorkQueue
from twinbill_devstack.rabbitmq import PrivateRabbitMQ

QUEUE = WorkQueue("probe.restart", REGISTRY, ("space.*",), delivery_limit=5)


async def _publish(bus: Bus, ident: str, *, timeout: float = 60.0) -> None:
    """Publish once the bus has reconnected (the robust connection reconnects by itself)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await bus.publish(REGISTRY, "space.created", RegistryChanged(entity="space", action="created", id=ident))
            return
        except BusUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)  # polling a reconnect, bounded by the deadline


async def _stop(consumer: asyncio.Task[None], bus: Bus) -> None:
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    with contextlib.suppress(Exception):
        await bus.close()


Consume = Callable[[Bus, Callable[[list[str]], Awaitable[None]]], Coroutine[Any, Any, None]]


async def _one_by_one(bus: Bus, store: Callable[[list[str]], Awaitable[None]]) -> None:
    async def handler(delivery: Delivery[RegistryChanged]) -> None:
        await store([delivery.message.id])

    await bus.consume(QUEUE.name, RegistryChanged, handler, prefetch=10)


async def _in_batches(bus: Bus, store: Callable[[list[str]], Awaitable[None]]) -> None:
    async def handler(batch: list[Delivery[RegistryChanged]]) -> None:
        await store([delivery.message.id for delivery in batch])

    await bus.consume_batches(QUEUE.name, RegistryChanged, handler, max_batch=10, max_wait=0.2)


@pytest.mark.parametrize("consume", [_one_by_one, _in_batches], ids=["consume", "consume_batches"])
async def test_consumer_survives_a_broker_restart_with_work_in_flight(
        private_rabbitmq: PrivateRabbitMQ, consume: Consume) -> None:
    bus = Bus(private_rabbitmq.url, namespace="restart.", retry_first_pause=0.05)
    await bus.connect()
    await bus.declare_work_queue(QUEUE)
    holding = asyncio.Event()
    release = asyncio.Event()
    stored: list[str] = []
    after_restart: set[str] = set()
    restarted = False
    done = asyncio.Event()

    async def store(ids: list[str]) -> None:
        if not restarted:
            holding.set()
            await release.wait()  # the broker goes away while this work is in flight
            stored.extend(ids)
            return
        stored.extend(ids)
        after_restart.update(ids)
        if after_restart >= {"before", "after"}:
            done.set()

    consumer = asyncio.create_task(consume(bus, store))
    try:
        await _publish(bus, "before")
        await asyncio.wait_for(holding.wait(), timeout=10)
        await asyncio.to_thread(private_rabbitmq.stop)
        restarted = True
        release.set()  # the handler finishes; its ack finds no broker
        await asyncio.to_thread(private_rabbitmq.start)
        await _publish(bus, "after")
        await asyncio.wait_for(done.wait(), timeout=60)
        assert not consumer.done(), "the consumer ended"
        # "before" came again after the restart: the broker redelivered what was never acked
        # (the first handling either finished with its ack lost, or was cancelled with its channel)
        assert "before" in after_restart
        assert stored.count("after") == 1
    finally:
        await _stop(consumer, bus)


@pytest.mark.parametrize("consume", [_one_by_one, _in_batches], ids=["consume", "consume_batches"])
async def test_a_consumer_started_while_the_broker_is_away_subscribes_once_it_is_back(
        private_rabbitmq: PrivateRabbitMQ, consume: Consume) -> None:
    """A service's consumers subscribe right after it connects: a broker restart in between (or
    during the subscribing) waits for the broker instead of ending the consumer, and the service."""
    bus = Bus(private_rabbitmq.url, namespace="away.", retry_first_pause=0.05, retry_max_pause=0.5)
    await bus.connect()
    await bus.declare_work_queue(QUEUE)
    stored: list[str] = []
    done = asyncio.Event()

    async def store(ids: list[str]) -> None:
        stored.extend(ids)
        done.set()

    await asyncio.to_thread(private_rabbitmq.stop)
    consumer = asyncio.create_task(consume(bus, store))
    try:
        await asyncio.sleep(1.5)  # several tries on the lost connection
        assert not consumer.done(), consumer.exception() if consumer.done() else None
        await asyncio.to_thread(private_rabbitmq.start)
        await _publish(bus, "after")
        await asyncio.wait_for(done.wait(), timeout=60)
        assert stored == ["after"]
    finally:
        await _stop(consumer, bus)
