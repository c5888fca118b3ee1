"""Device identity at the broker (project ACLs), replicas sharing the topics, registry refresh."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import paho.mqtt.client as paho
from aiohttp.test_utils import TestServer
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties

from tests.integration.ingest.conftest import TIMEOUT, RunningGateway, TelemetryReader
from twinbill_common.bus import Bus
from twinbill_common.schemas import DeviceRecord, RegistryChanged
from twinbill_ingest.app import create_app
from twinbill_ingest.keys import GATEWAY
from twinbill_ingest.store import StaticRegistrySource


def _publish_as(port: int, username: str, password: str, topic: str, payload: bytes) -> int:
    """Publish QoS 1 over MQTT v5 and return the PUBACK reason code the broker sent."""
    acked = threading.Event()
    result: dict[str, int] = {}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"acl-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
    client.username_pw_set(username, password)

    def on_publish(_c: Any, _u: Any, _mid: int, reason: Any, _p: Properties | None) -> None:
        result["code"] = int(reason.value)
        acked.set()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1)
        assert acked.wait(TIMEOUT), "no PUBACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return result["code"]


async def test_the_broker_refuses_a_device_publishing_on_another_devices_topic(
    running: RunningGateway, connect: Any, telemetry: TelemetryReader
) -> None:
    """With deploy/mosquitto's ACL, device A's publish on B's topic is refused (PUBACK 135, not
    authorised) and never reaches the gateway; on its own topic it is accepted."""
    intruder = running.world.creds["other"]
    victim = running.world.creds["gateway"]
    body = json.dumps(
        {"id": "x", "method": "thing.measurepoint.post", "params": {"measurepoints": {"temp": 1.5}}}
    ).encode()
    victim_topic = f"/sys/{victim.product_key}/{victim.device_key}/thing/measurepoint/post"
    code = await asyncio.to_thread(
        _publish_as, running.broker.port, intruder.username, intruder.secret, victim_topic, body
    )
    assert code == 135
    own_topic = f"/sys/{intruder.product_key}/{intruder.device_key}/thing/measurepoint/post"
    assert (
        await asyncio.to_thread(_publish_as, running.broker.port, intruder.username, intruder.secret, own_topic, body)
        == 0
    )
    [message] = await telemetry.take(1)
    assert json.loads(message.body)["device_key"] == intruder.device_key
    assert await telemetry.count() == 0


def _connack_code(port: int, username: str, password: str) -> int:
    """Connect over MQTT v5 and return the CONNACK reason code."""
    answered = threading.Event()
    result: dict[str, int] = {}
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pw-{uuid.uuid4().hex[:8]}", protocol=paho.MQTTv5)
    client.username_pw_set(username, password)

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Properties | None) -> None:
        result["code"] = int(reason.value)
        answered.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert answered.wait(TIMEOUT), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return result["code"]


async def test_a_wrong_password_cannot_connect(running: RunningGateway) -> None:
    """A device with the wrong secret is refused at CONNECT (reason 134/135); the right one is in."""
    creds = running.world.creds["gateway"]
    port = running.broker.port
    assert await asyncio.to_thread(_connack_code, port, creds.username, "wrong") in (134, 135)
    assert await asyncio.to_thread(_connack_code, port, creds.username, creds.secret) == 0


async def test_two_replicas_share_the_requests_and_each_is_answered_once(
    running: RunningGateway, connect: Any, telemetry: TelemetryReader
) -> None:
    """A second replica in the same share group: every request gets exactly one 200."""
    app = create_app(running.settings, source=StaticRegistrySource(running.world.products, running.world.devices))
    server = TestServer(app, port=0)
    await server.start_server()
    try:
        await asyncio.wait_for(app[GATEWAY].ready.wait(), TIMEOUT)
        gateway = await connect("gateway")
        for index in range(20):
            reply = await gateway.request(
                gateway.topic("post"),
                {
                    "id": f"s{index}",
                    "method": "thing.measurepoint.post",
                    "params": {"measurepoints": {"temp": index}, "time": index},
                },
            )
            assert reply["code"] == 200
        assert gateway.replies.empty()
        handled = [
            sum(s.value for s in next(iter(replica.metrics.requests.collect())).samples if s.name.endswith("_total"))
            for replica in (running.gateway, app[GATEWAY])
        ]
        assert sum(handled) == 20 and min(handled) > 0, handled
        assert len(await telemetry.take(20)) == 20
    finally:
        await server.close()


async def test_the_cache_follows_registry_events(
    running: RunningGateway, connect: Any, amqp_url: str, bus_namespace: str
) -> None:
    """A device created after start-up is served once `device.created` is announced."""
    gateway = await connect("gateway")
    creds = running.world.creds["gateway"]
    newcomer = DeviceRecord(
        id=99,
        product_key="product1",
        device_key=f"late-{uuid.uuid4().hex[:6]}",
        name="late",
        project_id=1,
        gateway_product_key=creds.product_key,
        gateway_device_key=creds.device_key,
    )
    body = {
        "id": "n1",
        "method": "thing.measurepoint.post.batch",
        "allowOfflineSubDevice": True,
        "params": [
            {"productKey": "product1", "deviceKey": newcomer.device_key, "measurepoints": {"temp": 3.25}, "time": 5}
        ],
    }
    assert (await gateway.request(gateway.topic("post/batch"), body))["code"] == 1212
    running.source.put_device(newcomer)
    listener = running.listener
    await asyncio.wait_for(listener.subscribed.wait(), TIMEOUT)
    listener.reloaded.clear()
    bus = Bus(amqp_url, namespace=bus_namespace)
    await bus.connect(declare=False)
    try:
        await bus.publish("registry", "device.created", RegistryChanged(entity="device", action="created", id="99"))
        await asyncio.wait_for(listener.reloaded.wait(), TIMEOUT)
    finally:
        await bus.close()
    assert (await gateway.request(gateway.topic("post/batch"), body))["code"] == 200
