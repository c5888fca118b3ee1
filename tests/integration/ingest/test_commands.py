"""Reverse control on the real RabbitMQ and the project's Mosquitto (auth + ACLs): a
SetMeasurepoints published on the `commands` exchange reaches the device's
/sys/{pk}/{dk}/thing/service/measurepoint/set with EnOS's payload, the device's set_reply is
consumed; offline devices get their commands once online; expired and superseded commands are
dropped; a command that cannot fit the thing model is dead-lettered with the reason."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aio_pika
import aiomqtt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.integration.ingest.conftest import TIMEOUT, DeviceCreds, RunningGateway, load_fixture
from tests.integration.twin_registry.conftest import make_device, make_product, make_project
from tests.integration.twin_timeseries.conftest import wait_for
from tests.servicetokens import TEST_TOKENS
from twinbill_common.bus import REASON_HEADER, Bus
from twinbill_common.schemas import CommandOutcome, SetMeasurepoints
from twinbill_common.topology import COMMANDS, TWIN_COMMAND_OUTCOMES
from twinbill_devstack.broker import SERVICE_USER, DevBroker
from twinbill_devstack.namespaces import delete_namespace
from twinbill_ingest.app import create_app
from twinbill_ingest.commands import CommandRelay
from twinbill_ingest.keys import GATEWAY, RELAY
from twinbill_ingest.settings import IngestSettings
from twinbill_ingest.store import HttpRegistrySource


class SetListener:
    """A device's (or a gateway's, for a sub-device) MQTT client reading set requests."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    async def next(self) -> tuple[str, dict[str, Any], bytes]:
        """The next set request: topic, body (exact decimals) and raw bytes."""
        topic, raw = await asyncio.wait_for(self.received.get(), TIMEOUT)
        return topic, json.loads(raw, parse_float=Decimal), raw

    async def reply(self, topic: str, request_id: str, code: int = 200) -> None:
        """Answer on the set_reply topic as EnOS devices do."""
        body = {"id": request_id, "code": code, "data": {}}
        await self.client.publish(f"{topic}_reply", json.dumps(body).encode(), qos=1)


@pytest.fixture
async def listen(running: RunningGateway) -> AsyncIterator[Callable[..., Awaitable[SetListener]]]:
    """listen(creds, *targets) -> a client of `creds` subscribed to the set topics of `targets`."""
    clients: list[aiomqtt.Client] = []
    readers: list[asyncio.Task[None]] = []

    async def _listen(creds: DeviceCreds, *targets: DeviceCreds) -> SetListener:
        client = aiomqtt.Client(
            "127.0.0.1",
            running.broker.port,
            username=creds.username,
            password=creds.secret,
            identifier=f"set-{uuid.uuid4().hex[:10]}",
            protocol=aiomqtt.ProtocolVersion.V5,
        )
        await client.__aenter__()
        clients.append(client)
        listener = SetListener(client)
        for target in targets or (creds,):
            topic = f"/sys/{target.product_key}/{target.device_key}/thing/service/measurepoint/set"
            result = await client.subscribe(topic, qos=1)
            granted = result[0] if isinstance(result[0], int) else result[0].value
            assert granted < 0x80, f"subscription to {topic} refused: {result}"

        async def read() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                await listener.received.put((message.topic.value, message.payload))

        readers.append(asyncio.create_task(read()))
        return listener

    yield _listen
    for task in readers:
        task.cancel()
    for client in clients:
        await client.__aexit__(None, None, None)


@pytest.fixture
async def bus(running: RunningGateway, amqp_url: str, bus_namespace: str) -> AsyncIterator[Bus]:
    """A publisher on the test's namespace, standing in for the twin."""
    publisher = Bus(amqp_url, namespace=bus_namespace)
    await publisher.connect()
    yield publisher
    await publisher.close()


def command(creds: DeviceCreds, values: dict[str, Any], *, version: int = 1, ttl: float = 60.0) -> SetMeasurepoints:
    """A SetMeasurepoints as the twin writes it."""
    return SetMeasurepoints(
        product_key=creds.product_key,
        device_key=creds.device_key,
        instance_id=7,
        version=version,
        values=values,
        expires_at=datetime.now(UTC) + timedelta(seconds=ttl),
    )


async def send(bus: Bus, message: SetMeasurepoints) -> None:
    """Publish on the commands exchange (confirmed), routing key set.{pk}.{dk}."""
    await bus.publish(COMMANDS, f"set.{message.product_key}.{message.device_key}", message)


def relay_of(running: RunningGateway) -> CommandRelay:
    """The gateway's command relay."""
    return running.server.app[RELAY]


