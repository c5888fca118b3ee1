"""Weather through the real BEMServer client: weather series linked to sites, degree days from
known outdoor temperatures checked against figures worked out here (hourly averages, daily
(min + max) / 2, heating and cooling, day / month / year, another unit), and downloading weather
from a provider: off by default and saying so, and against a local stand-in of the Oikolab API."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from bemserver_api_client.enums import DegreeDaysPeriod, DegreeDaysType
from bemserver_api_client.exceptions import BEMServerAPIConflictError
from pydantic import SecretStr

from tests.integration.bemserver.conftest import ADMIN, Stack, call, raw, unique
from twinbill_devstack.namespaces import delete_namespace
from twinbill_gateway.app import create_app as create_gateway
from twinbill_gateway.settings import GatewaySettings
from twinbill_twin.app import create_app as create_twin
from twinbill_twin.bemserver.weather import OikolabProvider, ProviderError
from twinbill_twin.settings import TwinSettings

RAW, CLEAN = 1, 2
PARIS = ZoneInfo("Europe/Paris")
PORTS = range(18400, 18500)  # this work's port range on the shared machine


def _hourly_temperatures() -> dict[datetime, list[float]]:
    """Local hour -> the values uploaded in it. 30 January: 2 + 0.5 h, one value an hour;
    31 January: nothing; 1 February: two values an hour (15 + 0.25 h and 1 more, averaging
    15.5 + 0.25 h); 2 February: 20 + 0.4 h."""
    out: dict[datetime, list[float]] = {}
    for h in range(24):
        out[datetime(2026, 1, 30, h, tzinfo=PARIS)] = [2 + 0.5 * h]
        out[datetime(2026, 2, 1, h, tzinfo=PARIS)] = [15 + 0.25 * h, 16 + 0.25 * h]
        out[datetime(2026, 2, 2, h, tzinfo=PARIS)] = [20 + 0.4 * h]
    return out


def _expected(kind: str, base: float) -> dict[str, float | None]:
    """Daily degree days worked out independently: each hour's mean, each day's (min + max) / 2."""
    days: dict[str, list[float]] = {}
    for hour, values in _hourly_temperatures().items():
        days.setdefault(hour.date().isoformat(), []).append(sum(values) / len(values))
    result: dict[str, float | None] = {}
    for day in ("2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"):
        if day not in days:
            result[day] = None
            continue
        mean = (min(days[day]) + max(days[day])) / 2
        result[day] = max(base - mean, 0) if kind == "heating" else max(mean - base, 0)
    return result


async def _site_with_temperature(admin: Any, *, unit: str = "°C") -> tuple[dict[str, Any], dict[str, Any]]:
    campaign = (await call(admin.campaigns.create, {"name": unique("weather"), "timezone": "Europe/Paris"})).data
    scope = (await call(admin.campaign_scopes.create, {"name": "all", "campaign_id": campaign["id"]})).data
    site = (await call(admin.sites.create, {"name": unique("site"), "campaign_id": campaign["id"],
                                            "latitude": 48.85, "longitude": 2.35})).data
    series = (await call(admin.timeseries.create, {"name": "outdoor", "unit_symbol": unit,
                                                   "campaign_id": campaign["id"],
                                                   "campaign_scope_id": scope["id"]})).data
    link = (await call(admin.weather_ts_by_sites.create, {"site_id": site["id"], "parameter": "AIR_TEMPERATURE",
                                                          "timeseries_id": series["id"], "forecast": False})).data
    assert link["parameter"] == "AIR_TEMPERATURE" and link["timeseries"]["name"] == "outdoor"
    return site, series


async def test_degree_days_from_known_temperatures(bem: Stack, admin: Any) -> None:
    """Heating and cooling degree days per day, month and year equal the figures worked out from
    the uploaded temperatures; a day without data is null and adds nothing to its month."""
    site, series = await _site_with_temperature(admin)
    points = {}
    for hour, values in _hourly_temperatures().items():
        for index, value in enumerate(values):
            points[(hour + timedelta(minutes=30 * index)).isoformat()] = value
    await call(admin.timeseries_data.upload, CLEAN, {str(series["id"]): points})
    start, end = "2026-01-30", "2026-02-03"

    def keys(days: list[str]) -> list[str]:
        return [datetime.fromisoformat(d).replace(tzinfo=PARIS).isoformat() for d in days]

    heating = _expected("heating", 18)
    got = (await call(admin.sites.get_degree_days, site["id"], start, end, period=DegreeDaysPeriod.day,
                      type=DegreeDaysType.heating, base=18)).data["degree_days"]
    assert list(got) == keys(list(heating))
    assert list(got.values()) == [pytest.approx(v) if v is not None else None for v in heating.values()]
    assert heating["2026-01-30"] == pytest.approx(18 - (2 + 13.5) / 2)
    monthly = (await call(admin.sites.get_degree_days, site["id"], start, end, period=DegreeDaysPeriod.month,
                          type=DegreeDaysType.heating, base=18)).data["degree_days"]
    assert monthly == {keys(["2026-01-01"])[0]: pytest.approx(heating["2026-01-30"]),
                       keys(["2026-02-01"])[0]: pytest.approx((heating["2026-02-01"] or 0) +
                                                              (heating["2026-02-02"] or 0))}
    yearly = (await call(admin.sites.get_degree_days, site["id"], start, end, period=DegreeDaysPeriod.year,
                         type=DegreeDaysType.heating, base=18)).data["degree_days"]
    assert yearly == {keys(["2026-01-01"])[0]: pytest.approx(sum(v for v in heating.values() if v is not None))}
    cooling = _expected("cooling", 21)
    got_cooling = (await call(admin.sites.get_degree_days, site["id"], start, end, period=DegreeDaysPeriod.day,
                              type=DegreeDaysType.cooling, base=21)).data["degree_days"]
    assert list(got_cooling.values()) == [pytest.approx(v) if v is not None else None for v in cooling.values()]
    assert cooling["2026-02-02"] == pytest.approx((20 + 29.2) / 2 - 21)
    # a series fed only Raw data (MQTT points, uploads) is read as it came: the same degree days
    raw_site, raw_series = await _site_with_temperature(admin)
    await call(admin.timeseries_data.upload, RAW, {str(raw_series["id"]): points})
    from_raw = (await call(admin.sites.get_degree_days, raw_site["id"], start, end, period=DegreeDaysPeriod.day,
                           type=DegreeDaysType.heating, base=18)).data["degree_days"]
    assert from_raw == got
    kelvin = (await call(admin.sites.get_degree_days, site["id"], start, end, period=DegreeDaysPeriod.day,
                         type=DegreeDaysType.heating, base=291.15, unit="K")).data["degree_days"]
    assert list(kelvin.values()) == [pytest.approx(v) if v is not None else None for v in heating.values()]


async def test_degree_days_without_a_temperature_series_is_a_conflict(bem: Stack, admin: Any) -> None:
    """A site without an outdoor air temperature series: 409 with BEMServer's message."""
    campaign = (await call(admin.campaigns.create, {"name": unique("weather"), "timezone": "UTC"})).data
    site = (await call(admin.sites.create, {"name": unique("site"), "campaign_id": campaign["id"]})).data
    status, body, _ = await raw(bem, "GET", f"/sites/{site['id']}/degree_days",
                                params={"start_date": "2026-01-01", "end_date": "2026-01-02", "period": "day"})
    assert status == 409 and body["message"] == "Air temperature for site undefined or access denied."
    status, body, _ = await raw(bem, "GET", f"/sites/{site['id']}/degree_days",
                                params={"start_date": "2026-01-01", "end_date": "2026-01-02", "period": "week"})
    assert status == 422 and "period" in body["errors"]["query"]


