"""Fixtures of the ingest gateway tests: a private Mosquitto started from deploy/mosquitto (auth +
ACLs), a gateway per test on its own bus namespace and share group, device clients, and a reader
of the namespace's twin.telemetry queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import aiomqtt
import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.servicetokens import as_service
from twinbill_common.schemas import DeviceRecord, ProductModel
from twinbill_devstack.broker import SERVICE_USER, DevBroker
from twinbill_devstack.namespaces import delete_namespace
from twinbill_ingest.app import create_app
from twinbill_ingest.brokerauth import sub_devices_of
from twinbill_ingest.domain.signing import sign
from twinbill_ingest.gateway import Gateway
from twinbill_ingest.handlers import RegistryListener
from twinbill_ingest.keys import CACHE, GATEWAY, LISTENER
from twinbill_ingest.settings import IngestSettings
from twinbill_ingest.store import RegistryCache, StaticRegistrySource
from twinbill_ingest.twinstore import TwinStoreGate
from twinbill_twin.app import create_app as create_twin_app
from twinbill_twin.settings import TwinSettings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TIMEOUT = 10.0


def load_fixture(name: str) -> Any:
    """A JSON fixture of tests/fixtures."""
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="session")
def broker(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevBroker]:
    """A Mosquitto of this session with the project's config (auth + topic ACLs)."""
    dev = DevBroker(tmp_path_factory.mktemp("mosquitto")).start()
    yield dev
    dev.stop()


@dataclass
class DeviceCreds:
    """A device identity: keys and secret."""

    product_key: str
    device_key: str
    secret: str

    @property
    def username(self) -> str:
        """The MQTT username the ACL pattern expects."""
        return f"{self.product_key}/{self.device_key}"


@dataclass
class World:
    """A registry for one test: products, devices, and the identities to connect with."""

    products: list[ProductModel]
    devices: list[DeviceRecord] = field(default_factory=list)
    creds: dict[str, DeviceCreds] = field(default_factory=dict)

    def add(self, name: str, product_key: str, device_key: str, *, gateway: DeviceCreds | None = None) -> DeviceCreds:
        """Register a device (optionally a sub-device of `gateway`)."""
        creds = DeviceCreds(product_key, device_key, uuid.uuid4().hex)
        self.devices.append(
            DeviceRecord(
                id=len(self.devices) + 1,
                product_key=product_key,
                device_key=device_key,
                name=name,
                project_id=1,
                gateway_product_key=gateway.product_key if gateway else None,
                gateway_device_key=gateway.device_key if gateway else None,
                secret=creds.secret,
            )
        )
        self.creds[name] = creds
        return creds


def seed_world() -> World:
    """The seed-003 products plus a gateway product; a unique gateway with product1/device1 and
    product2/device2 as its sub-devices, and a second gateway with a sub-device of its own."""
    models = load_fixture("seed003_thing_models.json")["products"]
    products = [ProductModel.model_validate(p) for p in models]
    products.append(
        ProductModel.model_validate(
            {
                "product_key": "gwprod",
                "name": "gateway",
                "is_gateway": True,
                "measurepoints": [{"identifier": "temp", "data_type": {"type": "float"}}],
            }
        )
    )
    world = World(products)
    tag = uuid.uuid4().hex[:8]
    gateway = world.add("gateway", "gwprod", f"gw-{tag}")
    world.add("device1", "product1", "device1", gateway=gateway)
    world.add("device2", "product2", "device2", gateway=gateway)
    other = world.add("other", "gwprod", f"gw-other-{tag}")
    world.add("device9", "product1", f"device9-{tag}", gateway=other)
    return world


@dataclass
class RunningGateway:
    """A gateway under test and what a test needs to talk to it."""

    settings: IngestSettings
    gateway: Gateway
    cache: RegistryCache
    source: StaticRegistrySource
    world: World
    broker: DevBroker
    listener: RegistryListener
    server: TestServer


@contextlib.asynccontextmanager
async def start_gateway(broker: DevBroker, amqp_url: str, bus_namespace: str, *, world: World | None = None,
                        delete: bool = True, **overrides: Any) -> AsyncIterator[RunningGateway]:
    """The gateway app (lifespan and all) on a bus namespace and broker, subscribed and loaded.
    `world` and settings `overrides` let a test start the same gateway twice; `delete=False`
    keeps the bus namespace afterwards (its test deletes it); `store_gate=` (a TwinStoreGate)
    tells it whether the twin can store (none by default: a fixed registry, no twin)."""
    store_gate: TwinStoreGate | None = overrides.pop("store_gate", None)
    world = world or seed_world()
    broker.add_users({c.username: c.secret for c in world.creds.values()},
                     sub_devices=sub_devices_of(world.devices))
    settings = IngestSettings(
        amqp_url=amqp_url,
        bus_namespace=bus_namespace,
        mqtt_port=broker.port,
        mqtt_password=broker.service_password,
        mqtt_username=SERVICE_USER,
        share_group=f"g{uuid.uuid4().hex[:8]}",
        status_interval=0.2,
        max_payload_bytes=64 * 1024,
    ).model_copy(update=overrides)
    source = StaticRegistrySource(world.products, world.devices)
    app = create_app(settings, source=source, store_gate=store_gate)
    server = TestServer(app, port=0)
    await server.start_server()
    try:
        gateway = app[GATEWAY]
        await asyncio.wait_for(gateway.ready.wait(), TIMEOUT)
        yield RunningGateway(settings, gateway, app[CACHE], source, world, broker, app[LISTENER], server)
    finally:
        await server.close()
        if delete:
            await delete_namespace(amqp_url, bus_namespace)


