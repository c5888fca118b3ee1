"""The internal endpoints of docs/architecture.md, exactly as other services read them."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.integration.twin_registry.conftest import make_device, make_product, make_project
from twinbill_common.schemas import DeviceRecord, ProductModel

Client = TestClient[Any, Any]


async def test_project_timezone_and_products(twin: Client) -> None:
    """GET /api/v1/projects/{id} carries the timezone; /internal/v1/products lists ProductModels."""
    resp = await twin.post("/api/v1/projects/", json={"name": "园区", "timezone": "Europe/Paris"})
    project = await resp.json()
    got = await (await twin.get(f"/api/v1/projects/{project['id']}")).json()
    assert got == {"id": project["id"], "name": "园区", "timezone": "Europe/Paris", "description": ""}
    product = await make_product(twin)
    body = await (await twin.get("/internal/v1/products")).json()
    models = {p["product_key"]: ProductModel.model_validate(p) for p in body["products"]}
    model = models[product["product_key"]]
    assert model.billing_register == "total" and model.measurepoints[3].settable
    assert model.measurepoints[2].data_type.type == "struct"


async def test_devices_keyset_paging_and_status(twin: Client) -> None:
    """/internal/v1/devices pages by id with next_after_id; status updates set online/last_seen."""
    project = await make_project(twin)
    product = await make_product(twin)
    gateway_product = await make_product(twin, is_gateway=True)
    gateway = await make_device(twin, product_key=gateway_product["product_key"], project_id=project)
    meters = [await make_device(twin, product_key=product["product_key"], project_id=project,
                                device_type=2, gateway_id=gateway["id"]) for _ in range(3)]
    seen: list[DeviceRecord] = []
    after: int | None = 0
    while after is not None:
        resp = await twin.get("/internal/v1/devices", params={
            "after_id": str(after), "limit": "2", "project_id": str(project), "device_type": "2"})
        body = await resp.json()
        seen += [DeviceRecord.model_validate(d) for d in body["devices"]]
        after = body["next_after_id"]
    assert [d.id for d in seen] == [m["id"] for m in meters]
    assert seen[0].gateway_device_key == gateway["device_key"]
    assert seen[0].gateway_product_key == gateway_product["product_key"]
    assert seen[0].instance_id == meters[0]["instance_id"]

    resp = await twin.post("/internal/v1/devices/status", json={"devices": [
        {"product_key": product["product_key"], "device_key": meters[0]["device_key"], "online": True,
         "last_seen": 1763712000000},
        {"product_key": product["product_key"], "device_key": "nobody", "online": True}]})
    assert await resp.json() == {"updated": 1}
    got = await (await twin.get(f"/api/v1/devices/{meters[0]['id']}")).json()
    assert got["online"] is True and got["last_seen"].startswith("2025-11-21T08:00:00")

    resp = await twin.get("/internal/v1/devices", params={"limit": "x", "device_type": "7"})
    assert resp.status == 422
    assert set((await resp.json())["errors"]["query"]) == {"limit", "device_type"}
    resp = await twin.post("/internal/v1/devices/status", json={"devices": [{"online": "maybe"}]})
    assert resp.status == 422
