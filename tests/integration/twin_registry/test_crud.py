"""Management API (seed 001 style) on the real PostgreSQL: CRUD, paging, validation, conflicts."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from tests.integration.twin_registry.conftest import make_device, make_product, make_project, unique

Client = TestClient[Any, Any]


async def test_site_hierarchy_crud_and_pagination(twin: Client) -> None:
    """Sites, buildings, storeys, zones, spaces and residents: create, get, list paged, update, delete."""
    project = await make_project(twin)
    resp = await twin.post("/api/v1/sites/", json={"project_id": project, "name": "A区",
                                                   "latitude": 31.2, "longitude": 121.5,
                                                   "ifc_id": "IFC-1"})
    assert resp.status == 201
    site = await resp.json()
    assert site == {"id": site["id"], "project_id": project, "name": "A区", "description": "",
                    "ifc_id": "IFC-1", "latitude": 31.2, "longitude": 121.5}
    building = await (await twin.post("/api/v1/buildings/", json={"site_id": site["id"], "name": "1栋"})).json()
    assert building["project_id"] == project
    storey = await (await twin.post("/api/v1/storeys/", json={"building_id": building["id"], "name": "3F"})).json()
    zone = await (await twin.post("/api/v1/zones/", json={"project_id": project, "name": "北区"})).json()
    spaces = []
    for n in range(3):
        resp = await twin.post("/api/v1/spaces/", json={"storey_id": storey["id"], "name": f"30{n}",
                                                        "zone_id": zone["id"]})
        assert resp.status == 201
        spaces.append(await resp.json())
    resident = await (await twin.post("/api/v1/residents/", json={
        "space_id": spaces[0]["id"], "name": "测试住户甲", "cellphone": "10000000001"})).json()
    assert resident["project_id"] == project

    resp = await twin.get("/api/v1/spaces/", params={"storey_id": storey["id"], "page_size": "2", "page": "2"})
    assert resp.status == 200
    assert [s["name"] for s in await resp.json()] == ["302"]
    assert json.loads(resp.headers["X-Pagination"]) == {
        "total": 3, "total_pages": 2, "first_page": 1, "last_page": 2, "page": 2, "previous_page": 1}

    resp = await twin.put(f"/api/v1/spaces/{spaces[1]['id']}", json={"name": "301B", "zone_id": None})
    assert resp.status == 200
    assert (await resp.json())["zone_id"] is None and (await resp.json())["name"] == "301B"
    assert (await (await twin.get(f"/api/v1/spaces/{spaces[1]['id']}")).json())["name"] == "301B"

    assert (await twin.delete(f"/api/v1/sites/{site['id']}")).status == 204
    assert (await twin.get(f"/api/v1/residents/{resident['id']}")).status == 404


async def test_validation_errors_name_each_field(twin: Client) -> None:
    """A bad body answers 422 with errors.json naming every bad field, like seed 001."""
    resp = await twin.post("/api/v1/sites/", json={"latitude": 100})
    assert resp.status == 422
    body = await resp.json()
    assert body["code"] == 422 and body["status"] == "Unprocessable Entity"
    errors = body["errors"]["json"]
    assert errors["name"] == ["Missing data for required field."]
    assert errors["project_id"] == ["Missing data for required field."]
    assert "latitude" in errors

    resp = await twin.post("/api/v1/projects/", json={"name": "x", "timezone": "Mars/Olympus"})
    assert resp.status == 422
    assert "timezone" in (await resp.json())["errors"]["json"]

    resp = await twin.post("/api/v1/buildings/", json={"site_id": 987654321, "name": "x"})
    assert resp.status == 422
    assert "site_id" in (await resp.json())["errors"]["json"]

    resp = await twin.get("/api/v1/sites/", params={"page": "zero", "colour": "red"})
    assert resp.status == 422
    assert set((await resp.json())["errors"]["query"]) == {"page", "colour"}

    resp = await twin.put("/api/v1/projects/1", json={"name": None})
    assert resp.status == 422
    assert (await resp.json())["errors"]["json"] == {"name": ["Field may not be null."]}


async def test_unknown_ids_are_404(twin: Client) -> None:
    """getone/update/delete of an id that does not exist answers 404."""
    for resource in ("projects", "products", "devices", "sites", "buildings", "storeys", "spaces",
                     "zones", "residents"):
        assert (await twin.get(f"/api/v1/{resource}/999999999")).status == 404, resource
        assert (await twin.delete(f"/api/v1/{resource}/999999999")).status == 404, resource
    assert (await twin.get("/api/v1/projects/99999999999999999999")).status == 404
    resp = await twin.get("/api/v1/sites/", params={"project_id": str(2**40)})
    assert resp.status == 422 and "project_id" in (await resp.json())["errors"]["query"]
    resp = await twin.post("/api/v1/sites/", json={"project_id": 2**40, "name": "x"})
    assert resp.status == 422 and "project_id" in (await resp.json())["errors"]["json"]
    resp = await twin.put("/api/v1/sites/999999999", json={"name": "x"})
    assert resp.status == 404
    assert (await resp.json())["code"] == 404


async def test_products_devices_templates_and_instances(twin: Client) -> None:
    """A product gets a template; a device gets an instance whose attributes mirror the points;
    secrets are returned once; duplicates are 409."""
    project = await make_project(twin)
    product = await make_product(twin)
    assert product["template_id"] is not None
    assert [p["identifier"] for p in product["measurepoints"]] == [
        "total", "flow", "reading", "valve", "history", "mode"]
    assert product["measurepoints"][2]["data_type"]["fields"]["quality"]["type"] == "int"

    resp = await twin.post("/api/v1/products/", json={"product_key": product["product_key"], "name": "again"})
    assert resp.status == 409

    device = await make_device(twin, product_key=product["product_key"], project_id=project,
                               device_type=1, water_meter_kind="tap", multiplier="2.5",
                               register_max="99999.99")
    assert len(device["secret"]) == 32
    assert device["multiplier"] == "2.5" and device["register_max"] == "99999.99"
    got = await (await twin.get(f"/api/v1/devices/{device['id']}")).json()
    assert "secret" not in got
    listed = await (await twin.get("/api/v1/devices/", params={"project_id": str(project)})).json()
    assert [d["id"] for d in listed] == [device["id"]] and "secret" not in listed[0]

    resp = await twin.post("/api/v1/devices/", json={
        "product_key": product["product_key"], "device_key": device["device_key"], "name": "dup",
        "project_id": project})
    assert resp.status == 409

    detail = await (await twin.get("/dt/open/v1/instance", params={"ids": str(device["instance_id"])})).json()
    attrs = {a["name"]: a for a in detail["data"][0]["attr"]}
    assert {n: (a["attrtype"], a["datatype"]) for n, a in attrs.items()} == {
        "total": ("Stream", "Number"), "flow": ("Stream", "Number"), "reading": ("Stream", "Json Object"),
        "valve": ("State", "Boolean"), "history": ("Stream", "Json Array"), "mode": ("State", "String")}
    assert attrs["total"]["metric"] == "total" and attrs["total"]["deviceid"] == device["device_key"]
    assert attrs["total"]["unit"] == "m3" and attrs["total"]["displayname"] == "累计水量"

    # Changing the product's measurepoints keeps the instance in step.
    new_points = [p for p in product["measurepoints"] if p["identifier"] != "flow"]
    new_points.append({"identifier": "power", "name": "功率", "unit": "kW", "data_type": {"type": "int"}})
    new_points[0] = {**new_points[0], "unit": "t"}
    resp = await twin.put(f"/api/v1/products/{product['id']}", json={"measurepoints": new_points})
    assert resp.status == 200, await resp.text()
    detail = await (await twin.get("/dt/open/v1/instance", params={"ids": str(device["instance_id"])})).json()
    attrs = {a["name"]: a for a in detail["data"][0]["attr"]}
    assert set(attrs) == {"total", "reading", "valve", "history", "mode", "power"}
    assert attrs["total"]["unit"] == "t" and attrs["power"]["datatype"] == "Number"
    assert detail["data"][0]["attrnum"] == 6

    resp = await twin.put(f"/api/v1/products/{product['id']}", json={"billing_register": "nope"})
    assert resp.status == 422 and "billing_register" in (await resp.json())["errors"]["json"]
    assert (await twin.delete(f"/api/v1/products/{product['id']}")).status == 409
    assert (await twin.delete(f"/api/v1/devices/{device['id']}")).status == 204
    resp = await twin.get("/dt/open/v1/instance", params={"ids": str(device["instance_id"])})
    assert resp.status == 404
    assert (await twin.delete(f"/api/v1/products/{product['id']}")).status == 204


async def test_device_validation(twin: Client) -> None:
    """Device fields are checked and named: water kind on an electricity meter, unknown product,
    a gateway of another project."""
    project, other = await make_project(twin), await make_project(twin)
    product = await make_product(twin)
    resp = await twin.post("/api/v1/devices/", json={
        "product_key": product["product_key"], "device_key": unique("d"), "name": "x",
        "project_id": project, "device_type": 2, "water_meter_kind": "tap", "multiplier": "-1"})
    assert resp.status == 422
    errors = (await resp.json())["errors"]["json"]
    assert "multiplier" in errors
    resp = await twin.post("/api/v1/devices/", json={
        "product_key": unique("nope"), "device_key": unique("d"), "name": "x", "project_id": project})
    assert resp.status == 422 and "product_key" in (await resp.json())["errors"]["json"]
    gateway = await make_device(twin, product_key=product["product_key"], project_id=other)
    resp = await twin.post("/api/v1/devices/", json={
        "product_key": product["product_key"], "device_key": unique("d"), "name": "x",
        "project_id": project, "gateway_id": gateway["id"]})
    assert resp.status == 422 and "gateway_id" in (await resp.json())["errors"]["json"]