@pytest.fixture
async def running(broker: DevBroker, amqp_url: str, bus_namespace: str) -> AsyncIterator[RunningGateway]:
    """The gateway on this test's bus namespace and the session's broker."""
    async with start_gateway(broker, amqp_url, bus_namespace) as gateway:
        yield gateway


class DeviceClient:
    """An MQTT v5 client of one device: send a request, await the reply with its id."""

    def __init__(self, client: aiomqtt.Client, creds: DeviceCreds) -> None:
        self.client = client
        self.creds = creds
        self.replies: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._counter = 0

    def topic(self, kind: str) -> str:
        """This device's request topic of a kind (post, post/batch, resume, resume/batch)."""
        return f"/sys/{self.creds.product_key}/{self.creds.device_key}/thing/measurepoint/{kind}"

    def session_topic(self, kind: str) -> str:
        """This gateway's session topic (login, login/batch, logout)."""
        return f"/ext/session/{self.creds.product_key}/{self.creds.device_key}/combine/{kind}"

    async def request_raw(self, topic: str, payload: bytes, *, timeout: float = TIMEOUT) -> dict[str, Any]:
        """Publish bytes on a topic and return the next reply on its reply topic."""
        await self.client.publish(topic, payload, qos=1)
        reply_topic, body = await asyncio.wait_for(self.replies.get(), timeout)
        assert reply_topic == f"{topic}_reply"
        return body

    async def request(self, topic: str, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Publish a JSON request and return its reply (checking the echoed id)."""
        reply = await self.request_raw(topic, json.dumps(body).encode(), **kwargs)
        if "id" in body:
            assert reply["id"] == str(body["id"])
        return reply

    def next_id(self) -> str:
        """A fresh request id."""
        self._counter += 1
        return str(self._counter)

    async def login(self, sub: DeviceCreds, *, method: str = "sha256") -> dict[str, Any]:
        """combine.login of a sub-device through this gateway."""
        params = {
            "productKey": sub.product_key,
            "deviceKey": sub.device_key,
            "clientId": sub.device_key,
            "timestamp": "1524448722000",
            "signMethod": method,
        }
        params["sign"] = sign(params, secret=sub.secret, method=method)
        params["cleanSession"] = "true"
        return await self.request(
            self.session_topic("login"), {"id": self.next_id(), "params": params, "method": "combine.login"}
        )


@contextlib.asynccontextmanager
async def open_device(port: int, creds: DeviceCreds) -> AsyncIterator[DeviceClient]:
    """A connected DeviceClient of a device on the broker at `port`, subscribed to its replies."""
    client = aiomqtt.Client(
        "127.0.0.1",
        port,
        username=creds.username,
        password=creds.secret,
        identifier=f"dev-{uuid.uuid4().hex[:10]}",
        protocol=aiomqtt.ProtocolVersion.V5,
    )
    async with client:
        device = DeviceClient(client, creds)
        await client.subscribe(f"/sys/{creds.product_key}/{creds.device_key}/#", qos=1)
        await client.subscribe(f"/ext/session/{creds.product_key}/{creds.device_key}/#", qos=1)

        async def read() -> None:
            async for message in client.messages:
                if message.topic.value.endswith("_reply") and isinstance(message.payload, bytes):
                    await device.replies.put((message.topic.value, json.loads(message.payload)))

        reader = asyncio.create_task(read())
        try:
            yield device
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader


@pytest.fixture
async def connect(running: RunningGateway) -> AsyncIterator[Any]:
    """connect(name) -> a DeviceClient of a registered device, subscribed to its reply topics."""
    async with contextlib.AsyncExitStack() as stack:

        async def _connect(name: str, *, creds: DeviceCreds | None = None) -> DeviceClient:
            creds = creds or running.world.creds[name]
            return await stack.enter_async_context(open_device(running.broker.port, creds))

        yield _connect


class TelemetryReader:
    """Reads MeasurementsAccepted bodies from the namespace's twin.telemetry queue."""

    def __init__(self, amqp_url: str, namespace: str) -> None:
        self.amqp_url = amqp_url
        self.namespace = namespace

    async def take(self, count: int, *, timeout: float = TIMEOUT) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Exactly the next `count` messages (acked), waiting at most `timeout` for them."""
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(f"{self.namespace}twin.telemetry", ensure=True)
            taken: list[aio_pika.abc.AbstractIncomingMessage] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            async with queue.iterator() as messages:
                while len(taken) < count:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        message = await asyncio.wait_for(messages.__anext__(), remaining)
                    except TimeoutError:
                        break
                    await message.ack()
                    taken.append(message)
            return taken

    async def count(self) -> int:
        """How many messages wait in the queue."""
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(f"{self.namespace}twin.telemetry", passive=True)
            return int(queue.declaration_result.message_count or 0)


def decode(body: bytes) -> Any:
    """A telemetry body as the twin decodes it (exact decimals)."""
    return json.loads(body, parse_float=Decimal)


@pytest.fixture
def telemetry(amqp_url: str, bus_namespace: str) -> TelemetryReader:
    """The reader of this test's telemetry queue."""
    return TelemetryReader(amqp_url, bus_namespace)


@pytest.fixture
async def twin(pg_dsn: str, amqp_url: str, bus_namespace: str) -> AsyncIterator[TestClient[Any, Any]]:
    """The real twin app in-process, on its own schema, sharing this test's bus namespace."""
    settings = TwinSettings(
        pg_dsn=pg_dsn,
        amqp_url=amqp_url,
        schema_name=f"twin_{uuid.uuid4().hex[:8]}",
        bus_namespace=bus_namespace,
        pg_pool_max=3,
    )
    client: TestClient[Any, Any] = TestClient(TestServer(create_twin_app(settings)), headers=as_service("twin"))
    await client.start_server()
    yield client
    await client.close()
