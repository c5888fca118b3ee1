"""The bus on the real RabbitMQ: confirmed publishing, ack after the handler, dead-letter with reason."""

from __future__ import annotations

import asyncio
import contextlib
import gc

import aio_pika
import pytest

from twinbill_common.bus import REASON_HEADER, Bus, Delivery
from twinbill_common.errors import BusUnavailable, PermanentError, StoreUnavailable
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


async def test_publish_many_delivers_each_message_as_publish_does(amqp_url: str, bus_namespace: str) -> None:
    """A batch is published whole: every message with its own id, type header and body, as
    `publish` sends one; an empty batch sends nothing."""
    bus = Bus(amqp_url, namespace=bus_namespace)
    await bus.connect()
    try:
        queue = await bus.channel.declare_queue(bus.name("probe.many"), exclusive=True)
        await queue.bind(bus.name(REGISTRY), routing_key="tariff.*")
        messages = [RegistryChanged(entity="tariff", action="updated", id=str(n), project_id=n) for n in range(7)]
        await bus.publish_many(REGISTRY, "tariff.updated", [])
        await bus.publish_many(REGISTRY, "tariff.updated", messages)
        received = [await _get_one(queue) for _ in messages]
        assert await queue.get(fail=False) is None
        assert sorted((m.message_id, m.body) for m in received) == sorted(
            (m.message_id, m.model_dump_json().encode()) for m in messages)
        assert all(m.headers == {"type": "RegistryChanged"} and m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
                   and m.content_type == "application/json" for m in received)
    finally:
        await bus.close()


async def test_publish_many_reports_a_batch_no_queue_takes(amqp_url: str, bus_namespace: str) -> None:
    """Every message of a batch is mandatory: one that no queue would take makes the whole call
    fail (its caller publishes the batch again), never a silent loss."""
    bus = Bus(amqp_url, namespace=bus_namespace)
    await bus.connect()
    try:
        with pytest.raises(BusUnavailable, match=r"nobody\.listens"):
            await bus.publish_many(REGISTRY, "nobody.listens",
                                   [RegistryChanged(entity="device", action="created", id=str(n)) for n in range(3)])
        await bus.ping()  # the channel is still usable afterwards
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


async def test_transient_failures_stall_instead_of_dead_lettering(amqp_url: str, bus_namespace: str) -> None:
    """A store that is down for longer than the delivery limit allows does not send accepted data
    to the dead-letter queue: the consumer retries in place and handles the message once."""
    bus = Bus(amqp_url, namespace=bus_namespace, retry_first_pause=0.01)
    await bus.connect()
    queue = WorkQueue("probe.outage", REGISTRY, ("site.*",), delivery_limit=2)
    await bus.declare_work_queue(queue)
    attempts: list[str] = []
    handled = asyncio.Event()

    async def flaky_store(delivery: Delivery[RegistryChanged]) -> None:
        attempts.append(delivery.message.id)
        if len(attempts) <= 6:  # three times the delivery limit
            raise StoreUnavailable("PostgreSQL did not answer")
        handled.set()

    consumer = asyncio.create_task(bus.consume(queue.name, RegistryChanged, flaky_store))
    try:
        await bus.publish(REGISTRY, "site.created", RegistryChanged(entity="site", action="created", id="s1"))
        await asyncio.wait_for(handled.wait(), timeout=10)
        assert attempts == ["s1"] * 7
        dlq = await bus.channel.get_queue(bus.name("probe.outage.dlq"))
        assert (await dlq.get(fail=False)) is None
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await bus.close()


async def test_batch_consumer_rides_out_an_outage(amqp_url: str, bus_namespace: str) -> None:
    """The batch consumer (the twin's telemetry path) retries a failing batch in place too."""
    bus = Bus(amqp_url, namespace=bus_namespace, retry_first_pause=0.01)
    await bus.connect()
    queue = WorkQueue("probe.batch", REGISTRY, ("zone.*",), delivery_limit=2)
    await bus.declare_work_queue(queue)
    stored: list[str] = []
    failures = 0
    done = asyncio.Event()

    async def flaky_batch(batch: list[Delivery[RegistryChanged]]) -> None:
        nonlocal failures
        if failures < 5:
            failures += 1
            raise ConnectionResetError("connection to the database was reset")
        stored.extend(d.message.id for d in batch)
        if len(stored) >= 3:
            done.set()

    consumer = asyncio.create_task(bus.consume_batches(queue.name, RegistryChanged, flaky_batch, max_wait=0.2))
    try:
        for ident in ("z1", "z2", "z3"):
            await bus.publish(REGISTRY, "zone.created", RegistryChanged(entity="zone", action="created", id=ident))
        await asyncio.wait_for(done.wait(), timeout=10)
        assert sorted(stored) == ["z1", "z2", "z3"]
        dlq = await bus.channel.get_queue(bus.name("probe.batch.dlq"))
        assert (await dlq.get(fail=False)) is None
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await bus.close()