def counted(relay: CommandRelay, outcome: str) -> float:
    """ingest_commands_total{outcome}."""
    return float(relay.metrics.commands.labels(outcome)._value.get())


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until `condition` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def queue_depth(amqp_url: str, name: str) -> int:
    """Messages ready in a queue (unacked ones are not counted)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def test_a_command_reaches_an_online_device_with_the_exact_payload_and_its_reply_is_consumed(
    running: RunningGateway, connect: Any, listen: Any, bus: Bus
) -> None:
    """A directly connected device that reported data is online: the command is published on its
    set topic as EnOS's request with the twin's decimal text as a JSON number."""
    gateway = await connect("gateway")
    listener = await listen(gateway.creds)
    posted = await gateway.request(
        gateway.topic("post"),
        {"id": "1", "version": "1.0", "method": "thing.measurepoint.post", "params": {"measurepoints": {"temp": 1}}},
    )
    assert posted["code"] == 200
    message = command(gateway.creds, {"temp": "12.20"}, version=3)
    await send(bus, message)
    topic, body, raw = await listener.next()
    assert topic == f"/sys/{gateway.creds.product_key}/{gateway.creds.device_key}/thing/service/measurepoint/set"
    assert body == {
        "id": message.message_id,
        "version": "1.0",
        "params": {"temp": Decimal("12.20")},
        "method": "thing.service.measurepoint.set",
    }
    assert b'"temp":12.20' in raw  # a JSON number with the twin's digits, not a string
    relay = relay_of(running)
    await listener.reply(topic, body["id"])
    replies = relay.metrics.command_replies.labels("200")
    await until(lambda: replies._value.get() == 1, "the set_reply to be consumed")
    await until(lambda: counted(relay, "delivered") == 1, "the command to be counted delivered")
    assert counted(relay, "delivered") == 1


async def test_an_offline_sub_device_gets_its_command_after_login_and_a_newer_version_supersedes(
    running: RunningGateway, connect: Any, listen: Any, bus: Bus
) -> None:
    """Commands for a sub-device that is not logged in wait; v1 is replaced by v2 (same
    identifiers) while waiting; after the login the gateway receives v2 on the sub-device's topic."""
    relay = relay_of(running)
    device1 = running.world.creds["device1"]
    gateway = await connect("gateway")
    listener = await listen(gateway.creds, device1)  # the gateway subscribes for its sub-device
    await send(bus, command(device1, {"temp": "1.5", "Power": {"value": "3", "quality": "0"}}, version=1))
    await until(lambda: relay.metrics.commands_pending._value.get() == 1, "v1 to be held")
    await send(bus, command(device1, {"temp": "2.25", "Power": {"value": "4", "quality": "1"}}, version=2))
    await until(lambda: counted(relay, "superseded") == 1, "v1 to be superseded")
    assert (await gateway.login(device1))["code"] == 200
    topic, body, raw = await listener.next()
    assert topic == f"/sys/{device1.product_key}/{device1.device_key}/thing/service/measurepoint/set"
    assert body["params"] == {"temp": Decimal("2.25"), "Power": {"value": 4, "quality": 1}}
    assert b'"Power":{"value":4,"quality":1}' in raw
    # Nothing else comes: the next request is a later marker, not the superseded v1.
    await send(bus, command(device1, {"temp": "9"}, version=3))
    _, marker, _ = await listener.next()
    assert marker["params"] == {"temp": Decimal("9")}
    # counted when the broker's PUBACK returns, which may land after the device has the message
    await until(lambda: counted(relay, "delivered") == 2, "v2 and the marker to be counted delivered")
    assert counted(relay, "delivered") == 2


async def test_an_expired_command_is_dropped_not_delivered_nor_dead_lettered(
    running: RunningGateway, connect: Any, listen: Any, bus: Bus, amqp_url: str, bus_namespace: str
) -> None:
    """A command past its expires_at is acked and counted, never published to the device."""
    relay = relay_of(running)
    gateway = await connect("gateway")
    device1 = running.world.creds["device1"]
    listener = await listen(gateway.creds, device1)
    assert (await gateway.login(device1))["code"] == 200
    await send(bus, command(device1, {"temp": "5"}, version=1, ttl=-1))
    await until(lambda: counted(relay, "expired") == 1, "the expired command to be dropped")
    await send(bus, command(device1, {"temp": "6"}, version=2))
    _, body, _ = await listener.next()
    assert body["params"] == {"temp": Decimal("6")}  # the first set request is the live one
    assert await queue_depth(amqp_url, f"{bus_namespace}ingest.commands.dlq") == 0


