"""The faults: each waits for its moment, breaks something, repairs it the way an operator's
automation would (a crashed process is started again; a stopped store comes back), and says what
it did, when, and which services' readiness must have shown the outage."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from twinbill_faults.platform import BUS_SERVICES
from twinbill_faults.stack import Stack


@dataclass
class Injected:
    """What a fault did."""

    detail: str
    injected: float  # monotonic
    repaired: float  # monotonic: the repair action finished (processes started again)
    expect_unready: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)
    recover_within: float = 120.0


Fault = Callable[[Stack, random.Random], Awaitable[Injected]]


async def _pause(seconds: float) -> None:
    """A timed wait between fault steps (the campaign's own schedule, not a test wait)."""
    await asyncio.sleep(seconds)


async def at_random_moment(rng: random.Random, *, low: float = 2.0, high: float = 12.0) -> None:
    await _pause(rng.uniform(low, high))


async def at_billing_run(rng: random.Random) -> None:
    """Just after the next whole minute, when both billing tasks fire and their runs start."""
    now = time.time()
    await _pause(60 - now % 60 + rng.uniform(0.3, 1.5))


async def before_fire(rng: random.Random) -> None:
    """Just before the next whole minute, so the store is down across the fire time."""
    now = time.time()
    wait = 60 - now % 60 - rng.uniform(0.5, 1.5)
    await _pause(wait if wait > 0 else wait + 60)


def _connected_node(stack: Stack) -> int:
    """The node carrying most of the services' broker connections (the worst one to lose)."""
    counts = {node.amqp_port: 0 for node in stack.rabbit.nodes}
    for proxy in stack.proxies.values():
        for port, n in proxy.connections.items():
            counts[port] = counts.get(port, 0) + n
    port = max(counts, key=lambda p: counts[p])
    return next(i for i, node in enumerate(stack.rabbit.nodes) if node.amqp_port == port)


async def _rabbit_node_kill(stack: Stack, rng: random.Random, *, moment: str) -> Injected:
    await (at_billing_run(rng) if moment == "billing" else at_random_moment(rng))
    node = stack.rabbit.nodes[_connected_node(stack)]
    injected = time.monotonic()
    await asyncio.to_thread(stack.rabbit.kill, node)
    down = rng.uniform(5, 15)
    await _pause(down)
    await asyncio.to_thread(stack.rabbit.start_node, node)
    await asyncio.to_thread(stack.rabbit.await_node, node)
    return Injected(f"kill -9 rabbit node {node.index} (most of the services' connections), {down:.0f}s down, "
                    "restarted",
                    injected, time.monotonic())


async def rabbit_node_ingest(stack: Stack, rng: random.Random) -> Injected:
    return await _rabbit_node_kill(stack, rng, moment="ingest")


async def rabbit_node_billing(stack: Stack, rng: random.Random) -> Injected:
    return await _rabbit_node_kill(stack, rng, moment="billing")


async def rabbit_cluster_restart(stack: Stack, rng: random.Random) -> Injected:
    await at_random_moment(rng)
    injected = time.monotonic()
    await asyncio.gather(*(asyncio.to_thread(stack.rabbit.terminate, node) for node in stack.rabbit.nodes))
    await _pause(rng.uniform(2, 6))
    for node in stack.rabbit.nodes:
        await asyncio.to_thread(stack.rabbit.start_node, node)
    for node in stack.rabbit.nodes:
        await asyncio.to_thread(stack.rabbit.await_node, node)
    return Injected("stopped all 3 rabbit nodes, started them again", injected, time.monotonic(),
                    expect_unready=BUS_SERVICES, recover_within=180.0)


async def _postgres_restart(stack: Stack, rng: random.Random, *, moment: str) -> Injected:
    await (before_fire(rng) if moment == "fire" else at_random_moment(rng))
    injected = time.monotonic()
    await asyncio.to_thread(stack.pg.stop, "immediate")
    down = rng.uniform(3, 8)
    await _pause(down)
    await asyncio.to_thread(stack.pg.start)
    return Injected(f"postgres immediate shutdown, {down:.0f}s down, started", injected, time.monotonic(),
                    expect_unready=("twin", "scheduler", "gateway"))


async def postgres_twin_writes(stack: Stack, rng: random.Random) -> Injected:
    return await _postgres_restart(stack, rng, moment="random")


async def postgres_scheduler_fire(stack: Stack, rng: random.Random) -> Injected:
    return await _postgres_restart(stack, rng, moment="fire")


async def mongo_billing(stack: Stack, rng: random.Random) -> Injected:
    await at_billing_run(rng)
    injected = time.monotonic()
    await asyncio.to_thread(stack.mongo.stop, kill=True)
    down = rng.uniform(3, 8)
    await _pause(down)
    await asyncio.to_thread(stack.mongo.start)
    return Injected(f"nx-27017 killed during a billing run, {down:.0f}s down, started", injected,
                    time.monotonic(), expect_unready=("billing",))


async def mosquitto_ingest(stack: Stack, rng: random.Random) -> Injected:
    await at_random_moment(rng)
    injected = time.monotonic()
    await asyncio.to_thread(stack.broker.stop)
    down = rng.uniform(3, 10)
    await _pause(down)
    await asyncio.to_thread(stack.broker.restart)
    return Injected(f"mosquitto stopped, {down:.0f}s down, restarted", injected, time.monotonic(),
                    expect_unready=("ingest",))


def kill_service(name: str) -> Fault:
    async def fault(stack: Stack, rng: random.Random) -> Injected:
        await at_random_moment(rng)
        service = stack.services[name]
        stack.held_down.add(name)
        injected = time.monotonic()
        try:
            await service.kill()
            await _pause(rng.uniform(1, 3))
            await service.start()
        finally:
            stack.held_down.discard(name)
        return Injected(f"kill -9 {name} under load, started again", injected, time.monotonic(),
                        expect_unready=(name,))
    return fault


def partition(name: str, *, seconds: float = 30.0) -> Fault:
    async def fault(stack: Stack, rng: random.Random) -> Injected:
        await at_random_moment(rng)
        proxy = stack.proxies[name]
        injected = time.monotonic()
        proxy.cut()
        await _pause(seconds)
        proxy.heal()
        return Injected(f"{name} cut off from rabbitmq for {seconds:.0f}s (proxy drops nothing, passes nothing)",
                        injected, time.monotonic(), expect_unready=(name,))
    return fault


async def disk_full(stack: Stack, rng: random.Random) -> Injected:
    """Fill the time-series tablespace's disk; ingest should refuse (a documented code) rather than
    acknowledge what the twin cannot write."""
    await at_random_moment(rng)
    injected = time.monotonic()
    await asyncio.to_thread(stack.disk.fill, leave=64 * 1024)
    codes_before = dict(stack.ledger.codes)
    hold = 20.0
    await _pause(5)
    measured_from = time.monotonic()
    await _pause(hold - 5)
    acked_while_full = stack.ledger.since(measured_from)
    codes = {code: n - codes_before.get(code, 0) for code, n in stack.ledger.codes.items()
             if n - codes_before.get(code, 0)}
    await asyncio.to_thread(stack.disk.release)
    problems = []
    if acked_while_full:
        problems.append(f"ingest acknowledged {acked_while_full} points while the time-series disk was full "
                        f"(replies {codes}); no documented refusal code")
    return Injected(f"time-series disk filled to 64 KiB free for {hold:.0f}s, then freed", injected,
                    time.monotonic(), expect_unready=("twin",), problems=problems)


def catalogue() -> dict[str, list[Fault]]:
    """Every fault of the campaign by name; a list holds the variants a repetition cycles through."""
    return {
        "rabbit-node-kill-ingest": [rabbit_node_ingest],
        "rabbit-node-kill-billing": [rabbit_node_billing],
        "rabbit-cluster-restart": [rabbit_cluster_restart],
        "postgres-restart-twin-writes": [postgres_twin_writes],
        "postgres-restart-scheduler-fire": [postgres_scheduler_fire],
        "mongo-restart-billing": [mongo_billing],
        "mosquitto-restart-ingest": [mosquitto_ingest],
        "kill-ingest": [kill_service("ingest")],
        "kill-twin": [kill_service("twin")],
        "kill-scheduler": [kill_service("scheduler")],
        "kill-billing": [kill_service("billing")],
        "kill-gateway": [kill_service("gateway")],
        "partition": [partition(name) for name in BUS_SERVICES],
        "disk-full": [disk_full],
    }


# The short campaign (`--short`, and `make test`): quick faults, a tighter recovery limit.
SHORT_RECOVERY = 60.0
SHORT = ("kill-ingest", "postgres-restart-twin-writes", "mosquitto-restart-ingest", "rabbit-node-kill-ingest")