def _live(kind: str) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o).__qualname__ == kind)


async def test_probes_and_queue_depths_hold_no_memory(amqp_url: str, bus_namespace: str) -> None:
    """Issue 17's soak: billing's memory grew 3 MiB a minute. Each channel opened and closed left
    its close observer (a OneShotCallback with its task, event and lock) on the connection
    (aio-pika 10.2 / aiormq 7.2), and the queue-depth gauges opened four every 5 s. Depths and
    readiness now share one probe channel: 400 calls leave nothing behind, and the depth is
    the queue's."""
    bus = Bus(amqp_url, namespace=bus_namespace)
    await bus.connect()
    queue = WorkQueue("probe.depth", REGISTRY, ("device.*",), delivery_limit=3)
    await bus.declare_work_queue(queue)
    try:
        for ident in ("1", "2", "3"):
            await bus.publish(REGISTRY, "device.created", RegistryChanged(entity="device", action="created", id=ident))
        assert await bus.queue_depth(queue.name) == 3
        await bus.ping()
        callbacks, tasks = _live("OneShotCallback"), _live("Task")
        for _ in range(200):
            await bus.queue_depth(queue.name)
            await bus.ping()
        assert (_live("OneShotCallback"), _live("Task")) == (callbacks, tasks)
        with pytest.raises(BusUnavailable, match="no queue"):  # closes the probe: the next call opens one
            await bus.queue_depth("probe.no-such-queue")
        assert await bus.queue_depth(queue.name) == 3
    finally:
        await bus.close()


async def test_a_batch_is_acked_whole_around_its_poison_messages(amqp_url: str, bus_namespace: str) -> None:
    """A batch of good messages with a body that does not decode amid them, then one with a
    message the handler refuses: the two are dead-lettered, every other one is handled once and
    acked (a batch's acks are one `multiple` ack per channel run), so nothing comes back once the
    consumer stops."""
    bus = Bus(amqp_url, namespace=bus_namespace)
    await bus.connect()
    queue = WorkQueue("probe.batchack", REGISTRY, ("space.*",), delivery_limit=3)
    await bus.declare_work_queue(queue)
    handled: list[str] = []
    sizes: list[int] = []
    first, second = asyncio.Event(), asyncio.Event()

    async def handler(batch: list[Delivery[RegistryChanged]]) -> None:
        if any(d.message.id == "refused" for d in batch):
            raise PermanentError("space refused")
        handled.extend(d.message.id for d in batch)
        sizes.append(len(batch))
        if len(handled) == 6:
            first.set()
        if "s8" in handled:
            second.set()

    async def publish(*idents: str) -> None:
        for ident in idents:
            await bus.publish(REGISTRY, "space.created", RegistryChanged(entity="space", action="created", id=ident))

    await publish("s1", "s2", "s3")
    await bus.publish_raw(REGISTRY, "space.created", b"{not json", message_id="garbled")
    await publish("s4", "s5", "s6")
    consumer = asyncio.create_task(bus.consume_batches(queue.name, RegistryChanged, handler, max_batch=20,
                                                       max_wait=0.5))
    try:
        await asyncio.wait_for(first.wait(), timeout=10)
        assert sizes == [6]  # one batch, the garbled body left out
        await publish("s7", "refused", "s8")
        await asyncio.wait_for(second.wait(), timeout=10)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    try:
        assert sorted(handled) == [f"s{n}" for n in range(1, 9)]
        # the consumer's channel is closed: whatever it had not acked is back on the queue
        # (a quorum queue's declare-ok counts none of those: get one)
        back = await bus.channel.get_queue(bus.name(queue.name))
        assert await back.get(fail=False) is None
        dlq = await bus.channel.get_queue(bus.name("probe.batchack.dlq"))
        dead = sorted([(await _get_one(dlq)).message_id or "", (await _get_one(dlq)).message_id or ""])
        assert dead[1] == "garbled"
    finally:
        await bus.close()


async def test_consuming_a_queue_that_does_not_exist_fails_at_once(amqp_url: str, bus_namespace: str) -> None:
    """Only a broker that is away is waited for (Consumers._subscribe): a missing queue is a
    mistake in the topology, raised, and its channel is not kept."""
    bus = Bus(amqp_url, namespace=bus_namespace)
    await bus.connect()
    try:
        for consume in (bus.consume, bus.consume_batches):
            with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
                await asyncio.wait_for(consume("no.such.queue", RegistryChanged, _ignore), timeout=10)
        assert bus._consumer_channels == []
    finally:
        await bus.close()


async def _ignore(_: object) -> None:
    return None
