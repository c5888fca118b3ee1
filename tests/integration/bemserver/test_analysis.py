"""BEMServer's analysis through the real client: completeness of series with a known gap against
counts worked out here, and the energy consumption breakdown of a site and a building, where a
meter's billing register counts what its bills count (rollover, multiplier, meter exchange)
and a free consumption series is summed as BEMServer sums it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bemserver_api_client.enums import BucketWidthUnit, StructuralElement
from bemserver_api_client.exceptions import BEMServerAPIAuthorizationError, BEMServerAPIValidationError

from tests.integration.bemserver.conftest import Stack, call, raw, unique
from tests.integration.twin_registry.conftest import make_device, make_product
from twinbill_twin.keys import POOL

RAW, CLEAN = 1, 2
PARIS = ZoneInfo("Europe/Paris")
DAY0 = datetime(2026, 1, 5, tzinfo=PARIS)
ELECTRICITY_POINTS = [{"identifier": "total", "name": "电量", "unit": "kWh", "data_type": {"type": "double"}}]


async def _campaign(admin: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    campaign = (await call(admin.campaigns.create, {"name": unique("analysis"), "timezone": "Europe/Paris"})).data
    scope = (await call(admin.campaign_scopes.create, {"name": "all", "campaign_id": campaign["id"]})).data
    return campaign, scope


async def _series(admin: Any, campaign: dict[str, Any], scope: dict[str, Any], name: str, **extra: Any) -> Any:
    body = {"name": name, "campaign_id": campaign["id"], "campaign_scope_id": scope["id"], **extra}
    return (await call(admin.timeseries.create, body)).data


def _iso(moment: datetime) -> str:
    return moment.isoformat()


async def test_completeness_counts_a_known_gap_per_bucket(bem: Stack, admin: Any) -> None:
    """A 15-minute series missing 10:00-12:00 (local) of one day: hourly buckets count 4 except the
    two empty hours, the expected count is 4 per hour from the Interval property (900 s), the
    ratio count/expected; a series without Interval gets it inferred from its densest bucket."""
    campaign, scope = await _campaign(admin)
    meter = await _series(admin, campaign, scope, "15-min meter", unit_symbol="kWh")
    sparse = await _series(admin, campaign, scope, "hourly, no interval", unit_symbol="°C")
    interval = next(p for p in (await call(admin.timeseries_properties.getall)).data if p["name"] == "Interval")
    assert interval["unit_symbol"] == "s" and interval["value_type"] == "float"
    await call(admin.timeseries_property_data.create,
               {"timeseries_id": meter["id"], "property_id": interval["id"], "value": "900"})
    points: dict[str, float] = {}
    for quarter in range(96):
        moment = DAY0 + timedelta(minutes=15 * quarter)
        if not 10 <= moment.hour < 12:
            points[_iso(moment)] = float(quarter)
    hourly = {_iso(DAY0 + timedelta(hours=h)): 1.0 for h in range(0, 24, 2)}  # every other hour
    await call(admin.timeseries_data.upload, RAW, {str(meter["id"]): points, str(sparse["id"]): hourly})

    got = (await call(admin.analysis.get_completeness, _iso(DAY0), _iso(DAY0 + timedelta(days=1)),
                      [meter["id"], sparse["id"]], RAW, 1, BucketWidthUnit.hour, timezone="Europe/Paris")).data
    assert got["timestamps"] == [_iso(DAY0 + timedelta(hours=h)) for h in range(24)]
    expected_counts = [0 if 10 <= h < 12 else 4 for h in range(24)]
    one = got["timeseries"][str(meter["id"])]
    assert one["name"] == "15-min meter"
    assert one["count"] == expected_counts
    assert one["expected_count"] == [4.0] * 24
    assert one["ratio"] == [c / 4 for c in expected_counts]
    assert one["total_count"] == 88 and one["avg_count"] == pytest.approx(88 / 24)
    assert one["avg_ratio"] == pytest.approx(88 / 96)
    assert one["interval"] == 900 and one["undefined_interval"] is False
    other = got["timeseries"][str(sparse["id"])]
    assert other["count"] == [1 if h % 2 == 0 else 0 for h in range(24)]
    assert other["interval"] == 3600 and other["undefined_interval"] is True
    assert other["expected_count"] == [1.0] * 24 and other["avg_ratio"] == pytest.approx(0.5)

    daily = (await call(admin.analysis.get_completeness, _iso(DAY0), _iso(DAY0 + timedelta(days=2)),
                        [meter["id"]], RAW, 1, BucketWidthUnit.day, timezone="Europe/Paris")).data
    day = daily["timeseries"][str(meter["id"])]
    assert daily["timestamps"] == [_iso(DAY0), _iso(DAY0 + timedelta(days=1))]
    assert day["count"] == [88, 0] and day["expected_count"] == [96.0, 96.0]
    assert day["ratio"] == [88 / 96, 0.0]


async def test_completeness_refuses_bad_input_naming_it(bem: Stack, admin: Any) -> None:
    """Unknown series, a bad bucket unit and a calendar unit with a multiple are 422s naming the field."""
    with pytest.raises(BEMServerAPIValidationError):
        await call(admin.analysis.get_completeness, _iso(DAY0), _iso(DAY0 + timedelta(days=1)), [2_000_000_000],
                   RAW, 1, BucketWidthUnit.hour)
    status, body, _ = await raw(bem, "GET", "/analysis/completeness", params={
        "start_time": _iso(DAY0), "end_time": _iso(DAY0), "timeseries": "1", "data_state": "1",
        "bucket_width_unit": "day", "bucket_width_value": "2"})
    assert status == 422 and "bucket_width_value" in body["errors"]["query"]


async def _meter(bem: Stack, campaign: dict[str, Any], *, points: list[dict[str, Any]] | None = None,
                 **extra: Any) -> tuple[dict[str, Any], int]:
    product = await make_product(bem.twin, points=points)
    device = await make_device(bem.twin, product_key=product["product_key"], project_id=campaign["id"], **extra)
    assert bem.twin.app is not None
    attribute = await bem.twin.app[POOL].fetchval(
        "SELECT a.id FROM attributes a JOIN instances i ON i.id = a.instance_id "
        "WHERE i.device_id = $1 AND a.measurepoint = 'total'", device["id"])
    return device, int(attribute)


async def test_breakdown_counts_what_the_meters_bills_count(bem: Stack, admin: Any) -> None:
    """Daily breakdown of a building over three days: a water register that rolls over 99,999 ->
    0 counts 1.5 m3 an hour throughout (in m3 beside the energies); an electricity register with
    multiplier 2 exchanged at 12:30 on day two for a new meter starting at 0 with multiplier 3
    counts each meter's advance times its own multiplier (kWh, and Wh when asked); a free
    heating series is summed from its Clean data. Every figure is worked out here from the readings."""
    campaign, scope = await _campaign(admin)
    site = (await call(admin.sites.create, {"name": unique("site"), "campaign_id": campaign["id"]})).data
    building = (await call(admin.buildings.create, {"name": unique("b"), "site_id": site["id"]})).data
    _water, water_attr = await _meter(bem, campaign, register_max="100000")
    power, power_attr = await _meter(bem, campaign, points=ELECTRICITY_POINTS, multiplier="2")
    water_ts = await _series(admin, campaign, scope, "water register", attribute_id=water_attr)
    power_ts = await _series(admin, campaign, scope, "power register", attribute_id=power_attr)
    heat_ts = await _series(admin, campaign, scope, "heating", unit_symbol="Wh")
    assert water_ts["unit_symbol"] == "m3" and power_ts["unit_symbol"] == "kWh"

    hours = [DAY0 + timedelta(hours=h) for h in range(3 * 24 + 1)]
    water_readings = {_iso(t): float((99_950 + 1.5 * i) % 100_000) for i, t in enumerate(hours)}
    exchange_at = DAY0 + timedelta(days=1, hours=12, minutes=30)
    old = {_iso(t): 1000.0 + 10 * i for i, t in enumerate(hours) if t < exchange_at}
    new = {_iso(t): 10 * (t - exchange_at).total_seconds() / 3600 for t in hours if t > exchange_at}
    await call(admin.timeseries_data.upload, RAW, {str(water_ts["id"]): water_readings, str(power_ts["id"]): old})
    final = 1000.0 + 10 * 36.5  # the old register at 12:30 on day two
    response = await bem.twin.post(f"/api/v1/devices/{power['id']}/lifecycle/", json={
        "kind": "exchange", "at": _iso(exchange_at), "final_reading": str(final), "initial_reading": "0",
        "multiplier": "3"})
    assert response.status == 201, await response.text()
    await call(admin.timeseries_data.upload, RAW, {str(power_ts["id"]): new})
    heat = {_iso(DAY0 + timedelta(hours=h)): 250.0 for h in range(0, 72, 6)}  # 4 a day
    await call(admin.timeseries_data.upload, CLEAN, {str(heat_ts["id"]): heat})
    # Raw points that are not the Clean ones: Clean data wins where the series has any
    await call(admin.timeseries_data.upload, RAW, {str(heat_ts["id"]): {k: 9999.0 for k in heat}})

    energies = {e["name"]: e["id"] for e in (await call(admin.energies.getall)).data}
    uses = {u["name"]: u["id"] for u in (await call(admin.energy_end_uses.getall)).data}
    assert list(energies)[:3] == ["all", "electricity", "natural gas"] and "water" in energies
    assert "appliances" in uses
    for ts, energy, use in ((water_ts, "water", "all"), (power_ts, "electricity", "appliances"),
                            (heat_ts, "heating network", "heating")):
        link = (await call(admin.energy_cons_ts_by_buildings.create, {
            "building_id": building["id"], "energy_id": energies[energy], "end_use_id": uses[use],
            "timeseries_id": ts["id"]})).data
        assert link["timeseries"]["name"] == ts["name"]

    # worked out from the readings: water 24 h x 1.5 m3 a day (the wrap on day one counts 1.5 too)
    water_daily = [36.0, 36.0, 36.0]
    # electricity: day one 24 h x 10 x 2; day two 12.5 h x 10 x 2 on the old meter and
    # 11.5 h x 10 x 3 on the new one; day three 24 h x 10 x 3
    power_daily = [480.0, 12.5 * 10 * 2 + 11.5 * 10 * 3, 720.0]
    heat_daily = [1.0, 1.0, 1.0]  # 4 x 250 Wh = 1 kWh
    end = DAY0 + timedelta(days=3)
    got = (await call(admin.analysis.get_energy_consumption_breakdown, StructuralElement.building, building["id"],
                      _iso(DAY0), _iso(end), 1, BucketWidthUnit.day, timezone="Europe/Paris", unit="kWh")).data
    assert got["timestamps"] == [_iso(DAY0 + timedelta(days=d)) for d in range(3)]
    assert got["energy"]["water"]["all"] == pytest.approx(water_daily)
    assert got["energy"]["electricity"]["appliances"] == pytest.approx(power_daily)
    assert got["energy"]["heating network"]["heating"] == pytest.approx(heat_daily)
    in_wh = (await call(admin.analysis.get_energy_consumption_breakdown, StructuralElement.building,
                        building["id"], _iso(DAY0), _iso(end), 1, BucketWidthUnit.day,
                        timezone="Europe/Paris", unit="Wh")).data
    assert in_wh["energy"]["electricity"]["appliances"] == pytest.approx([v * 1000 for v in power_daily])
    assert in_wh["energy"]["water"]["all"] == pytest.approx(water_daily)  # a volume stays in m3

    # half-hour buckets add up to the same days
    halves = (await call(admin.analysis.get_energy_consumption_breakdown, StructuralElement.building,
                         building["id"], _iso(DAY0), _iso(end), 30, BucketWidthUnit.minute,
                         timezone="Europe/Paris", unit="kWh")).data
    assert len(halves["timestamps"]) == 3 * 48
    for name, use, daily in (("water", "all", water_daily), ("electricity", "appliances", power_daily)):
        values = halves["energy"][name][use]
        assert [sum(values[d * 48:(d + 1) * 48]) for d in range(3)] == pytest.approx(daily)
    # an hour's reading closes the half hour before it, as it closes a bill
    assert halves["energy"]["water"]["all"][:3] == pytest.approx([0.0, 1.5, 0.0])

    # the whole period in one bucket is what one bill over it counts
    total = (await call(admin.analysis.get_energy_consumption_breakdown, StructuralElement.building,
                        building["id"], _iso(DAY0), _iso(end), 1, BucketWidthUnit.month,
                        timezone="Europe/Paris", unit="kWh")).data
    assert total["timestamps"] == [_iso(datetime(2026, 1, 1, tzinfo=PARIS))]
    assert total["energy"]["electricity"]["appliances"] == pytest.approx([sum(power_daily)])
    assert total["energy"]["water"]["all"] == pytest.approx([sum(water_daily)])


async def test_site_breakdown_with_a_ratio_property_and_missing_elements(bem: Stack, admin: Any) -> None:
    """A site's breakdown divided by its area property; a site without the property is a 409
    naming it; an unknown site a 404; a production link is listed with its series."""
    campaign, scope = await _campaign(admin)
    site = (await call(admin.sites.create, {"name": unique("site"), "campaign_id": campaign["id"]})).data
    gas = await _series(admin, campaign, scope, "gas", unit_symbol="kWh")
    await call(admin.timeseries_data.upload, CLEAN, {str(gas["id"]): {_iso(DAY0): 50.0,
                                                                       _iso(DAY0 + timedelta(hours=1)): 30.0}})
    energies = {e["name"]: e["id"] for e in (await call(admin.energies.getall)).data}
    await call(admin.energy_cons_ts_by_sites.create, {"site_id": site["id"], "energy_id": energies["natural gas"],
                                                      "end_use_id": 2, "timeseries_id": gas["id"]})
    area = (await call(admin.structural_element_properties.create,
                       {"name": unique("area"), "value_type": "float", "unit_symbol": "m2"})).data
    status, body, _ = await raw(bem, "GET", f"/analysis/energy_consumption/site/{site['id']}", params={
        "start_time": _iso(DAY0), "end_time": _iso(DAY0 + timedelta(days=1)), "bucket_width_unit": "day",
        "timezone": "Europe/Paris", "unit": "kWh", "ratio_property": area["name"]})
    assert status == 409 and area["name"] in body["message"]
    site_area = (await call(admin.site_properties.create, {"structural_element_property_id": area["id"]})).data
    await call(admin.site_property_data.create, {"site_id": site["id"], "site_property_id": site_area["id"],
                                                 "value": "40"})
    got = (await call(admin.analysis.get_energy_consumption_breakdown, StructuralElement.site, site["id"],
                      _iso(DAY0), _iso(DAY0 + timedelta(days=1)), 1, BucketWidthUnit.day, timezone="Europe/Paris",
                      unit="kWh", ratio_property=area["name"])).data
    assert got["energy"] == {"natural gas": {"heating": [pytest.approx(80 / 40)]}}
    status, _, _ = await raw(bem, "GET", "/analysis/energy_consumption/site/2000000000", params={
        "start_time": _iso(DAY0), "end_time": _iso(DAY0 + timedelta(days=1)), "bucket_width_unit": "day"})
    assert status == 404
    techs = {t["name"]: t["id"] for t in (await call(admin.energy_prod_technologies.getall)).data}
    assert list(techs) == ["all", "PV panels", "wind turbines", "solar thermal collectors"]
    pv = await _series(admin, campaign, scope, "pv", unit_symbol="kWh")
    made = (await call(admin.energy_prod_ts_by_sites.create, {"site_id": site["id"], "energy_id": energies[
        "electricity"], "prod_tech_id": techs["PV panels"], "timeseries_id": pv["id"]})).data
    listed = (await call(admin.energy_prod_ts_by_sites.getall, site_id=site["id"])).data
    assert [(x["id"], x["timeseries"]["name"]) for x in listed] == [(made["id"], "pv")]


async def test_analysis_follows_campaign_access(bem: Stack, admin: Any) -> None:
    """A user given one campaign scope gets the completeness of its series, and 403 for another
    scope's series, for a site breakdown and degree days of a campaign they do not read."""
    campaign, scope = await _campaign(admin)
    other_scope = (await call(admin.campaign_scopes.create, {"name": "other", "campaign_id": campaign["id"]})).data
    readable = await _series(admin, campaign, scope, "readable")
    hidden = await _series(admin, campaign, other_scope, "hidden")
    site = (await call(admin.sites.create, {"name": unique("site"), "campaign_id": campaign["id"]})).data
    email = f"{unique('analyst')}@example.test"
    user = (await call(admin.users.create, {"name": "A", "email": email, "password": "analyst-pw"})).data
    group = (await call(admin.user_groups.create, {"name": unique("g")})).data
    await call(admin.user_by_user_groups.create, {"user_id": user["id"], "user_group_id": group["id"]})
    await call(admin.user_groups_by_campaign_scopes.create,
               {"user_group_id": group["id"], "campaign_scope_id": scope["id"]})
    reader = await call(bem.client, email, "analyst-pw")
    got = (await call(reader.analysis.get_completeness, _iso(DAY0), _iso(DAY0 + timedelta(days=1)),
                      [readable["id"]], RAW, 1, BucketWidthUnit.day, timezone="Europe/Paris")).data
    assert got["timeseries"][str(readable["id"])]["count"] == [0]
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.analysis.get_completeness, _iso(DAY0), _iso(DAY0 + timedelta(days=1)),
                   [hidden["id"]], RAW, 1, BucketWidthUnit.day)
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.analysis.get_energy_consumption_breakdown, StructuralElement.site, site["id"],
                   _iso(DAY0), _iso(DAY0 + timedelta(days=1)), 1, BucketWidthUnit.day)
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.sites.get_degree_days, site["id"], "2026-01-01", "2026-01-02")
