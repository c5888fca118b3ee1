"""A small demo project for `make run`, created through the twin's HTTP API only, idempotently.

The residents are made up (never the seed documents' example people). Device secrets are derived
from the device key so a re-run can hand them out again: demo only, never for a real deployment.
"""

from __future__ import annotations

from typing import Any

import aiohttp

PROJECT = "twinbill demo"
WATER, ELECTRICITY, GATEWAY = "demo_water_meter", "demo_electricity_meter", "demo_gateway"
READING = {"type": "struct", "fields": {"value": {"type": "double"}, "quality": {"type": "int"}}}
PRODUCTS: list[dict[str, Any]] = [
    # Order matters on a fresh database: the first meter is instance 2 (after its gateway), its
    # attribute 1 the Stream `total` and 2, 3 settable doubles (State), so seed 002's own examples
    # (attribute/1 queries, PATCH /instance/2 with ids 2 and 3 = "12.20", "12.31") work as sent.
    {"product_key": WATER, "name": "演示水表", "billing_register": "total", "measurepoints": [
        {"identifier": "total", "name": "累计用水量", "unit": "m3", "data_type": {"type": "double"}},
        {"identifier": "flow_limit", "name": "流量上限", "unit": "m3/h", "data_type": {"type": "double"},
         "settable": True},
        {"identifier": "leak_threshold", "name": "漏水报警阈值", "unit": "m3/h",
         "data_type": {"type": "double"}, "settable": True},
        {"identifier": "flow", "name": "瞬时流量", "unit": "m3/h", "data_type": {"type": "double"}},
        {"identifier": "reading", "name": "读数与质量", "data_type": READING},
        {"identifier": "valve", "name": "阀门", "data_type": {"type": "bool"}, "settable": True}]},
    {"product_key": ELECTRICITY, "name": "演示电表", "billing_register": "total", "measurepoints": [
        {"identifier": "total", "name": "累计电量", "unit": "kWh", "data_type": {"type": "double"}},
        {"identifier": "power", "name": "有功功率", "unit": "kW", "data_type": {"type": "double"}},
        {"identifier": "reading", "name": "读数与质量", "data_type": READING},
        {"identifier": "relay", "name": "继电器", "data_type": {"type": "bool"}, "settable": True}]},
    {"product_key": GATEWAY, "name": "演示网关", "is_gateway": True, "measurepoints": []},
]
# (storey, space, zone, residents) - made-up people and numbers
SPACES = [
    ("1F", "101", "东区", [("示例住户甲", "100-0000-0101")]),
    ("1F", "102", "东区", [("示例住户乙", "100-0000-0102"), ("示例住户丙", "100-0000-0103")]),
    ("2F", "201", "西区", [("示例住户丁", "100-0000-0201")]),
    ("2F", "202", "西区", [("示例住户戊", "100-0000-0202")]),
    ("2F", "203", "西区", []),
]
# per gateway: (product, device_type, water_meter_kind)
METERS = [(WATER, 1, "tap"), (WATER, 1, "purified"), (ELECTRICITY, 2, None), (WATER, 1, "tap"),
          (ELECTRICITY, 2, None)]


# The demo meters consume a day's worth every two minutes (about 12 m3/h on average, at most
# about 40 m3/h at the evening peak), so a leak is a flow above 50 m3/h that lasts six minutes.
DEMO_RULES: list[dict[str, Any]] = [
    {"kind": "offline", "name": "meter offline", "level": "ERROR", "params": {"minutes": 2}},
    {"kind": "leak", "name": "water leak", "level": "ERROR", "device_type": 1,
     "params": {"measurepoint": "total", "flow_above": 50, "hours": 0.1}},
    {"kind": "register", "name": "register backwards", "level": "WARNING", "params": {"measurepoint": "total"}},
]


def demo_secret(device_key: str) -> str:
    """The demo's device secret (derived, so a re-run finds it again)."""
    return f"demo-secret-{device_key}"


class DemoError(RuntimeError):
    """The twin service refused a demo request."""


class _Api:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base = base_url.rstrip("/") + "/api/v1"

    async def find(self, resource: str, **filters: Any) -> dict[str, Any] | None:
        params = {k: str(v) for k, v in filters.items()} | {"page_size": "1000"}
        async with self.session.get(f"{self.base}/{resource}/", params=params) as resp:
            if resp.status != 200:
                raise DemoError(f"GET {resource}: {resp.status} {await resp.text()}")
            rows: list[dict[str, Any]] = await resp.json()
        for row in rows:
            if all(str(row.get(k)) == str(v) for k, v in filters.items()):
                return row
        return None

    async def ensure(self, resource: str, body: dict[str, Any], **keys: Any) -> dict[str, Any]:
        found = await self.find(resource, **keys)
        if found is not None:
            return found
        async with self.session.post(f"{self.base}/{resource}/", json=body) as resp:
            if resp.status != 201:
                raise DemoError(f"POST {resource}: {resp.status} {await resp.text()}")
            created: dict[str, Any] = await resp.json()
            return created