async def test_a_command_held_too_long_goes_back_to_the_queue_and_is_delivered_later(
    running: RunningGateway, connect: Any, listen: Any, bus: Bus
) -> None:
    """Past command_hold the held copy is republished (confirmed) and acked; the republished
    copy is delivered once the device logs in."""
    relay = relay_of(running)
    relay.settings = relay.settings.model_copy(update={"command_hold": 0.3, "command_recheck": 0.1})
    gateway = await connect("gateway")
    device1 = running.world.creds["device1"]
    listener = await listen(gateway.creds, device1)
    message = command(device1, {"temp": "7.125"}, version=4)
    await send(bus, message)
    await until(lambda: counted(relay, "requeued") >= 2, "the command to go round the queue")
    assert (await gateway.login(device1))["code"] == 200
    _, body, _ = await listener.next()
    assert body["id"] == message.message_id
    assert body["params"] == {"temp": Decimal("7.125")}


async def test_a_command_that_does_not_fit_the_model_is_dead_lettered_with_the_reason(
    running: RunningGateway, bus: Bus, amqp_url: str, bus_namespace: str
) -> None:
    """An unknown identifier can never be delivered: dead-lettered, naming it."""
    device1 = running.world.creds["device1"]
    await send(bus, command(device1, {"humidity": "1"}))
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{bus_namespace}ingest.commands.dlq", ensure=True)
        dead = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while dead is None and loop.time() < deadline:
            dead = await queue.get(fail=False)
            if dead is None:
                await asyncio.sleep(0.05)
        assert dead is not None, "nothing dead-lettered"
        await dead.ack()
        reason = str((dead.headers or {})[REASON_HEADER])
        assert "unknown measurepoint identifier 'humidity'" in reason
        assert device1.device_key in reason


async def test_a_held_command_survives_the_gateway_stopping(
    running: RunningGateway, connect: Any, listen: Any, bus: Bus
) -> None:
    """The held command is not acked, so when its replica stops RabbitMQ gives it to the next
    one, which delivers it once the sub-device logs in there."""
    device1 = running.world.creds["device1"]
    gateway = await connect("gateway")
    listener = await listen(gateway.creds, device1)
    message = command(device1, {"temp": "3.30"}, version=5)
    await send(bus, message)
    old = relay_of(running)
    await until(lambda: old.metrics.commands_pending._value.get() == 1, "the command to be held")
    await running.server.close()  # the replica goes away with the command unacked
    replica = TestServer(create_app(running.settings, source=running.source), port=0)
    await replica.start_server()
    try:
        await asyncio.wait_for(replica.app[GATEWAY].ready.wait(), TIMEOUT)
        await asyncio.wait_for(replica.app[RELAY].ready.wait(), TIMEOUT)
        assert (await gateway.login(device1))["code"] == 200
        _, body, _ = await listener.next()
        assert body["id"] == message.message_id
        assert body["params"] == {"temp": Decimal("3.30")}
    finally:
        await replica.close()



