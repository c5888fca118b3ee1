"""The simulator behaves as a real EnOS gateway when the ingest gateway restarts (the sessions of
its sub-devices are gone: 1212, so it logs them in again with combine.login.batch) and when
Mosquitto restarts (it connects again, logs in and sends again what got no answer): every point
it sent is acknowledged in the end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from tests.integration.ingest.conftest import TIMEOUT, TelemetryReader
from twinbill_common.schemas import DeviceRecord, ProductModel
from twinbill_ingest.app import GATEWAY, create_app
from twinbill_ingest.devbroker import SERVICE_USER, DevBroker
from twinbill_ingest.registry import StaticRegistrySource
from twinbill_ingest.settings import IngestSettings
from twinbill_simulator import run_simulator
from twinbill_simulator.config import generate_config, registry_for


async def _until(condition: Callable[[], Coroutine[Any, Any, bool]], *, timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)  # polling the queue depth, bounded by the deadline


async def test_simulator_logs_in_again_and_resends_after_an_ingest_gateway_restart(
        broker: DevBroker, amqp_url: str, bus_namespace: str, telemetry: TelemetryReader) -> None:
    config = generate_config(1, 4, prefix=f"r{uuid.uuid4().hex[:5]}")
    registry = registry_for(config)
    broker.add_users({f"{g['product_key']}/{g['device_key']}": g["secret"] for g in config["gateways"]})
    settings = IngestSettings(amqp_url=amqp_url, bus_namespace=bus_namespace, mqtt_port=broker.port,
                              mqtt_username=SERVICE_USER, mqtt_password=broker.service_password,
                              share_group=f"g{uuid.uuid4().hex[:8]}")
    source = StaticRegistrySource([ProductModel.model_validate(p) for p in registry["products"]],
                                  [DeviceRecord.model_validate(d) for d in registry["devices"]])

    async def start() -> TestServer:
        server = TestServer(create_app(settings, source=source), port=0)
        await server.start_server()
        await asyncio.wait_for(server.app[GATEWAY].ready.wait(), TIMEOUT)
        return server

    async def stored_more_than(count: int) -> Callable[[], Coroutine[Any, Any, bool]]:
        async def check() -> bool:
            return await telemetry.count() > count
        return check

    lines: list[str] = []
    stop = asyncio.Event()
    server = await start()
    simulation = asyncio.create_task(run_simulator(
        config, port=broker.port, rate=100, batch=10, window=4, auth=True, offline_every=None,
        reply_timeout=2.0, retries=8, report_every=None, stop=stop, seed=3, log=lines.append))
    try:
        await _until(await stored_more_than(0), timeout=30, what="the first points")
        await server.close()  # every sub-device session goes with it
        server = await start()
        before = await telemetry.count()
        await _until(await stored_more_than(before + 5), timeout=60, what="points after the restart")
        stop.set()
        stats = await asyncio.wait_for(simulation, 60)
    finally:
        stop.set()
        await server.close()
        if not simulation.done():
            simulation.cancel()
    assert stats.codes[1212] > 0, lines  # the restart did forget the sessions
    assert stats.relogins >= 1, lines
    assert stats.points_acked == stats.points_sent, lines
    assert not [line for line in lines if "refused" in line], lines


async def test_simulator_reconnects_and_resends_after_a_mosquitto_restart(
        tmp_path: Path, stack: None, amqp_url: str, bus_namespace: str, telemetry: TelemetryReader) -> None:
    broker = DevBroker(tmp_path).start()  # of this test: it is restarted
    config = generate_config(1, 4, prefix=f"m{uuid.uuid4().hex[:5]}")
    registry = registry_for(config)
    broker.add_users({f"{g['product_key']}/{g['device_key']}": g["secret"] for g in config["gateways"]})
    settings = IngestSettings(amqp_url=amqp_url, bus_namespace=bus_namespace, mqtt_port=broker.port,
                              mqtt_username=SERVICE_USER, mqtt_password=broker.service_password,
                              share_group=f"g{uuid.uuid4().hex[:8]}")
    source = StaticRegistrySource([ProductModel.model_validate(p) for p in registry["products"]],
                                  [DeviceRecord.model_validate(d) for d in registry["devices"]])
    server = TestServer(create_app(settings, source=source), port=0)
    await server.start_server()
    lines: list[str] = []
    stop = asyncio.Event()
    simulation = None
    try:
        await asyncio.wait_for(server.app[GATEWAY].ready.wait(), TIMEOUT)
        simulation = asyncio.create_task(run_simulator(
            config, port=broker.port, rate=100, batch=10, window=4, auth=True, offline_every=None,
            reply_timeout=2.0, retries=8, report_every=None, stop=stop, seed=5, log=lines.append))

        async def stored_more_than(count: int) -> Callable[[], Coroutine[Any, Any, bool]]:
            async def check() -> bool:
                return await telemetry.count() > count
            return check

        await _until(await stored_more_than(0), timeout=30, what="the first points")
        await asyncio.to_thread(broker.restart)
        before = await telemetry.count()
        await _until(await stored_more_than(before + 5), timeout=60, what="points after the restart")
        stop.set()
        stats = await asyncio.wait_for(simulation, 60)
    finally:
        stop.set()
        if simulation is not None and not simulation.done():
            simulation.cancel()
        await server.close()
        broker.stop()
    assert stats.reconnects >= 1, lines
    assert stats.points_acked == stats.points_sent, lines
    assert not [line for line in lines if "refused" in line or "gave up" in line], lines
