"""The gateway against the real twin service in-process: the registry cache loads from the twin's
internal endpoints, a sub-device logs in with the secret the twin holds, the gateway's report for
it is answered 200, and the device's online state and last-seen time reach the twin
(POST /internal/v1/devices/status)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiomqtt
from aiohttp.test_utils import TestClient, TestServer

from tests.conditions import wait_until
from tests.integration.ingest.conftest import TIMEOUT, DeviceClient, DeviceCreds
from tests.integration.twin_registry.conftest import make_device, make_product, make_project
from tests.servicetokens import TEST_TOKENS
from twinbill_devstack.broker import SERVICE_USER, DevBroker
from twinbill_devstack.namespaces import delete_namespace
from twinbill_ingest.app import create_app
from twinbill_ingest.keys import CACHE, GATEWAY
from twinbill_ingest.settings import IngestSettings
from twinbill_ingest.store import HttpRegistrySource


async def test_registry_from_the_twin_and_status_back_to_it(
    twin: TestClient[Any, Any], broker: DevBroker, amqp_url: str, bus_namespace: str
) -> None:
    """Products and devices created in the twin are served; last-seen reaches the twin."""
    project = await make_project(twin)
    meter_product = await make_product(twin)
    gateway_product = await make_product(twin, is_gateway=True)
    gateway = await make_device(twin, product_key=gateway_product["product_key"], project_id=project)
    meter = await make_device(
        twin, product_key=meter_product["product_key"], project_id=project, device_type=1, gateway_id=gateway["id"]
    )
    creds = DeviceCreds(gateway_product["product_key"], gateway["device_key"], uuid.uuid4().hex)
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
    app = create_app(settings, source=source)
    server = TestServer(app, port=0)
    await server.start_server()
    try:
        await asyncio.wait_for(app[GATEWAY].ready.wait(), TIMEOUT)
        assert app[CACHE].device(meter_product["product_key"], meter["device_key"]) is not None
        async with aiomqtt.Client(
            "127.0.0.1",
            broker.port,
            username=creds.username,
            password=creds.secret,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as mqtt:
            device = DeviceClient(mqtt, creds)
            await mqtt.subscribe(device.topic("post/batch_reply"), qos=1)
            await mqtt.subscribe(device.session_topic("login") + "_reply", qos=1)

            async def read() -> None:
                async for message in mqtt.messages:
                    assert isinstance(message.payload, bytes)
                    await device.replies.put((message.topic.value, json.loads(message.payload)))

            reader = asyncio.create_task(read())
            try:
                sub = DeviceCreds(meter_product["product_key"], meter["device_key"], meter["secret"])
                login = await device.login(sub)
                reply = await device.request(
                    device.topic("post/batch"),
                    {
                        "id": "t1",
                        "version": "1.0",
                        "method": "thing.measurepoint.post.batch",
                        "allowOfflineSubDevice": False,
                        "params": [
                            {
                                "productKey": meter_product["product_key"],
                                "deviceKey": meter["device_key"],
                                "measurepoints": {"total": 12.345},
                                "time": 1763712000000,
                            }
                        ],
                    },
                )
            finally:
                reader.cancel()
        assert login["code"] == 200, login  # signed with the secret the twin keeps
        assert reply["code"] == 200, reply  # online through its gateway's session
        status = app[GATEWAY].status
        assert status is not None
        await status.flush()
        # the reporter's own loop may have taken the batch just before this flush and still be
        # posting it: wait for it to land rather than read once
        got: dict[str, object] = {}

        async def reported() -> bool:
            got.update(await (await twin.get(f"/api/v1/devices/{meter['id']}")).json())
            return got["last_seen"] is not None
        await wait_until(reported, timeout=TIMEOUT, what="the status report to reach the twin")
        assert got["online"] is True
    finally:
        await server.close()
        await source.close()
        await delete_namespace(amqp_url, bus_namespace)
