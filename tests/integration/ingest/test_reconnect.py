"""Mosquitto restarts: the gateway notices (`ready` clear, /readyz 503 naming mqtt), reconnects
with backoff on the same port, and answers requests again; the command relay reconnects too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.ingest.conftest import (
    TIMEOUT,
    DeviceClient,
    RunningGateway,
    TelemetryReader,
    decode,
    open_device,
    start_gateway,
)
from twinbill_devstack.broker import DevBroker
from twinbill_ingest.keys import RELAY

RECONNECT_TIMEOUT = 30.0  # the backoff doubles from 0.5 s while the broker is down


async def until(condition: Callable[[], Any], *, timeout: float, what: str) -> None:
    """Poll an (async or sync) condition every 50 ms until it holds; fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def readyz(running: RunningGateway) -> tuple[int, dict[str, Any]]:
    """GET /readyz of the gateway app: (status, body)."""
    async with aiohttp.ClientSession() as http, http.get(running.server.make_url("/readyz")) as response:
        return response.status, await response.json()


async def post(device: DeviceClient, value: str, at: int) -> dict[str, Any]:
    """A post of the gateway's own `temp` point."""
    payload = (
        f'{{"id":"{device.next_id()}","version":"1.0","method":"thing.measurepoint.post",'
        f'"params":{{"measurepoints":{{"temp":{value}}},"time":{at}}}}}'
    )
    return await device.request_raw(device.topic("post"), payload.encode())


async def test_gateway_reconnects_after_mosquitto_restarts_on_the_same_port(
    tmp_path: Path, stack: None, amqp_url: str, bus_namespace: str, telemetry: TelemetryReader
) -> None:
    """200, broker stopped (ready false, /readyz 503 on mqtt only: the task lives), broker started
    on the same port, ready again, 200 again; both points are on the bus."""
    broker = DevBroker(tmp_path).start()
    try:
        async with start_gateway(broker, amqp_url, bus_namespace) as running:
            relay = running.server.app[RELAY]
            creds = running.world.creds["gateway"]
            port = broker.port
            await until(lambda: relay.ready.is_set(), timeout=TIMEOUT, what="the command relay's connection")

            async def is_ready() -> bool:
                return (await readyz(running))[0] == 200

            await until(is_ready, timeout=TIMEOUT, what="/readyz 200 before the restart")
            async with open_device(port, creds) as device:
                assert (await post(device, "1.25", 1_000))["code"] == 200

            await asyncio.to_thread(broker.stop)
            await until(lambda: not running.gateway.ready.is_set(), timeout=TIMEOUT, what="ready to clear")
            await until(lambda: not relay.ready.is_set(), timeout=TIMEOUT, what="the relay to notice")
            status, body = await readyz(running)
            assert status == 503
            # Only the connection is missing: the gateway's task is alive and retrying.
            assert set(body["failures"]) == {"mqtt"}, body

            await asyncio.to_thread(broker.restart)
            assert broker.port == port
            await asyncio.wait_for(running.gateway.ready.wait(), RECONNECT_TIMEOUT)
            await until(is_ready, timeout=RECONNECT_TIMEOUT, what="/readyz 200 after the restart")
            await until(lambda: relay.ready.is_set(), timeout=RECONNECT_TIMEOUT, what="the relay to reconnect")
            async with open_device(port, creds) as device:
                assert (await post(device, "2.50", 2_000))["code"] == 200

            messages = await telemetry.take(2)
            points = [decode(m.body)["points"] for m in messages]
            assert [(p[0]["time"], p[0]["measurepoints"]) for p in points] == [
                (1_000, {"temp": Decimal("1.25")}),
                (2_000, {"temp": Decimal("2.50")}),
            ]
    finally:
        broker.stop()
