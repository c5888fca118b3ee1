"""Run simulated gateways (gateway.py) at a configured rate until a duration or a stop event,
logging a stats summary now and then."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import aiomqtt

from twinbill_simulator.gateway import GatewaySim
from twinbill_simulator.stats import SimulatorStats


async def run_simulator(
    config: dict[str, Any],
    *,
    host: str = "127.0.0.1",
    port: int = 1883,
    rate: float | None = 100.0,
    duration: float | None = None,
    batch: int = 100,
    window: int = 16,
    auth: bool = False,
    offline_every: float | None = 600.0,
    offline_seconds: float = 30.0,
    sample_interval: float = 15.0,
    retries: int = 3,
    reply_timeout: float = 30.0,
    login_attempts: int = 5,
    login_retry_seconds: float = 2.0,
    consumption_scale: float = 1.0,
    report_every: float | None = 10.0,
    stop: asyncio.Event | None = None,
    seed: int | None = None,
    log: Any = print,
    client_class: type[aiomqtt.Client] = aiomqtt.Client,
) -> SimulatorStats:
    """Simulate the config's gateways against an MQTT broker until `duration` or `stop`.

    `rate` is measurepoints per second over all gateways (None: as fast as replies allow, with
    `window` requests in flight per gateway). Each gateway is offline on average once every
    `offline_every` seconds for `offline_seconds`, then back-fills with resume/batch.
    `consumption_scale` multiplies every meter's daily consumption (a demo uses it so that a
    two-minute billing period shows a day's worth of use). `client_class`: the gateways' MQTT
    client, aiomqtt's or a subclass of it (bench_ingest passes the ingest gateway's, which
    reads and writes in fewer system calls).
    """
    stats = SimulatorStats()
    stop = stop or asyncio.Event()
    rng = random.Random(seed)
    gateways = config["gateways"]
    options = {
        "host": host,
        "port": port,
        "batch": batch,
        "window": window,
        "auth": auth,
        "rate_per_gateway": (rate / len(gateways)) if rate else None,
        "offline_every": offline_every,
        "offline_seconds": offline_seconds,
        "sample_interval": sample_interval,
        "retries": retries,
        "reply_timeout": reply_timeout,
        "login_attempts": login_attempts,
        "consumption_scale": consumption_scale,
        "login_retry_seconds": login_retry_seconds,
        "log": log,
        "client_class": client_class,
    }
    sims = [
        GatewaySim(spec, stats=stats, rng=random.Random(rng.random()), options=options)
        for spec in gateways
        if spec["sub_devices"]
    ]

    async def reporter() -> None:
        while report_every and not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), report_every)
            except TimeoutError:
                log(stats.summary())

    async def timer() -> None:
        if duration is not None:
            try:
                await asyncio.wait_for(stop.wait(), duration)
            except TimeoutError:
                stop.set()

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(reporter())
        tasks.create_task(timer())
        runs = [tasks.create_task(sim.run(stop)) for sim in sims]
        await asyncio.gather(*runs)
        stop.set()
    stats_line = stats.summary()
    log(stats_line)
    return stats
