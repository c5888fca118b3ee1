"""Issue 17: a service cut off from RabbitMQ (the link drops everything, nothing is closed) is not
ready while it lasts and ready again after. The real broker behind the fault campaign's TCP proxy,
which holds every byte both ways while cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from twinbill_common.bus import Bus, with_heartbeat
from twinbill_common.errors import BusUnavailable
from twinbill_faults.proxy import Proxy


@pytest.fixture
async def proxied(amqp_url: str) -> AsyncIterator[tuple[Proxy, str]]:
    """A proxy in front of the machine's RabbitMQ, and the AMQP URL through it."""
    parts = urlsplit(amqp_url)
    proxy = Proxy("test", [parts.port or 5672])
    await proxy.start()
    netloc = f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{proxy.port}"
    yield proxy, urlunsplit(parts._replace(netloc=netloc))
    await proxy.stop()


async def _ready_again(bus: Bus, *, within: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            await bus.ping()
            return
        except BusUnavailable:
            assert loop.time() < deadline, "the bus did not answer again after the link healed"
            await asyncio.sleep(0.2)


async def test_ping_is_a_round_trip_so_a_partition_is_seen_and_its_end_too(
        proxied: tuple[Proxy, str], bus_namespace: str) -> None:
    proxy, url = proxied
    bus = Bus(url, namespace=bus_namespace, ping_timeout=1.0)
    await bus.connect(declare=False)
    try:
        await bus.ping()
        proxy.cut()
        # The client still thinks its connection is open; only an answer from the broker tells.
        with pytest.raises(BusUnavailable, match="did not answer a round trip"):
            await bus.ping()
        with pytest.raises(BusUnavailable):
            await bus.ping()
        proxy.heal()
        await _ready_again(bus)
    finally:
        proxy.heal()
        await bus.close()


async def test_a_heartbeat_gives_a_dead_link_up_and_the_bus_comes_back_without_leaking_a_cancel(
        proxied: tuple[Proxy, str], bus_namespace: str) -> None:
    """With a 1 s heartbeat aiormq gives the link up after 3 x (1 + 1) s and cancels every call
    waiting on it: callers get BusUnavailable (not a CancelledError that would end their task),
    and the robust connection reconnects once the link heals."""
    proxy, url = proxied
    bus = Bus(url, namespace=bus_namespace, heartbeat=1, ping_timeout=1.0)
    await bus.connect(declare=False)
    try:
        await bus.ping()
        proxy.cut()
        waiting = asyncio.create_task(bus.open_channel())  # held by the cut link until it is given up
        with pytest.raises(BusUnavailable):
            await asyncio.wait_for(waiting, 30)
        proxy.heal()
        await _ready_again(bus)
        channel = await bus.open_channel()  # the connection works again
        await channel.close()
    finally:
        proxy.heal()
        await bus.close()


def test_the_heartbeat_goes_into_the_url_unless_it_sets_one() -> None:
    assert with_heartbeat("amqp://guest:guest@127.0.0.1:5672/", 5) == "amqp://guest:guest@127.0.0.1:5672/?heartbeat=5"
    assert with_heartbeat("amqp://h/?x=1", 5) == "amqp://h/?x=1&heartbeat=5"
    assert with_heartbeat("amqp://h/?heartbeat=30", 5) == "amqp://h/?heartbeat=30"
