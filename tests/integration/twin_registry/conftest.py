"""The real twin app in-process (aiohttp TestServer) on the session database, one schema and one
bus namespace per test module."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.servicetokens import as_service
from twinbill_devstack.namespaces import delete_namespace
from twinbill_twin.app import create_app
from twinbill_twin.settings import TwinSettings


@pytest.fixture(scope="module")
def twin_settings(pg_dsn: str, amqp_url: str) -> TwinSettings:
    """Settings of a twin service with its own schema and bus namespace."""
    tag = uuid.uuid4().hex[:10]
    return TwinSettings(pg_dsn=pg_dsn, amqp_url=amqp_url, schema_name=f"twin_{tag}",
                        bus_namespace=f"t{tag}.", pg_pool_max=5)


@pytest.fixture(scope="module")
async def twin(twin_settings: TwinSettings) -> AsyncIterator[TestClient[Any, Any]]:
    """A client of the running twin app."""
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(twin_settings)), headers=as_service("twin"))
    await client.start_server()
    yield client
    await client.close()
    await delete_namespace(twin_settings.amqp_url.get_secret_value(), twin_settings.bus_namespace)


def unique(prefix: str) -> str:
    """A key no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


WATER_POINTS: list[dict[str, Any]] = [
    {"identifier": "total", "name": "累计水量", "unit": "m3", "data_type": {"type": "double"}},
    {"identifier": "flow", "name": "瞬时流量", "unit": "m3/h", "data_type": {"type": "float"}},
    {"identifier": "reading", "name": "读数", "data_type": {
        "type": "struct", "fields": {"value": {"type": "double"}, "quality": {"type": "int"}}}},
    {"identifier": "valve", "name": "阀门", "data_type": {"type": "bool"}, "settable": True},
    {"identifier": "history", "name": "历史", "data_type": {"type": "array", "item": {"type": "int"}}},
    {"identifier": "mode", "name": "模式", "data_type": {"type": "enum", "values": ["auto", "manual"]},
     "settable": True},
]


async def make_project(client: TestClient[Any, Any], name: str | None = None) -> int:
    """A fresh project's id."""
    resp = await client.post("/api/v1/projects/", json={"name": name or unique("proj-"),
                                                        "timezone": "Asia/Shanghai"})
    assert resp.status == 201, await resp.text()
    return int((await resp.json())["id"])


async def make_product(client: TestClient[Any, Any], *, points: list[dict[str, Any]] | None = None,
                       is_gateway: bool = False) -> dict[str, Any]:
    """A fresh water-meter product (billing register `total`)."""
    chosen = [] if is_gateway else (points or WATER_POINTS)
    has_total = any(p["identifier"] == "total" for p in chosen)
    body = {"product_key": unique("pk"), "name": "水表", "is_gateway": is_gateway,
            "billing_register": "total" if has_total else None, "measurepoints": chosen}
    resp = await client.post("/api/v1/products/", json=body)
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def make_device(client: TestClient[Any, Any], *, product_key: str, project_id: int,
                      **extra: Any) -> dict[str, Any]:
    """A fresh device of the product."""
    body = {"product_key": product_key, "device_key": unique("dk"), "name": unique("表-"),
            "project_id": project_id, **extra}
    resp = await client.post("/api/v1/devices/", json=body)
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())
