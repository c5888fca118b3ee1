"""The gateway's MQTT session: with a stable client id Mosquitto keeps its shared subscriptions
while it is away and queues the devices' requests for it, so a gateway restart loses none; and a
lost connection leaves no unretrieved future behind (asyncio's "Future exception was never
retrieved (MqttCodeError)")."""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from tests.integration.ingest.conftest import (
    TIMEOUT,
    TelemetryReader,
    decode,
    open_device,
    seed_world,
    start_gateway,
)
from twinbill_ingest.app import RELAY
from twinbill_ingest.devbroker import DevBroker


async def test_requests_sent_while_the_gateway_restarts_are_answered_when_it_is_back(
        tmp_path: Path, stack: None, amqp_url: str, bus_namespace: str, telemetry: TelemetryReader) -> None:
    broker = DevBroker(tmp_path).start()
    world = seed_world()
    same = {"mqtt_client_id": f"ingest-{uuid.uuid4().hex[:8]}", "share_group": f"g{uuid.uuid4().hex[:8]}"}
    try:
        async with start_gateway(broker, amqp_url, bus_namespace, world=world, delete=False, **same) as first:
            # it subscribed once (and is fully started); now it goes away (a restart, a deploy)
            await asyncio.wait_for(first.server.app[RELAY].ready.wait(), TIMEOUT)
        creds = world.creds["gateway"]
        async with open_device(broker.port, creds) as device:
            payload = (f'{{"id":"{device.next_id()}","version":"1.0","method":"thing.measurepoint.post",'
                       f'"params":{{"measurepoints":{{"temp":3.75}},"time":3000}}}}').encode()
            await device.client.publish(device.topic("post"), payload, qos=1)  # Mosquitto has it (PUBACK)
            async with start_gateway(broker, amqp_url, bus_namespace, world=world, delete=False, **same):
                _, reply = await asyncio.wait_for(device.replies.get(), TIMEOUT)
                assert reply["code"] == 200, reply
        [message] = await telemetry.take(1)
        points = decode(message.body)["points"]
        assert (points[0]["time"], points[0]["measurepoints"]) == (3000, {"temp": Decimal("3.75")})
    finally:
        broker.stop()


async def test_a_lost_connection_leaves_no_unretrieved_future(
        tmp_path: Path, stack: None, amqp_url: str, bus_namespace: str,
        caplog: pytest.LogCaptureFixture) -> None:
    broker = DevBroker(tmp_path).start()
    try:
        async with start_gateway(broker, amqp_url, bus_namespace) as running:
            for _ in range(2):
                await asyncio.to_thread(broker.restart)
                await asyncio.wait_for(running.gateway.ready.wait(), TIMEOUT)  # cleared, then set again
                gc.collect()  # asyncio reports an unretrieved exception when its future is collected
    finally:
        broker.stop()
    gc.collect()
    unretrieved = [r.getMessage() for r in caplog.records
                   if r.name == "asyncio" and r.levelno >= logging.ERROR and "never retrieved" in r.getMessage()]
    assert unretrieved == []
