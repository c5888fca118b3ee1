"""POST /api/v1/io/sites_csv: a good file is imported whole; a bad file names every bad row and
imports nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.integration.twin_registry.conftest import make_product, make_project, unique

Client = TestClient[Any, Any]
HEADER = ("site,latitude,longitude,building,storey,zone,space,resident_name,resident_cellphone,"
          "product_key,device_key,device_name,device_type,water_meter_kind,multiplier,register_max,"
          "gateway_product_key,gateway_device_key")


async def _count(twin: Client, resource: str, project: int) -> int:
    resp = await twin.get(f"/api/v1/{resource}/", params={"project_id": str(project)})
    import json
    return int(json.loads(resp.headers["X-Pagination"])["total"])


async def test_good_file_imports_everything_in_one_go(twin: Client) -> None:
    """Sites, buildings, storeys, zones, spaces, residents and devices (with a gateway from the same
    file) are created; devices get instances; the billing view shows the address and residents."""
    project = await make_project(twin)
    meter = await make_product(twin)
    gateway = await make_product(twin, is_gateway=True)
    gw, m1, m2 = unique("gw"), unique("m"), unique("m")
    pk, gpk = meter["product_key"], gateway["product_key"]
    text = "\n".join([
        HEADER,
        f"一期,31.2,121.5,1栋,1F,北区,101,测试住户甲,10000000001,{pk},{m1},101水表,1,tap,1,99999,{gpk},{gw}",
        f"一期,,,1栋,1F,北区,101,测试住户乙,10000000002,{pk},{m2},101电表,2,,2.5,,{gpk},{gw}",
        f"一期,,,1栋,2F,,201,,,{gpk},{gw},网关,,,,,,",
        "二期,,,,,,,,,,,,,,,,,",
    ]) + "\n"
    resp = await twin.post(f"/api/v1/io/sites_csv?project_id={project}", data=text.encode(),
                           headers={"Content-Type": "text/csv"})
    assert resp.status == 201, await resp.text()
    assert await resp.json() == {"rows": 4, "sites": 2, "buildings": 1, "storeys": 2, "zones": 1,
                                 "spaces": 2, "residents": 2, "devices": 3}
    devices = await (await twin.get("/api/v1/devices/", params={"project_id": str(project)})).json()
    by_key = {d["device_key"]: d for d in devices}
    assert by_key[m1]["gateway_id"] == by_key[gw]["id"] == by_key[m2]["gateway_id"]
    assert all(d["instance_id"] for d in devices)
    assert by_key[m2]["multiplier"] == "2.5" and by_key[m1]["register_max"] == "99999"

    billing = await (await twin.get("/internal/v1/billing/devices",
                                    params={"project_id": str(project), "device_type": "1"})).json()
    assert billing["next_after_id"] is None
    assert billing["devices"] == [{
        "id": by_key[m1]["id"], "product_key": pk, "device_key": m1, "name": "101水表",
        "device_type": 1, "water_meter_kind": "tap", "multiplier": "1", "register_max": "99999",
        "billing_register": "total", "house_address": ["一期", "1栋", "1F", "北区", "101"],
        "residents": [{"name": "测试住户甲", "cellphone": "10000000001"},
                      {"name": "测试住户乙", "cellphone": "10000000002"}],
        "lifecycle": []}]  # no meter events recorded (issue #11's lifecycle, an added field)

    # Re-importing the places alone (multipart upload) finds them instead of duplicating them.
    form = aiohttp.FormData()
    form.add_field("project_id", str(project))
    form.add_field("file", "site,building\n一期,1栋\n一期,2栋\n".encode(), filename="sites.csv",
                   content_type="text/csv")
    resp = await twin.post("/api/v1/io/sites_csv", data=form)
    assert resp.status == 201, await resp.text()
    assert await _count(twin, "sites", project) == 2
    assert await _count(twin, "buildings", project) == 2


async def test_bad_file_names_every_bad_row_and_imports_nothing(twin: Client) -> None:
    """One bad row rejects the whole file: 422 with every bad row and column named."""
    project = await make_project(twin)
    meter = await make_product(twin)
    pk = meter["product_key"]
    taken = unique("m")
    resp = await twin.post("/api/v1/devices/", json={"product_key": pk, "device_key": taken,
                                                     "name": "x", "project_id": project})
    assert resp.status == 201
    good = unique("m")
    text = "\n".join([
        HEADER,
        f"S,,,B,F,,R1,,,{pk},{good},ok,1,tap,,,,",           # line 2: fine
        f"S,,,,F,,R2,,,{pk},{unique('m')},x,1,,,,,",          # line 3: storey without building
        f"S,,,B,F,,R3,,,{pk},{unique('m')},x,3,,,,,",         # line 4: device_type 3
        f"S,,,B,F,,R4,,,{unique('nope')},{unique('m')},x,1,,,,,",  # line 5: unknown product
        f"S,,,B,F,,R5,,,{pk},{taken},x,1,,,,,",               # line 6: device exists
        f"S,,,B,F,,R6,,,{pk},{good},x,1,,,,,",                # line 7: repeats line 2
        f"S,,,B,F,,R7,,,{pk},{unique('m')},x,1,,,,{pk},{unique('gw')}",  # line 8: unknown gateway
        f"S,200,,B,F,,R8,,,{pk},{unique('m')},x,1,,-1,,,",    # line 9: latitude, multiplier
    ]) + "\n"
    resp = await twin.post(f"/api/v1/io/sites_csv?project_id={project}", data=text.encode(),
                           headers={"Content-Type": "text/csv"})
    assert resp.status == 422
    body = await resp.json()
    errors = body["errors"]["csv"]
    assert set(errors) == {"3._row", "4.device_type", "7.device_key", "9.latitude", "9.multiplier"}
    assert "nothing was imported" in body["message"]
    # Row checks pass: the database checks run and name their rows too.
    fixed = "\n".join(line for n, line in enumerate(text.splitlines(), 1) if n not in (3, 4, 7, 9))
    resp = await twin.post(f"/api/v1/io/sites_csv?project_id={project}", data=fixed.encode(),
                           headers={"Content-Type": "text/csv"})
    assert resp.status == 422
    errors = (await resp.json())["errors"]["csv"]
    assert set(errors) == {"3.product_key", "4.device_key", "5.gateway_device_key"}
    assert await _count(twin, "sites", project) == 0
    assert await _count(twin, "devices", project) == 1


async def test_upload_needs_a_project_and_known_columns(twin: Client) -> None:
    """Missing project, unknown columns and an empty file are named."""
    resp = await twin.post("/api/v1/io/sites_csv", data=b"site\nA\n", headers={"Content-Type": "text/csv"})
    assert resp.status == 422 and "project_id" in (await resp.json())["errors"]["query"]
    project = await make_project(twin)
    resp = await twin.post(f"/api/v1/io/sites_csv?project_id={project}", data=b"site,colour\nA,red\n",
                           headers={"Content-Type": "text/csv"})
    assert resp.status == 422 and "1._header" in (await resp.json())["errors"]["csv"]
    resp = await twin.post(f"/api/v1/io/sites_csv?project_id={project}", data=b"",
                           headers={"Content-Type": "text/csv"})
    assert resp.status == 422


async def test_a_nul_in_the_file_is_named_by_line(twin: Client) -> None:
    """PostgreSQL text cannot hold NUL and Python's csv passes it on: refused, naming the line."""
    project = await make_project(twin)
    resp = await twin.post(f"/api/v1/io/sites_csv?project_id={project}", data=b"site\nA\nSite\x00B\n",
                           headers={"Content-Type": "text/csv"})
    assert resp.status == 422
    assert (await resp.json())["errors"]["files"] == {"file": ["line 3 contains a NUL character (U+0000)"]}
