"""The faults: each waits for its moment, breaks something, repairs it the way an operator's
automation would (a crashed process is started again; a stopped store comes back), and says what
it did, when, and which services' readiness must have shown the outage."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from twinbill_common.topology import TWIN_TELEMETRY
from twinbill_faults.platform import BUS_SERVICES
from twinbill_faults.stack import Pace, Stack


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
# What the ingest gateway answers while the twin cannot store (services/ingest/README.md).
REFUSAL_CODE = 500


async def _pause(seconds: float) -> None:
    """A timed wait between fault steps (the campaign's own schedule, not a test wait)."""
    await asyncio.sleep(seconds)


# The short campaign's: faults start 0.5-2 s into steady load (the readiness monitor polls every
# 0.5 s and the observer records every reply, so a second of load before is enough), and each
# outage lasts long enough for the readiness it must show (PostgreSQL and Mosquitto 2-4 s: the
# services notice within one poll) and for the disk-full check's measured window (8 s of
# detection allowed, DISK_FULL_DETECTION, then 6 s in which nothing may be acknowledged).
QUICK = Pace(moment=(0.5, 2.0), rabbit_down=(3.0, 5.0), postgres_down=(2.0, 4.0), mongo_down=(2.0, 4.0),
             mosquitto_down=(2.0, 4.0), killed_for=(1.0, 2.0), disk_full_for=14.0, partition_for=8.0)


async def at_random_moment(rng: random.Random, *, low: float = 2.0, high: float = 12.0) -> None:
    await _pause(rng.uniform(low, high))


async def at_moment(stack: Stack, rng: random.Random) -> None:
    """A random moment of steady load, within the pace's range."""
    await _pause(rng.uniform(*stack.options.pace.moment))


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
    await (at_billing_run(rng) if moment == "billing" else at_moment(stack, rng))
    if moment == "leader":
        # The node leading twin.telemetry, where every acknowledged point goes: its publishes
        # wait for a new leader, whichever node the ingest gateway is connected to.
        leader = await asyncio.to_thread(stack.rabbit.leader_of, TWIN_TELEMETRY.name)
        if leader is None:
            raise RuntimeError(f"no node says which leads {TWIN_TELEMETRY.name}")
        node, why = leader, f"leader of {TWIN_TELEMETRY.name}"
        ingest = stack.proxies["ingest"]
        if ingest.connections.get(node.amqp_port):
            # Move the ingest gateway to another node first: then its connection survives and
            # only its publishes' queue loses its leader (the worst case for its confirms).
            other = next(n for n in stack.rabbit.nodes if n is not node and stack.rabbit.alive(n))
            ingest.prefer(other.amqp_port)
            ingest.reset()
            deadline = time.monotonic() + 30
            while (ingest.connections.get(node.amqp_port) or not ingest.connections.get(other.amqp_port)
                   or stack.ledger.last_ack < time.monotonic() - 0.5) and time.monotonic() < deadline:
                await _pause(0.2)
            await at_random_moment(rng, low=1.0, high=4.0)
            why += ", ingest moved off it first"
    else:
        node, why = stack.rabbit.nodes[_connected_node(stack)], "most of the services' connections"
    ingest_on = sorted({stack.rabbit.nodes[i].index for i, n in enumerate(stack.rabbit.nodes)
                        if stack.proxies["ingest"].connections.get(n.amqp_port)})
    injected = time.monotonic()
    await asyncio.to_thread(stack.rabbit.kill, node)
    down = rng.uniform(*stack.options.pace.rabbit_down)
    await _pause(down)
    await asyncio.to_thread(stack.rabbit.start_node, node)
    await asyncio.to_thread(stack.rabbit.await_node, node)
    return Injected(f"kill -9 rabbit node {node.index} ({why}; ingest's on "
                    f"{'/'.join(map(str, ingest_on)) or '-'}), {down:.0f}s down, restarted",
                    injected, time.monotonic())


async def rabbit_node_ingest(stack: Stack, rng: random.Random) -> Injected:
    return await _rabbit_node_kill(stack, rng, moment="ingest")


async def rabbit_node_leader(stack: Stack, rng: random.Random) -> Injected:
    return await _rabbit_node_kill(stack, rng, moment="leader")


async def rabbit_node_billing(stack: Stack, rng: random.Random) -> Injected:
    return await _rabbit_node_kill(stack, rng, moment="billing")


async def rabbit_cluster_restart(stack: Stack, rng: random.Random) -> Injected:
    await at_moment(stack, rng)
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
    await (before_fire(rng) if moment == "fire" else at_moment(stack, rng))
    injected = time.monotonic()
    await asyncio.to_thread(stack.pg.stop, "immediate")
    down = rng.uniform(*stack.options.pace.postgres_down)
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
    down = rng.uniform(*stack.options.pace.mongo_down)
    await _pause(down)
    await asyncio.to_thread(stack.mongo.start)
    return Injected(f"nx-27017 killed during a billing run, {down:.0f}s down, started", injected,
                    time.monotonic(), expect_unready=("billing",))


async def mosquitto_ingest(stack: Stack, rng: random.Random) -> Injected:
    await at_moment(stack, rng)
    injected = time.monotonic()
    await asyncio.to_thread(stack.broker.stop)
    down = rng.uniform(*stack.options.pace.mosquitto_down)
    await _pause(down)
    await asyncio.to_thread(stack.broker.restart)
    return Injected(f"mosquitto stopped, {down:.0f}s down, restarted", injected, time.monotonic(),
                    expect_unready=("ingest",))


def kill_service(name: str) -> Fault:
    async def fault(stack: Stack, rng: random.Random) -> Injected:
        await at_moment(stack, rng)
        service = stack.services[name]
        stack.held_down.add(name)
        injected = time.monotonic()
        try:
            await service.kill()
            await _pause(rng.uniform(*stack.options.pace.killed_for))
            await service.start()
        finally:
            stack.held_down.discard(name)
        return Injected(f"kill -9 {name} under load, started again", injected, time.monotonic(),
                        expect_unready=(name,))
    return fault


# A service cut off from RabbitMQ must say so within this (its readiness makes a round trip to
# the broker; issue 17 found it ready for the whole 30 s).
PARTITION_UNREADY_WITHIN = 10.0


def partition(name: str, *, seconds: float | None = None) -> Fault:
    """`seconds`: how long the cut lasts (None: the pace's `partition_for`)."""
    async def fault(stack: Stack, rng: random.Random) -> Injected:
        await at_moment(stack, rng)
        cut_for = seconds if seconds is not None else stack.options.pace.partition_for
        proxy = stack.proxies[name]
        injected = time.monotonic()
        proxy.cut()
        await _pause(cut_for)
        proxy.heal()
        healed = time.monotonic()
        await _pause(1.0)  # the readiness monitor's next answers
        while stack.readiness.ready_again(name, healed) is None and time.monotonic() - healed < 60:
            await _pause(0.5)
        first = stack.readiness.first_unready(name, injected, healed)
        again = stack.readiness.ready_again(name, healed)
        problems = []
        if first is not None and first[0] - injected > PARTITION_UNREADY_WITHIN:
            problems.append(f"{name} /readyz took {first[0] - injected:.1f}s to report the partition "
                            f"(limit {PARTITION_UNREADY_WITHIN:.0f}s)")
        seen = (f"not ready {first[0] - injected:.1f}s after the cut ({first[1][:160]})" if first is not None
                else "never not ready")
        back = f"ready {again - healed:.1f}s after the heal" if again is not None else "not ready again within 60s"
        return Injected(f"{name} cut off from rabbitmq for {cut_for:.0f}s (proxy drops nothing, passes nothing); "
                        f"{seen}; {back}", injected, healed, expect_unready=(name,), problems=problems)
    return fault


DISK_FULL_DETECTION = 8.0  # seconds from the fill to ingest refusing (see disk_full)


async def disk_full(stack: Stack, rng: random.Random) -> Injected:
    """Fill the time-series tablespace's disk; ingest should refuse (a documented code) rather than
    acknowledge what the twin cannot write."""
    await at_moment(stack, rng)
    injected = time.monotonic()
    await asyncio.to_thread(stack.disk.fill, leave=64 * 1024)
    codes_before = dict(stack.ledger.codes)
    hold = stack.options.pace.disk_full_for
    # The first seconds belong to the detection: PostgreSQL's next file extension fails, the twin
    # records it, ingest polls the twin's store state every second; what was acknowledged
    # meanwhile waits in the queue. 1.3-6.0 s on the loaded two-core machine: 8 s allowed.
    await _pause(DISK_FULL_DETECTION)
    measured_from = time.monotonic()
    await _pause(hold - DISK_FULL_DETECTION)
    acked_while_full = stack.ledger.since(measured_from)
    codes = {code: n - codes_before.get(code, 0) for code, n in stack.ledger.codes.items()
             if n - codes_before.get(code, 0)}
    await asyncio.to_thread(stack.disk.release)
    released = time.monotonic()
    problems = []
    if acked_while_full:
        problems.append(f"ingest acknowledged {acked_while_full} points while the time-series disk was full "
                        f"(replies {codes}); no documented refusal code")
    if not codes.get(REFUSAL_CODE):
        problems.append(f"no request was refused with {REFUSAL_CODE} while the disk was full (replies {codes})")
    first = stack.readiness.first_unready("twin", injected, released)
    said = f"; twin not ready after {first[0] - injected:.1f}s: {first[1][:200]}" if first is not None else ""
    return Injected(f"time-series disk filled to 64 KiB free for {hold:.0f}s, then freed; replies while full "
                    f"{codes}{said}", injected, released, expect_unready=("twin",), problems=problems)


def catalogue() -> dict[str, list[Fault]]:
    """Every fault of the campaign by name; a list holds the variants a repetition cycles through."""
    return {
        "rabbit-node-kill-ingest": [rabbit_node_ingest],
        "rabbit-node-kill-billing": [rabbit_node_billing],
        "rabbit-node-kill-telemetry-leader": [rabbit_node_leader],
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
# The simulator's wait for a reply in the short campaign: longer than the ingest gateway's own
# publish timeout (10 s, after which it answers "retry later"); the full campaign keeps 30 s.
SHORT_REPLY_TIMEOUT = 12.0
SHORT = ("kill-ingest", "postgres-restart-twin-writes", "mosquitto-restart-ingest", "rabbit-node-kill-ingest",
         "disk-full")
