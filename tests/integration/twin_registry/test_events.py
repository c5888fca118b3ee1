"""Registry changes reach a consumer on the real RabbitMQ as RegistryChanged `{entity}.{action}`,
after the commit; an event whose publish never happened is published by the relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractIncomingMessage
from aiohttp.test_utils import TestClient

from tests.integration.twin_registry.conftest import make_device, make_product, make_project
from twinbill_common.schemas import RegistryChanged
from twinbill_twin.events import change
from twinbill_twin.settings import TwinSettings

Client = TestClient[Any, Any]


@pytest.fixture(scope="module")
def twin_settings(pg_dsn: str, amqp_url: str) -> TwinSettings:
    """This module's twin retries the outbox quickly."""
    import uuid
    tag = uuid.uuid4().hex[:10]
    return TwinSettings(pg_dsn=pg_dsn, amqp_url=amqp_url, schema_name=f"twin_{tag}",
                        bus_namespace=f"t{tag}.", pg_pool_max=5, outbox_relay_interval=0.2)


class Inbox:
    """RegistryChanged messages from an exclusive queue bound to the registry exchange."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, RegistryChanged]] = asyncio.Queue()

    async def on_message(self, raw: AbstractIncomingMessage) -> None:
        self.queue.put_nowait((raw.routing_key or "", RegistryChanged.model_validate_json(raw.body)))

    async def until(self, routing_key: str, ident: str) -> RegistryChanged:
        """The first event with that routing key and id, waiting at most 10 s."""
        async def find() -> RegistryChanged:
            while True:
                key, event = await self.queue.get()
                if key == routing_key and event.id == ident:
                    return event
        return await asyncio.wait_for(find(), timeout=10)


@pytest.fixture
async def inbox(twin: Client, twin_settings: TwinSettings) -> AsyncIterator[Inbox]:
    """A consumer of every registry event of this module's twin."""
    connection = await aio_pika.connect(twin_settings.amqp_url.get_secret_value())
    channel = await connection.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(f"{twin_settings.bus_namespace}registry", routing_key="#")
    box = Inbox()
    await queue.consume(box.on_message, no_ack=True)
    yield box
    with contextlib.suppress(Exception):
        await connection.close()


async def test_changes_are_published(twin: Client, inbox: Inbox) -> None:
    """Create, update and delete each publish one event with the entity's data and project."""
    project = await make_project(twin)
    event = await inbox.until("project.created", str(project))
    assert event.project_id == project and event.data["timezone"] == "Asia/Shanghai"

    site = await (await twin.post("/api/v1/sites/", json={"project_id": project, "name": "S"})).json()
    event = await inbox.until("site.created", str(site["id"]))
    assert event.entity == "site" and event.action == "created" and event.project_id == project

    product = await make_product(twin)
    event = await inbox.until("product.created", str(product["id"]))
    assert event.data["product_key"] == product["product_key"]
    await inbox.until("template.created", str(product["template_id"]))

    device = await make_device(twin, product_key=product["product_key"], project_id=project)
    event = await inbox.until("device.created", str(device["id"]))
    assert event.data["device_key"] == device["device_key"] and "secret" not in event.data
    await inbox.until("instance.created", str(device["instance_id"]))

    await twin.put(f"/api/v1/devices/{device['id']}", json={"name": "改名"})
    assert (await inbox.until("device.updated", str(device["id"]))).data["name"] == "改名"

    await twin.delete(f"/api/v1/devices/{device['id']}")
    await inbox.until("device.deleted", str(device["id"]))

    text = f"site,product_key,device_key\nS2,{product['product_key']},csv-1\n"
    resp = await twin.post(f"/api/v1/io/sites_csv?project_id={project}", data=text.encode(),
                           headers={"Content-Type": "text/csv"})
    assert resp.status == 201
    found = await (await twin.get("/api/v1/devices/", params={"device_key": "csv-1"})).json()
    ident = found[0]["id"]
    bulk = await inbox.until("device.created", f"csv:{ident}-{ident}")
    assert bulk.data == {"ids": [ident], "bulk": True} and bulk.project_id == project


async def test_events_left_in_the_outbox_are_published_by_the_relay(
        twin: Client, twin_settings: TwinSettings, inbox: Inbox) -> None:
    """An event committed but never published (a crash between commit and publish) still goes out."""
    event = change("zone", "updated", 424242, project_id=1, data={"name": "late"})
    conn = await asyncpg.connect(twin_settings.pg_dsn.get_secret_value(),
                                 server_settings={"search_path": twin_settings.schema_name})
    try:
        await conn.execute("INSERT INTO outbox (exchange, routing_key, message_id, type, body) "
                           "VALUES ('registry', 'zone.updated', $1, 'RegistryChanged', $2)",
                           event.message_id, event.model_dump_json())
    finally:
        await conn.close()
    got = await inbox.until("zone.updated", "424242")
    assert got.message_id == event.message_id and got.data == {"name": "late"}