async def seed_demo(base_url: str) -> dict[str, Any]:
    """Create (or find) the demo project, products, places, residents, 2 gateways x 5 meters.

    Returns {"project_id", "gateways": [{"product_key", "device_key", "secret", "sub_devices":
    [{"product_key", "device_key", "secret", "device_type", "water_meter_kind", "register"}]}]}.
    """
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = _Api(session, base_url)
        project = await api.ensure("projects", {"name": PROJECT, "timezone": "Asia/Shanghai",
                                                "description": "演示项目"}, name=PROJECT)
        pid = project["id"]
        for product in PRODUCTS:
            await api.ensure("products", product, product_key=product["product_key"])
        site = await api.ensure("sites", {"project_id": pid, "name": "演示小区", "latitude": 31.23,
                                          "longitude": 121.47}, project_id=pid, name="演示小区")
        building = await api.ensure("buildings", {"site_id": site["id"], "name": "1栋"},
                                    site_id=site["id"], name="1栋")
        spaces: list[int] = []
        for storey_name, space_name, zone_name, residents in SPACES:
            storey = await api.ensure("storeys", {"building_id": building["id"], "name": storey_name},
                                      building_id=building["id"], name=storey_name)
            zone = await api.ensure("zones", {"project_id": pid, "name": zone_name},
                                    project_id=pid, name=zone_name)
            space = await api.ensure("spaces", {"storey_id": storey["id"], "name": space_name,
                                                "zone_id": zone["id"]},
                                     storey_id=storey["id"], name=space_name)
            spaces.append(space["id"])
            for name, phone in residents:
                await api.ensure("residents", {"space_id": space["id"], "name": name, "cellphone": phone},
                                 space_id=space["id"], name=name)
        gateways: list[dict[str, Any]] = []
        for g in (1, 2):
            gw_key = f"demo-gw-{g:02d}"
            gateway = await api.ensure("devices", {
                "product_key": GATEWAY, "device_key": gw_key, "name": f"演示网关{g}",
                "project_id": pid, "secret": demo_secret(gw_key)},
                product_key=GATEWAY, device_key=gw_key)
            subs = []
            for n, (product_key, device_type, kind) in enumerate(METERS, 1):
                key = f"{gw_key}-m{n}"
                await api.ensure("devices", {
                    "product_key": product_key, "device_key": key, "name": f"演示表{g}-{n}",
                    "project_id": pid, "secret": demo_secret(key), "device_type": device_type,
                    "water_meter_kind": kind, "gateway_id": gateway["id"],
                    "space_id": spaces[(n - 1) % len(spaces)], "multiplier": "1",
                    "register_max": "99999999"}, product_key=product_key, device_key=key)
                subs.append({"product_key": product_key, "device_key": key, "secret": demo_secret(key),
                             "device_type": device_type, "water_meter_kind": kind, "register": "total"})
            gateways.append({"product_key": GATEWAY, "device_key": gw_key, "secret": demo_secret(gw_key),
                             "sub_devices": subs})
        # The simulator plays two faults so the alarm rules have something to say (issue 13): a
        # leaking tap-water meter and an electricity meter that dies after two minutes.
        gateways[0]["sub_devices"][3].update(fault="leak", leak_per_hour=100)
        gateways[1]["sub_devices"][4].update(fault="dead", dead_after_seconds=120)
        for rule in DEMO_RULES:
            await api.ensure("alarm_rules", {"project_id": pid, **rule}, project_id=pid, name=rule["name"])
        return {"project_id": pid, "gateways": gateways}


async def seed_demo_checks(base_url: str, *, project_id: int) -> None:
    """`make run` only (the e2e tests' platform leaves it out: their event counts are the alarm
    rules'): the demo meters' registers as BEMServer series and the checks enabled, idempotently."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await _enable_checks(session, base_url.rstrip("/"), project_id)


async def _json(session: aiohttp.ClientSession, method: str, url: str, *, params: dict[str, Any] | None = None,
                body: Any = None) -> Any:
    async with session.request(method, url, params={k: str(v) for k, v in (params or {}).items()},
                               json=body) as resp:
        if resp.status not in (200, 201):
            raise DemoError(f"{method} {url}: {resp.status} {await resp.text()}")
        return await resp.json()


async def _enable_checks(session: aiohttp.ClientSession, base: str, pid: int) -> None:
    """Each demo meter's register as a BEMServer series of a "Meters" scope, and BEMServer's
    missing-data and outlier checks enabled for the campaign (issue 13): a meter that stopped
    reporting is named in a "Data missing" event by the next check (`make run` checks every
    hour: TWIN_CHECKS_PERIOD=hour)."""
    bem = f"{base}/bemserver"
    scopes = await _json(session, "GET", f"{bem}/campaign_scopes/", params={"campaign_id": pid})
    scope = next((s for s in scopes if s["name"] == "Meters"), None) or await _json(
        session, "POST", f"{bem}/campaign_scopes/", body={"name": "Meters", "campaign_id": pid,
                                                           "description": "the demo meters' registers"})
    devices = await _json(session, "GET", f"{base}/api/v1/devices/", params={"project_id": pid, "page_size": 1000})
    meters = [d for d in devices if d["device_type"] is not None]
    detail = await _json(session, "GET", f"{base}/dt/open/v1/instance",
                         params={"ids": ",".join(str(d["instance_id"]) for d in meters)})
    totals = {item["id"]: a["id"] for item in detail["data"] for a in item["attr"] if a["name"] == "total"}
    present = {s["attribute_id"] for s in await _json(session, "GET", f"{bem}/timeseries/", params={
        "campaign_id": pid, "campaign_scope_id": scope["id"], "page_size": 100}) if s.get("attribute_id")}
    for meter in meters:
        attribute = totals.get(meter["instance_id"])
        if attribute is not None and attribute not in present:
            await _json(session, "POST", f"{bem}/timeseries/", body={
                "name": f"{meter['device_key']} total", "campaign_id": pid, "campaign_scope_id": scope["id"],
                "attribute_id": attribute})
    for service in ("st_check_missings_by_campaigns", "st_check_outliers_by_campaigns"):
        if not await _json(session, "GET", f"{bem}/{service}/", params={"campaign_id": pid}):
            await _json(session, "POST", f"{bem}/{service}/", body={"campaign_id": pid})
