"""Dead letters on the real RabbitMQ: counted, shown without being taken, replayed once fixed."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from tests.conditions import wait_until
from twinbill_common.bus import Bus, Delivery
from twinbill_common.deadletters import (
    LAST_REASON_HEADER,
    REPLAYS_HEADER,
    dead_letter_gauge,
    peek,
    replay,
    watch_dead_letter_depth,
)
from twinbill_common.errors import BusUnavailable, PermanentError
from twinbill_common.schemas import RunBilling
from twinbill_common.schemas.registry import DeviceType
from twinbill_common.topology import BILLING, BILLING_RUNS

RUNS_DLQ = f"{BILLING_RUNS.name}.dlq"


def run_request(n: int) -> RunBilling:
    end = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=n)
    run_id = uuid.uuid4().hex
    return RunBilling(message_id=run_id, run_id=run_id, project_id=7, device_type=DeviceType(1),
                      task_key=uuid.uuid4().hex, period_start=end - timedelta(days=30),
                      period_end=end, fire_time=end)


class FlakyBilling:
    """A runs consumer that refuses every run while `broken`, as billing does for a bad tariff."""

    def __init__(self) -> None:
        self.broken = True
        self.handled: list[str] = []
        self.headers: dict[str, dict[str, object]] = {}

    async def __call__(self, delivery: Delivery[RunBilling]) -> None:
        if self.broken:
            raise PermanentError(f"project {delivery.message.project_id} has no tariff")
        self.handled.append(delivery.message.run_id)
        self.headers[delivery.message.run_id] = dict(delivery.raw.headers or {})


@pytest.fixture
async def bus(amqp_url: str, bus_namespace: str) -> AsyncIterator[Bus]:
    connected = Bus(amqp_url, namespace=bus_namespace)
    await connected.connect()
    yield connected
    await connected.close()


@contextlib.asynccontextmanager
async def consuming(bus: Bus, handler: FlakyBilling) -> AsyncIterator[None]:
    consumer = asyncio.create_task(bus.consume(BILLING_RUNS.name, RunBilling, handler))
    try:
        yield
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer


async def eventually_depth(bus: Bus, queue: str, expected: int) -> None:
    async def holds() -> bool:
        return await bus.queue_depth(queue) == expected

    await wait_until(holds, timeout=10, what=f"{queue} to hold {expected}")


async def dead_letter_three(bus: Bus, handler: FlakyBilling) -> list[str]:
    runs = [run_request(n) for n in range(3)]
    for run in runs:
        await bus.publish(BILLING, "run.requested", run)
    await eventually_depth(bus, RUNS_DLQ, 3)
    return [run.run_id for run in runs]


async def test_dead_letters_are_counted_shown_and_replayed(bus: Bus) -> None:
    handler = FlakyBilling()
    async with consuming(bus, handler):
        run_ids = await dead_letter_three(bus, handler)

        registry = CollectorRegistry()
        gauge = dead_letter_gauge(registry)
        watcher = asyncio.create_task(watch_dead_letter_depth(bus, (RUNS_DLQ,), gauge, interval=0.05))

        def exported() -> bool:
            return registry.get_sample_value("twinbill_dead_letter_messages", {"queue": RUNS_DLQ}) is not None

        await wait_until(exported, timeout=10, what="the dead-letter gauge")
        watcher.cancel()
        assert registry.get_sample_value("twinbill_dead_letter_messages", {"queue": RUNS_DLQ}) == 3

        shown = await peek(bus, RUNS_DLQ, limit=2)
        assert [letter.reason for letter in shown] == ["project 7 has no tariff"] * 2
        assert {letter.kind for letter in shown} == {"RunBilling"}
        assert {letter.message_id for letter in shown} <= set(run_ids)
        await eventually_depth(bus, RUNS_DLQ, 3)  # showing took nothing away

        handler.broken = False  # the cause is fixed: replay
        assert await replay(bus, BILLING_RUNS.name) == 3
        await wait_until(lambda: len(handler.handled) == 3, timeout=10, what="the replayed runs")
    assert sorted(handler.handled) == sorted(run_ids)
    assert await bus.queue_depth(RUNS_DLQ) == 0
    for headers in handler.headers.values():
        assert headers[REPLAYS_HEADER] == 1
        assert headers[LAST_REASON_HEADER] == "project 7 has no tariff"


async def test_replay_moves_at_most_the_limit(bus: Bus) -> None:
    handler = FlakyBilling()
    async with consuming(bus, handler):
        await dead_letter_three(bus, handler)
        handler.broken = False
        assert await replay(bus, BILLING_RUNS.name, limit=2) == 2
        await eventually_depth(bus, RUNS_DLQ, 1)
        await wait_until(lambda: len(handler.handled) == 2, timeout=10, what="the replayed runs")
    assert len(handler.handled) == 2


async def test_a_replay_into_a_still_broken_consumer_ends(bus: Bus) -> None:
    """Messages that dead-letter again while the replay runs are not replayed again by it: the
    replay ends, and they wait in the dead-letter queue with their replay counted."""
    handler = FlakyBilling()
    async with consuming(bus, handler):
        await dead_letter_three(bus, handler)
        assert await asyncio.wait_for(replay(bus, BILLING_RUNS.name), timeout=30) == 3
        await eventually_depth(bus, RUNS_DLQ, 3)
    letters = await peek(bus, RUNS_DLQ, limit=10)
    assert [letter.replays for letter in letters] == [1, 1, 1]
    assert handler.handled == []


async def test_a_message_the_broker_dead_lettered_replays_with_its_history(bus: Bus) -> None:
    """Out of deliveries (x-death from RabbitMQ, no reason of ours): shown with the broker's
    reason, replayed with its x-death table intact."""
    run = run_request(0)
    await bus.publish(BILLING, "run.requested", run)
    channel = await bus.open_channel()
    queue = await channel.get_queue(bus.name(BILLING_RUNS.name), ensure=False)
    for _ in range(200):  # every delivery given back, until the delivery limit dead-letters it
        raw = await queue.get(no_ack=False, fail=False)
        if raw is None:
            if await bus.queue_depth(RUNS_DLQ) == 1:
                break
            await asyncio.sleep(0.05)
            continue
        await raw.nack(requeue=True)
    await channel.close()
    [letter] = await peek(bus, RUNS_DLQ, limit=5)
    assert letter.reason.startswith("delivery limit exceeded (delivery_limit in "), letter.reason

    await eventually_depth(bus, RUNS_DLQ, 1)  # the peeked letter is back in the queue's count
    handler = FlakyBilling()
    handler.broken = False
    async with consuming(bus, handler):
        assert await replay(bus, BILLING_RUNS.name) == 1
        await wait_until(lambda: bool(handler.handled), timeout=10, what="the replayed run")
    assert handler.handled == [run.run_id]
    headers = handler.headers[run.run_id]
    assert headers[LAST_REASON_HEADER] == letter.reason
    assert isinstance(headers["x-death"], list) and headers["x-death"], headers


async def test_showing_a_queue_that_does_not_exist_names_it(bus: Bus) -> None:
    with pytest.raises(BusUnavailable, match=r"scheduler\.registry\.dlq"):
        await peek(bus, "scheduler.registry.dlq", limit=1)  # only the scheduler declares it


async def test_the_command_lists_and_replays(amqp_url: str, bus_namespace: str, bus: Bus) -> None:
    handler = FlakyBilling()
    async with consuming(bus, handler):
        await dead_letter_three(bus, handler)
        base = [sys.executable, "-m", "twinbill_common.deadletters", "--amqp-url", amqp_url,
                "--namespace", bus_namespace]

        async def run(*args: str) -> tuple[int, str]:
            process = await asyncio.create_subprocess_exec(
                *base, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await process.communicate()
            return process.returncode or 0, out.decode()

        code, out = await run("list")
        assert code == 0
        assert any(line.split() == [RUNS_DLQ, "3"] for line in out.splitlines()), out
        code, out = await run("show", RUNS_DLQ, "--limit", "1")
        assert code == 0
        assert "reason: project 7 has no tariff" in out and "1 shown" in out
        handler.broken = False
        code, out = await run("replay", BILLING_RUNS.name)
        assert (code, out.strip()) == (0, "3 replayed into billing.runs")
        await wait_until(lambda: len(handler.handled) == 3, timeout=10, what="the replayed runs")
    assert len(handler.handled) == 3