async def test_weather_download_is_off_by_default_and_says_so(bem: Stack, admin: Any) -> None:
    """Without a configured provider a download is a 409 that names the settings to set."""
    site, _ = await _site_with_temperature(admin)
    with pytest.raises(BEMServerAPIConflictError):
        await call(admin.sites.download_weather_data, site["id"], "2026-01-01T00:00:00+00:00",
                   "2026-01-02T00:00:00+00:00")
    status, body, _ = await raw(bem, "PUT", f"/sites/{site['id']}/download_weather_data", params={
        "start_time": "2026-01-01T00:00:00+00:00", "end_time": "2026-01-02T00:00:00+00:00"})
    assert status == 409 and "TWIN_WEATHER_PROVIDER" in body["message"]


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18400-18499")


@pytest.fixture(scope="module")
async def oikolab() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in of Oikolab's /weather on a local port: answers hourly temperatures 10 + hour
    (°C) for the asked period in Oikolab's shape, 401 for a wrong key; records each request."""
    seen: list[dict[str, Any]] = []

    async def weather(request: web.Request) -> web.Response:
        seen.append({"params": request.query.getall("param"), **{k: v for k, v in request.query.items()
                                                                 if k != "param"}})
        if request.query.get("api-key") != "stand-in-key":
            return web.Response(status=401, text="bad key")
        start = datetime.fromisoformat(request.query["start"])
        last = datetime.fromisoformat(request.query["end"])
        index, rows = [], []
        moment = start
        while moment <= last:
            index.append(int(moment.timestamp()))
            rows.append([48.85, 2.35, "era5", 10 + moment.astimezone(ZoneInfo("UTC")).hour])
            moment += timedelta(hours=1)
        inner = {"index": index, "columns": ["lat (deg)", "lon (deg)", "model (name)", "temperature (degC)"],
                 "data": rows}
        return web.json_response({"data": json.dumps(inner)})

    app = web.Application()
    app.router.add_get("/weather", weather)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/weather", seen
    await runner.cleanup()


