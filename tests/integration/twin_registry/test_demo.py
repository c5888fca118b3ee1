"""The `make run` demo seeding: through the HTTP API, idempotent, made-up residents."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from twinbill_twin.demo import seed_demo, seed_demo_checks

Client = TestClient[Any, Any]


async def test_seed_demo_is_idempotent(twin: Client) -> None:
    """A second run finds what the first created and returns the same keys and secrets."""
    base = str(twin.make_url("/"))
    first = await seed_demo(base)
    second = await seed_demo(base)
    assert first == second
    assert len(first["gateways"]) == 2
    subs = [s for g in first["gateways"] for s in g["sub_devices"]]
    assert len(subs) == 10 and {s["device_type"] for s in subs} == {1, 2}
    assert {s["water_meter_kind"] for s in subs} == {"tap", "purified", None}
    project = await (await twin.get(f"/api/v1/projects/{first['project_id']}")).json()
    assert project["timezone"] == "Asia/Shanghai"
    devices = await (await twin.get("/api/v1/devices/", params={
        "project_id": str(first["project_id"]), "page_size": "100"})).json()
    assert len(devices) == 12
    billing = await (await twin.get("/internal/v1/billing/devices", params={
        "project_id": str(first["project_id"])})).json()
    meters = [d for d in billing["devices"] if d["device_type"] is not None]
    assert len(meters) == 10
    assert all(d["house_address"][:2] == ["演示小区", "1栋"] and d["billing_register"] == "total"
               for d in meters)
    assert any(d["residents"] for d in meters)
    # the alarm rules the simulator's leaking and dead meters trip (issue 13), seeded once
    rules = await (await twin.get("/api/v1/alarm_rules/", params={"project_id": str(first["project_id"])})).json()
    assert sorted(r["kind"] for r in rules) == ["leak", "offline", "register"]
    faults = {s["device_key"]: s["fault"] for s in subs if "fault" in s}
    assert faults == {"demo-gw-01-m4": "leak", "demo-gw-02-m5": "dead"}
    # BEMServer's checks enabled for the demo campaign over its meters' registers (make run), once
    pid = first["project_id"]
    for _ in range(2):
        await seed_demo_checks(base, project_id=pid)
    series = await (await twin.get("/bemserver/timeseries/", params={"campaign_id": str(pid)})).json()
    assert len(series) == 10 and all(s["attribute_id"] for s in series)
    for service in ("st_check_missings_by_campaigns", "st_check_outliers_by_campaigns"):
        enabled = await (await twin.get(f"/bemserver/{service}/", params={"campaign_id": str(pid)})).json()
        assert [(e["campaign_id"], e["is_enabled"]) for e in enabled] == [(pid, True)]


async def test_the_first_demo_meter_takes_seed_002s_control_example(twin: Client) -> None:
    """Its attributes after `total` are settable doubles, so seed 002's PATCH body (two numbers
    as text) is accepted for them; on a fresh database they are instance 2's attributes 2 and 3."""
    demo = await seed_demo(str(twin.make_url("/")))
    first = demo["gateways"][0]["sub_devices"][0]
    devices = await (await twin.get("/api/v1/devices/", params={
        "project_id": str(demo["project_id"]), "page_size": "100"})).json()
    [meter] = [d for d in devices if d["device_key"] == first["device_key"]]
    detail = await (await twin.get("/dt/open/v1/instance", params={"ids": str(meter["instance_id"])})).json()
    attrs = detail["data"][0]["attr"]
    total, limit, threshold = attrs[0], attrs[1], attrs[2]
    assert (total["name"], total["attrtype"]) == ("total", "Stream")
    assert [(a["attrtype"], a["datatype"]) for a in (limit, threshold)] == [("State", "Number")] * 2
    assert (limit["id"], threshold["id"]) == (total["id"] + 1, total["id"] + 2)
    resp = await twin.patch(f"/dt/open/v1/instance/{meter['instance_id']}", json=[
        {"id": limit["id"], "expectvalue": "12.20"}, {"id": threshold["id"], "expectvalue": "12.31"}])
    assert resp.status == 200
    assert await resp.json() == {"code": 200, "message": "success", "data": {}}