async def test_seed002_patch_on_the_twin_ends_at_the_device_set_topic(
    twin: TestClient[Any, Any], broker: DevBroker, amqp_url: str, bus_namespace: str
) -> None:
    """PATCH /dt/open/v1/instance/{id} with seed 002's body -> the twin's SetMeasurepoints ->
    this gateway -> the device's measurepoint/set with 12.20 and 12.31 as JSON numbers."""
    project = await make_project(twin)
    points: list[dict[str, Any]] = [
        {"identifier": "setpoint", "data_type": {"type": "double"}, "settable": True},
        {"identifier": "limit", "data_type": {"type": "double"}, "settable": True},
        {"identifier": "total", "data_type": {"type": "double"}},
    ]
    product = await make_product(twin, points=points)
    device = await make_device(twin, product_key=product["product_key"], project_id=project)
    creds = DeviceCreds(product["product_key"], device["device_key"], device["secret"])
    broker.add_users({creds.username: creds.secret})
    settings = IngestSettings(
        amqp_url=amqp_url,
        bus_namespace=bus_namespace,
        mqtt_port=broker.port,
        mqtt_username=SERVICE_USER,
        mqtt_password=broker.service_password,
        share_group=f"g{uuid.uuid4().hex[:8]}",
        status_interval=0.2,
    )
    source = HttpRegistrySource(str(twin.make_url("")), tokens=TEST_TOKENS)
    server = TestServer(create_app(settings, source=source), port=0)
    await server.start_server()
    try:
        await asyncio.wait_for(server.app[GATEWAY].ready.wait(), TIMEOUT)
        await asyncio.wait_for(server.app[RELAY].ready.wait(), TIMEOUT)
        async with aiomqtt.Client(
            "127.0.0.1",
            broker.port,
            username=creds.username,
            password=creds.secret,
            identifier=f"dev-{uuid.uuid4().hex[:10]}",
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as mqtt:
            base = f"/sys/{creds.product_key}/{creds.device_key}"
            await mqtt.subscribe(f"{base}/thing/measurepoint/post_reply", qos=1)
            await mqtt.subscribe(f"{base}/thing/service/measurepoint/set", qos=1)
            inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

            async def read() -> None:
                async for message in mqtt.messages:
                    assert isinstance(message.payload, bytes)
                    await inbox.put((message.topic.value, message.payload))

            reader = asyncio.create_task(read())
            try:
                post = {
                    "id": "1",
                    "version": "1.0",
                    "method": "thing.measurepoint.post",
                    "params": {"measurepoints": {"total": 1}},
                }
                await mqtt.publish(f"{base}/thing/measurepoint/post", json.dumps(post).encode(), qos=1)
                topic, raw = await asyncio.wait_for(inbox.get(), TIMEOUT)
                assert topic == f"{base}/thing/measurepoint/post_reply"
                assert json.loads(raw)["code"] == 200  # heard from: online

                instance = device["instance_id"]
                detail = await (await twin.get("/dt/open/v1/instance", params={"ids": str(instance)})).json()
                ids = {a["name"]: a["id"] for a in detail["data"][0]["attr"]}
                body = load_fixture("seed002_control_request.json")
                body[0]["id"], body[1]["id"] = ids["setpoint"], ids["limit"]
                response = await twin.patch(f"/dt/open/v1/instance/{instance}", json=body)
                assert response.status == 200
                assert await response.json() == load_fixture("seed002_control_response.json")

                topic, raw = await asyncio.wait_for(inbox.get(), TIMEOUT)
                assert topic == f"{base}/thing/service/measurepoint/set"
                request = json.loads(raw, parse_float=Decimal)
                assert request["params"] == {"setpoint": Decimal("12.20"), "limit": Decimal("12.31")}
                assert (request["version"], request["method"]) == ("1.0", "thing.service.measurepoint.set")
                assert b'"setpoint":12.20' in raw
                assert b'"limit":12.31' in raw

                # the device applies it: the twin records its answer on both desired values
                reply = {"id": request["id"], "code": 200, "data": {}}
                await mqtt.publish(f"{base}/thing/service/measurepoint/set_reply", json.dumps(reply).encode(),
                                   qos=1)

                async def applied() -> bool:
                    detail = await (await twin.get("/dt/open/v1/instance", params={"ids": str(instance)})).json()
                    states = {a["name"]: a.get("expectstatus") for a in detail["data"][0]["attr"]}
                    return bool(states["setpoint"] == states["limit"] == "applied")
                await wait_for(applied)
            finally:
                reader.cancel()
    finally:
        await server.close()
        await source.close()
        await delete_namespace(amqp_url, bus_namespace)


async def next_outcome(bus: Bus) -> CommandOutcome:
    """The next CommandOutcome on twin.command_outcomes (the twin's queue), taken off it."""
    channel = await bus.open_channel()
    try:
        queue = await channel.declare_queue(bus.name(TWIN_COMMAND_OUTCOMES.name), passive=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:
            message = await queue.get(fail=False)
            if message is not None:
                await message.ack()
                return CommandOutcome.model_validate_json(message.body)
            assert loop.time() < deadline, "no command outcome published"
            await asyncio.sleep(0.05)
    finally:
        await channel.close()


async def test_a_refused_set_reply_and_an_expired_command_are_published_for_the_twin(
    running: RunningGateway, connect: Any, listen: Any, bus: Bus
) -> None:
    """The device's refusal (its code and message) goes to the twin as a CommandOutcome naming the
    command's instance, version and identifiers; so does a command that expired undelivered."""
    gateway = await connect("gateway")
    listener = await listen(gateway.creds)
    posted = await gateway.request(
        gateway.topic("post"),
        {"id": "1", "version": "1.0", "method": "thing.measurepoint.post", "params": {"measurepoints": {"temp": 1}}},
    )
    assert posted["code"] == 200
    message = command(gateway.creds, {"temp": "30"}, version=4)
    await send(bus, message)
    topic, body, _ = await listener.next()
    await listener.client.publish(f"{topic}_reply", json.dumps(
        {"id": body["id"], "code": 1806, "message": "value out of range", "data": {}}).encode(), qos=1)
    refused = await next_outcome(bus)
    assert (refused.outcome, refused.code, refused.reply_message) == ("refused", 1806, "value out of range")
    assert (refused.instance_id, refused.version, refused.identifiers) == (7, 4, ["temp"])
    assert refused.request_id == message.message_id

    device2 = running.world.creds["device2"]  # a sub-device nobody logged in
    await send(bus, command(device2, {"temp": "5"}, version=2, ttl=0.3))
    expired = await next_outcome(bus)
    assert (expired.outcome, expired.device_key, expired.version, expired.identifiers) == (
        "expired", device2.device_key, 2, ["temp"])
