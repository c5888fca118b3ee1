"""A device's set_reply is not lost with the gateway that took it: the command relay acknowledges
it to Mosquitto only once its outcome is confirmed on RabbitMQ. Here RabbitMQ is away when the
reply arrives, the gateway process is killed (-9) holding it, and the gateway started again under
the same client id (a persistent session) gets it again from Mosquitto and publishes its outcome."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from tests.integration.ingest.conftest import TIMEOUT, open_device, seed_world
from tests.integration.ingest.test_commands import next_outcome
from twinbill_common.bus import Bus
from twinbill_devstack.broker import SERVICE_USER, DevBroker
from twinbill_devstack.ports import free_port
from twinbill_devstack.rabbitmq import PrivateRabbitMQ
from twinbill_ingest.brokerauth import sub_devices_of


async def scrape(http: aiohttp.ClientSession, port: int, sample: str) -> float | None:
    """One sample of the gateway's /metrics, None while it does not answer or lacks it."""
    try:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError:
        return None
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[1])
    return None


# A gateway process's start: under load its imports alone took 6-15 s on the 2-core machine.
STARTUP = 60.0


async def until(check: Callable[[], Awaitable[bool]], what: str, *, limit: float = TIMEOUT) -> None:
    """Poll `check` until it holds; fail naming `what` after `limit` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not await check():
        assert loop.time() < deadline, what
        await asyncio.sleep(0.1)


async def test_a_set_reply_held_by_a_killed_gateway_comes_again_and_its_outcome_is_published(
    broker: DevBroker, private_rabbitmq: PrivateRabbitMQ, tmp_path: Path
) -> None:
    world = seed_world()
    broker.add_users({c.username: c.secret for c in world.creds.values()},
                     sub_devices=sub_devices_of(world.devices))
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps({"products": [p.model_dump(mode="json") for p in world.products],
                                    "devices": [d.model_dump(mode="json") for d in world.devices]}))
    tag = uuid.uuid4().hex[:8]
    namespace = f"reply{tag}."
    bus = Bus(private_rabbitmq.url, namespace=namespace)
    await bus.connect()  # the topology, the twin's outcome queue included
    await bus.close()
    port = free_port()
    env = {**os.environ, "INGEST_MQTT_PORT": str(broker.port), "INGEST_MQTT_USERNAME": SERVICE_USER,
           "INGEST_MQTT_PASSWORD": broker.service_password, "INGEST_REGISTRY_FILE": str(registry),
           "INGEST_BUS_NAMESPACE": namespace, "INGEST_HTTP_PORT": str(port), "INGEST_AMQP_URL": private_rabbitmq.url,
           "INGEST_SHARE_GROUP": f"g{tag}", "INGEST_MQTT_CLIENT_ID": f"ingest-{tag}"}
    gateways: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> subprocess.Popen[bytes]:
        with (tmp_path / f"{name}.log").open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "twinbill_ingest"], env=env, stdout=log,
                                       stderr=subprocess.STDOUT)
        gateways.append(process)
        return process

    device = world.creds["gateway"]  # a directly connected device answering its own set request
    replies = 'ingest_command_replies_total{code="200"}'
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            first = start("first")

            async def ready() -> bool:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False
            await until(ready, "the gateway is not ready", limit=STARTUP)

            await asyncio.to_thread(private_rabbitmq.stop)  # the outcome cannot be confirmed now
            async with open_device(broker.port, device) as client:
                body = {"id": "set-after-kill", "code": 200, "data": {}}
                topic = f"/sys/{device.product_key}/{device.device_key}/thing/service/measurepoint/set_reply"
                await client.client.publish(topic, json.dumps(body).encode(), qos=1)

            async def taken() -> bool:
                return await scrape(http, port, replies) == 1.0
            await until(taken, "the gateway did not take the set_reply")
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)

            await asyncio.to_thread(private_rabbitmq.start)
            start("second")
            await until(ready, "the second gateway is not ready", limit=STARTUP)
            # the outcome confirmed by the second gateway: Mosquitto gave the reply again
            bus = Bus(private_rabbitmq.url, namespace=namespace)
            await bus.connect()
            try:
                outcome = await next_outcome(bus)
            finally:
                await bus.close()
            assert (outcome.request_id, outcome.outcome, outcome.code) == ("set-after-kill", "applied", 200)
            assert (outcome.product_key, outcome.device_key) == (device.product_key, device.device_key)
            assert await scrape(http, port, replies) == 1.0  # taken again by the second process
    finally:
        for process in gateways:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