@pytest.fixture(scope="module")
async def weather_bem(pg_dsn: str, amqp_url: str, oikolab: tuple[str, list[dict[str, Any]]]) -> AsyncIterator[Stack]:
    """Twin (weather provider: the stand-in) and gateway."""
    tag = uuid.uuid4().hex[:10]
    settings = TwinSettings(pg_dsn=pg_dsn, amqp_url=amqp_url, schema_name=f"bem_twin_{tag}", bus_namespace=f"t{tag}.",
                            pg_pool_max=4, weather_provider="oikolab", weather_api_url=oikolab[0],
                            weather_api_key=SecretStr("stand-in-key"))
    twin: TestClient[Any, Any] = TestClient(TestServer(create_twin(settings)))
    await twin.start_server()
    gateway: TestClient[Any, Any] = TestClient(TestServer(create_gateway(GatewaySettings(
        pg_dsn=SecretStr(pg_dsn), schema_name=f"bem_identity_{tag}", admin_email=ADMIN[0],
        admin_password=SecretStr(ADMIN[1]), twin_url=f"http://127.0.0.1:{twin.port}", pg_pool_max=3))))
    await gateway.start_server()
    yield Stack(gateway, twin)
    await gateway.close()
    await twin.close()
    await delete_namespace(amqp_url, settings.bus_namespace)


async def test_weather_download_from_the_stand_in_provider(weather_bem: Stack,
                                                           oikolab: tuple[str, list[dict[str, Any]]]) -> None:
    """A download asks the provider for the site's parameters at its coordinates over the hours
    of [start, end) (ERA5), stores them as the series' Clean data (in its unit: K here), and a
    second download over the same period replaces them; a refused key is BEMServer's 409."""
    admin = await asyncio.to_thread(weather_bem.client, *ADMIN)
    site, series = await _site_with_temperature(admin, unit="K")
    start, end = "2026-03-01T00:00:00+00:00", "2026-03-01T06:00:00+00:00"
    await call(admin.sites.download_weather_data, site["id"], start, end)
    request = oikolab[1][-1]
    assert request["params"] == ["temperature"] and request["model"] == "era5"
    assert (float(request["lat"]), float(request["lon"])) == (48.85, 2.35)
    assert request["end"] == "2026-03-01T05:00:00+00:00"  # Oikolab's end is inclusive
    got = (await call(admin.timeseries_data.download, start, end, CLEAN, [series["id"]])).data[str(series["id"])]
    assert got == {f"2026-03-01T0{h}:00:00+00:00": pytest.approx(10 + h + 273.15) for h in range(6)}
    await call(admin.sites.download_weather_data, site["id"], start, end)
    again = (await call(admin.timeseries_data.download, start, end, CLEAN, [series["id"]])).data[str(series["id"])]
    assert len(again) == 6
    refused = OikolabProvider(oikolab[0], "wrong-key", timeout=5)
    with pytest.raises(ProviderError) as caught:
        await refused.fetch(["AIR_TEMPERATURE"], latitude=1.0, longitude=2.0,
                            start=datetime(2026, 3, 1, tzinfo=PARIS), end=datetime(2026, 3, 2, tzinfo=PARIS),
                            forecast=True)
    assert caught.value.status == 409 and str(caught.value) == "Wrong API key."
    assert oikolab[1][-1]["model"] == "gfs"


async def test_ids_past_postgresql_integer_are_not_found(bem: Stack) -> None:
    """A site, building or campaign id past PostgreSQL's integer is a 404 like any unknown id
    (schemathesis found each answered 500)."""
    big = 2**70
    times = "start_time=2026-01-01T00:00:00%2B00:00&end_time=2026-01-02T00:00:00%2B00:00"
    for method, path in (
            ("GET", f"/bemserver/sites/{big}/degree_days?start_date=2026-01-01&end_date=2026-01-02&period=day"),
            ("PUT", f"/bemserver/sites/{big}/download_weather_data?{times}"),
            ("GET", f"/bemserver/analysis/energy_consumption/building/{big}?{times}&bucket_width_unit=day"),
            ("GET", f"/bemserver/timeseries_data/campaign/{big}/?data_state=1&{times}&timeseries=Heat")):
        async with bem.twin.request(method, path) as response:
            assert response.status == 404, (path, await response.text())


async def test_bad_values_schemathesis_found_are_refused_not_500s(bem: Stack) -> None:
    """Found by the deep schemathesis pass, each a 500 before: a site's coordinates past the
    registry's CHECKs (422 naming the field), events of user 0 (none), a device_type filter past
    smallint (422), a multipart CSV upload without a boundary (422)."""
    campaign = await (await bem.twin.post("/bemserver/campaigns/", json={"name": "coords", "timezone": "UTC"})).json()
    far = await bem.twin.post("/bemserver/sites/", json={"name": "far", "campaign_id": campaign["id"],
                                                         "longitude": 3.3e16})
    assert far.status == 422
    assert (await far.json())["errors"]["json"]["longitude"] == [
        "Must be greater than or equal to -180 and less than or equal to 180."]
    events = await bem.twin.get("/bemserver/events/", params={"user_id": "0"})
    assert events.status == 200 and await events.json() == []
    devices = await bem.twin.get("/api/v1/devices/", params={"device_type": "2147483646"})
    assert devices.status == 422 and "device_type" in (await devices.json())["errors"]["query"]
    upload = await bem.twin.post("/api/v1/io/sites_csv", params={"project_id": campaign["id"]},
                                 data=b"x", headers={"Content-Type": "multipart/form-data"})
    assert upload.status == 422 and "file" in (await upload.json())["errors"]["files"]
