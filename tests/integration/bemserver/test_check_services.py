"""BEMServer's check services through the real client: the `st_*` resources of seed 001 (their
entry points are those of bemserver-api-client 0.21.2, copied below onto the installed 0.22
client's request machinery, which has no such entry points since bemserver-api 0.26 replaced
them with /tasks), and the checks themselves: a series with a known gap gives the missing-data
event with figures worked out here, values outside Min/Max give outlier events, a disabled
campaign is not checked, a period run twice writes its events once, the cleanup copies Raw to
Clean without the outliers, the weather download says when it is not configured and fills the
Clean series from a stand-in provider, and the schedule runs the checks by itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bemserver_api_client.exceptions import BEMServerAPIConflictError, BEMServerAPIValidationError
from bemserver_api_client.resources.base import BaseResources

from tests.integration.bemserver.conftest import Stack, call, raw, unique
from tests.servicetokens import as_service
from twinbill_twin.checks import CHECKS, CheckRunner

RAW, CLEAN = 1, 2
PARIS = ZoneInfo("Europe/Paris")
DAY = datetime(2026, 1, 5, tzinfo=PARIS)  # a Monday; the checks run on the day after


# bemserver-api-client 0.21.2, resources/services/*.py (seed 001 lists exactly these)
class ST_CheckMissingByCampaignResources(BaseResources):  # type: ignore[misc]
    endpoint_base_uri = "/st_check_missings_by_campaigns/"
    client_entrypoint = "st_check_missing_by_campaign"

    def get_full(self, *, etag: Any = None, **kwargs: Any) -> Any:
        return self._req.getall(f"{self.endpoint_base_uri}full", etag=etag, params=kwargs)


class ST_CheckOutlierByCampaignResources(ST_CheckMissingByCampaignResources):
    endpoint_base_uri = "/st_check_outliers_by_campaigns/"
    client_entrypoint = "st_check_outlier_by_campaign"


class ST_CleanupByCampaignResources(ST_CheckMissingByCampaignResources):
    endpoint_base_uri = "/st_cleanups_by_campaigns/"
    client_entrypoint = "st_cleanup_by_campaign"


class ST_CleanupByTimeseriesResources(ST_CheckMissingByCampaignResources):
    endpoint_base_uri = "/st_cleanups_by_timeseries/"
    disabled_endpoints = ["create", "update", "delete"]  # noqa: RUF012
    client_entrypoint = "st_cleanup_by_timeseries"


class ST_DownloadWeatherDataBySiteResources(ST_CheckMissingByCampaignResources):
    endpoint_base_uri = "/st_download_weather_data_by_sites/"
    client_entrypoint = "st_download_weather_by_site"


class ST_DownloadWeatherForecastDataBySiteResources(ST_CheckMissingByCampaignResources):
    endpoint_base_uri = "/st_download_weather_forecast_data_by_sites/"
    client_entrypoint = "st_download_weather_forecast_by_site"


class Services:
    """The admin client's service entry points, as client 0.21.2 names them."""

    def __init__(self, client: Any) -> None:
        manager = client._request_manager
        self.st_check_missing_by_campaign = ST_CheckMissingByCampaignResources(manager)
        self.st_check_outlier_by_campaign = ST_CheckOutlierByCampaignResources(manager)
        self.st_cleanup_by_campaign = ST_CleanupByCampaignResources(manager)
        self.st_cleanup_by_timeseries = ST_CleanupByTimeseriesResources(manager)
        self.st_download_weather_by_site = ST_DownloadWeatherDataBySiteResources(manager)
        self.st_download_weather_forecast_by_site = ST_DownloadWeatherForecastDataBySiteResources(manager)


@pytest.fixture(scope="module")
def st(admin: Any) -> Services:
    return Services(admin)


def runner(bem: Stack) -> CheckRunner:
    found: CheckRunner = bem.twin.app[CHECKS]
    return found


async def _campaign(admin: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    campaign = (await call(admin.campaigns.create, {"name": unique("checks"), "timezone": "Europe/Paris"})).data
    scope = (await call(admin.campaign_scopes.create, {"name": "meters", "campaign_id": campaign["id"]})).data
    return campaign, scope


async def _series(admin: Any, campaign: dict[str, Any], scope: dict[str, Any], name: str) -> dict[str, Any]:
    body = {"name": name, "campaign_id": campaign["id"], "campaign_scope_id": scope["id"], "unit_symbol": "kWh"}
    series: dict[str, Any] = (await call(admin.timeseries.create, body)).data
    return series


async def _property(admin: Any, series: dict[str, Any], name: str, value: str) -> None:
    prop = next(p for p in (await call(admin.timeseries_properties.getall)).data if p["name"] == name)
    await call(admin.timeseries_property_data.create,
               {"timeseries_id": series["id"], "property_id": prop["id"], "value": value})


async def _events(admin: Any, campaign: dict[str, Any], **filters: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await call(admin.events.getall, campaign_id=campaign["id"], sort="+timestamp",
                                              page_size=100, **filters)).data
    return found


async def _linked(admin: Any, event: dict[str, Any]) -> set[int]:
    links = (await call(admin.timeseries_by_events.getall, event_id=event["id"])).data
    return {link["timeseries_id"] for link in links}


async def test_service_resources_and_their_full_listings(bem: Stack, admin: Any, st: Services) -> None:
    """Each campaign service: create (is_enabled defaults to true), list by campaign, get, update
    with the ETag, the /full listing of every campaign (a campaign never set has id and
    is_enabled null and counts as not enabled), a second row for a campaign is a 409, delete.
    Sites the same for the weather downloads; the per-series cleanup state is read only."""
    campaign, scope = await _campaign(admin)
    other, _ = await _campaign(admin)
    for resource in (st.st_check_missing_by_campaign, st.st_check_outlier_by_campaign, st.st_cleanup_by_campaign):
        made = (await call(resource.create, {"campaign_id": campaign["id"]})).data
        assert made == {"id": made["id"], "campaign_id": campaign["id"], "is_enabled": True}
        assert (await call(resource.getall, campaign_id=campaign["id"])).data == [made]
        one = await call(resource.getone, made["id"])
        assert one.data == made
        with pytest.raises(BEMServerAPIConflictError):
            await call(resource.create, {"campaign_id": campaign["id"], "is_enabled": False})
        updated = (await call(resource.update, made["id"], {"is_enabled": False}, etag=one.etag)).data
        assert updated["is_enabled"] is False
        full = {row["campaign_id"]: row for row in (await call(resource.get_full, sort="-campaign_name")).data}
        assert full[campaign["id"]] == {"id": made["id"], "campaign_id": campaign["id"],
                                        "campaign_name": campaign["name"], "is_enabled": False}
        assert full[other["id"]] == {"id": None, "campaign_id": other["id"], "campaign_name": other["name"],
                                     "is_enabled": None}
        disabled = {row["campaign_id"] for row in (await call(resource.get_full, is_enabled=False)).data}
        assert {campaign["id"], other["id"]} <= disabled
        named = (await call(resource.get_full, in_campaign_name=other["name"][-8:])).data
        assert [row["campaign_id"] for row in named] == [other["id"]]
        await call(resource.delete, made["id"], etag=(await call(resource.getone, made["id"])).etag)
        assert (await call(resource.getall, campaign_id=campaign["id"])).data == []

    site = (await call(admin.sites.create, {"name": unique("site"), "campaign_id": campaign["id"]})).data
    for resource in (st.st_download_weather_by_site, st.st_download_weather_forecast_by_site):
        made = (await call(resource.create, {"site_id": site["id"], "is_enabled": False})).data
        assert made == {"id": made["id"], "site_id": site["id"], "is_enabled": False}
        full = (await call(resource.get_full, campaign_id=campaign["id"])).data
        assert full == [{"id": made["id"], "site_id": site["id"], "site_name": site["name"], "is_enabled": False}]
        with pytest.raises(BEMServerAPIConflictError):  # no such site
            await call(resource.create, {"site_id": 2_000_000_000})
        await call(resource.delete, made["id"], etag=(await call(resource.getone, made["id"])).etag)

    series = await _series(admin, campaign, scope, "read only")
    full = (await call(st.st_cleanup_by_timeseries.get_full, campaign_id=campaign["id"])).data
    assert full == [{"id": None, "timeseries_id": series["id"], "timeseries_name": "read only",
                     "timeseries_unit_symbol": "kWh", "last_timestamp": None}]
    assert (await call(st.st_cleanup_by_timeseries.getall, campaign_id=campaign["id"])).data == []
    status, _, _ = await raw(bem, "POST", "/st_cleanups_by_timeseries/", json={"timeseries_id": series["id"]})
    assert status == 405


async def test_a_known_gap_gives_the_missing_data_event_once_and_its_sequel(bem: Stack, admin: Any,
                                                                              st: Services) -> None:
    """Hourly series (Interval 3600 s) over 5 January (Paris): one missing 10:00-15:00, one
    complete, one without Interval and without data. The check on the 6th raises one WARNING
    "Data missing" event naming the gappy and the empty series with their figures; asked again
    for the same day it writes nothing; the next day (no data at all) the two are "still
    missing" (INFO) and the complete one newly missing; a day with data again is "Data present"."""
    campaign, scope = await _campaign(admin)
    gappy = await _series(admin, campaign, scope, "gappy")
    full = await _series(admin, campaign, scope, "complete")
    empty = await _series(admin, campaign, scope, "silent")
    for series in (gappy, full):
        await _property(admin, series, "Interval", "3600")
    hours = [DAY + timedelta(hours=h) for h in range(24)]
    kept = [h for h in hours if not 10 <= h.hour < 15]
    await call(admin.timeseries_data.upload, RAW, {str(gappy["id"]): {h.isoformat(): 1.0 for h in kept},
                                                   str(full["id"]): {h.isoformat(): 2.0 for h in hours}})
    await call(st.st_check_missing_by_campaign.create, {"campaign_id": campaign["id"]})

    # worked out here: 19 of 24 expected (86400 s / 3600 s), ratio 19/24 <= 0.9
    expected_ratio = len(kept) / (24 * 3600 / 3600)
    first = await runner(bem).run_now(now=datetime(2026, 1, 6, 9, 30, tzinfo=PARIS), services=("check_missing",),
                                      campaign_id=campaign["id"])
    assert [r.ran for r in first] == [True]
    assert first[0].start == DAY and first[0].end == DAY + timedelta(days=1)
    figures = {f.name: f for f in first[0].series}
    assert (figures["gappy"].count, figures["gappy"].expected) == (19, 24.0)
    assert figures["gappy"].ratio == pytest.approx(expected_ratio) and figures["gappy"].flagged
    assert (figures["complete"].count, figures["complete"].ratio, figures["complete"].flagged) == (24, 1.0, False)
    assert (figures["silent"].count, figures["silent"].flagged) == (0, True)
    events = await _events(admin, campaign)
    assert len(events) == 1
    event = events[0]
    assert (event["level"], event["source"], event["campaign_scope_id"]) == (
        "WARNING", "BEMServer - Check missing data", scope["id"])
    categories = {c["id"]: c["name"] for c in (await call(admin.event_categories.getall)).data}
    assert categories[event["category_id"]] == "Data missing"
    assert event["timestamp"] == (DAY + timedelta(days=1)).astimezone(UTC).isoformat()
    assert event["description"].splitlines()[0] == "The following timeseries are missing: gappy,silent"
    assert f"gappy: 19 values, 24 expected, ratio {expected_ratio:.4f}" in event["description"]
    assert await _linked(admin, event) == {gappy["id"], empty["id"]}

    again = await runner(bem).run_now(now=datetime(2026, 1, 6, 23, 0, tzinfo=PARIS), services=("check_missing",),
                                      campaign_id=campaign["id"])
    assert [r.ran for r in again] == [False]
    assert len(await _events(admin, campaign)) == 1

    await runner(bem).run_now(now=datetime(2026, 1, 7, 1, 0, tzinfo=PARIS), services=("check_missing",),
                              campaign_id=campaign["id"])
    day2 = (await _events(admin, campaign))[1:]
    assert [(e["level"], e["description"].splitlines()[0]) for e in day2] == [
        ("WARNING", "The following timeseries are missing: complete"),
        ("INFO", "The following timeseries are still missing: gappy,silent")]
    assert await _linked(admin, day2[0]) == {full["id"]}

    day3 = [DAY + timedelta(days=2, hours=h) for h in range(24)]
    await call(admin.timeseries_data.upload, RAW, {str(gappy["id"]): {h.isoformat(): 3.0 for h in day3}})
    await runner(bem).run_now(now=datetime(2026, 1, 8, 1, 0, tzinfo=PARIS), services=("check_missing",),
                              campaign_id=campaign["id"])
    present = [e for e in (await _events(admin, campaign))[3:] if e["description"].startswith(
        "The following timeseries are not missing anymore")]
    assert len(present) == 1 and present[0]["level"] == "INFO"
    assert categories[present[0]["category_id"]] == "Data present"
    assert await _linked(admin, present[0]) == {gappy["id"]}


async def test_out_of_range_values_give_outlier_events_only_where_enabled(bem: Stack, admin: Any,
                                                                          st: Services) -> None:
    """Min 0 / Max 100: 4 of 20 values outside (80 % inside, below 90 %) raise one WARNING
    "Data outliers" event linked to that series; a series with 1 of 20 outside (95 %) is not
    flagged; the same data in a campaign whose check is disabled raises nothing."""
    campaign, scope = await _campaign(admin)
    disabled, disabled_scope = await _campaign(admin)
    stamps = [DAY + timedelta(hours=h) for h in range(20)]
    bad_values = [50.0] * 16 + [-1.0, 101.0, 250.0, -40.0]
    fine_values = [10.0] * 19 + [100.5]
    made: dict[str, dict[str, Any]] = {}
    for camp, sc in ((campaign, scope), (disabled, disabled_scope)):
        for name, values in (("noisy", bad_values), ("mostly fine", fine_values)):
            series = await _series(admin, camp, sc, name)
            await _property(admin, series, "Min", "0")
            await _property(admin, series, "Max", "100")
            await call(admin.timeseries_data.upload, RAW,
                       {str(series["id"]): {t.isoformat(): v for t, v in zip(stamps, values, strict=True)}})
            made[f"{camp['id']}:{name}"] = series
    await call(st.st_check_outlier_by_campaign.create, {"campaign_id": campaign["id"]})
    await call(st.st_check_outlier_by_campaign.create, {"campaign_id": disabled["id"], "is_enabled": False})

    inside = sum(1 for v in bad_values if 0 <= v <= 100) / len(bad_values)
    results = await runner(bem).run_now(now=datetime(2026, 1, 6, 8, 0, tzinfo=PARIS), services=("check_outliers",))
    assert [r.target_id for r in results if r.ran and r.target_id in (campaign["id"], disabled["id"])] == \
        [campaign["id"]]
    ours = next(r for r in results if r.target_id == campaign["id"])
    figures = {f.name: f for f in ours.series}
    assert (figures["noisy"].count, figures["noisy"].ratio, figures["noisy"].flagged) == (20, inside, True)
    assert (figures["mostly fine"].ratio, figures["mostly fine"].flagged) == (19 / 20, False)
    events = await _events(admin, campaign)
    assert len(events) == 1
    assert (events[0]["level"], events[0]["source"]) == ("WARNING", "BEMServer - Check outliers")
    assert events[0]["description"].splitlines()[0] == "The following timeseries have outliers: noisy"
    assert await _linked(admin, events[0]) == {made[f"{campaign['id']}:noisy"]["id"]}
    assert await _events(admin, disabled) == []
    await runner(bem).run_now(now=datetime(2026, 1, 6, 12, 0, tzinfo=PARIS), services=("check_outliers",),
                              campaign_id=campaign["id"])
    assert len(await _events(admin, campaign)) == 1


async def test_the_cleanup_copies_raw_to_clean_without_outliers_and_carries_on(bem: Stack, admin: Any,
                                                                               st: Services) -> None:
    """Clean data = Raw data inside Min/Max; the series' last_timestamp is its newest Raw point;
    a second run copies only what came after it."""
    campaign, scope = await _campaign(admin)
    series = await _series(admin, campaign, scope, "to clean")
    await _property(admin, series, "Min", "0")
    await _property(admin, series, "Max", "10")
    first = {DAY + timedelta(minutes=10 * i): float(v) for i, v in enumerate([1, 5, 11, -2, 7, 10])}
    await call(admin.timeseries_data.upload, RAW, {str(series["id"]): {t.isoformat(): v for t, v in first.items()}})
    await call(st.st_cleanup_by_campaign.create, {"campaign_id": campaign["id"]})

    async def clean() -> dict[str, float]:
        got = (await call(admin.timeseries_data.download, DAY.isoformat(), (DAY + timedelta(days=1)).isoformat(),
                          CLEAN, [series["id"]], timezone="UTC")).data
        values: dict[str, float] = got.get(str(series["id"]), {})
        return values

    def inside(points: dict[datetime, float]) -> dict[str, float]:
        return {t.astimezone(UTC).isoformat(): v for t, v in points.items() if 0 <= v <= 10}

    await runner(bem).run_now(services=("cleanup",), campaign_id=campaign["id"])
    assert await clean() == inside(first)
    state = (await call(st.st_cleanup_by_timeseries.get_full, campaign_id=campaign["id"])).data
    assert state[0]["last_timestamp"] == max(first).astimezone(UTC).isoformat()
    mine = (await call(st.st_cleanup_by_timeseries.getall, timeseries_id=series["id"])).data
    assert [row["timeseries_id"] for row in mine] == [series["id"]]

    later = {DAY + timedelta(hours=3, minutes=i): float(v) for i, v in enumerate([3, 30])}
    await call(admin.timeseries_data.upload, RAW, {str(series["id"]): {t.isoformat(): v for t, v in later.items()}})
    await runner(bem).run_now(services=("cleanup",), campaign_id=campaign["id"])
    await runner(bem).run_now(services=("cleanup",), campaign_id=campaign["id"])
    assert await clean() == inside({**first, **later})
    state = (await call(st.st_cleanup_by_timeseries.get_full, campaign_id=campaign["id"])).data
    assert state[0]["last_timestamp"] == max(later).astimezone(UTC).isoformat()


class StandIn:
    """A weather provider answering a constant temperature every hour (the provider Protocol)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], datetime, datetime, bool]] = []

    async def fetch(self, parameters: list[str], *, latitude: float, longitude: float, start: datetime,
                    end: datetime, forecast: bool) -> dict[str, dict[int, float]]:
        self.calls.append((parameters, start, end, forecast))
        hours = range(int(start.timestamp()) * 1000, int(end.timestamp()) * 1000, 3_600_000)
        return {name: {ts: 4.5 for ts in hours} for name in parameters}


async def test_weather_downloads_say_when_not_configured_and_run_with_a_provider(bem: Stack, admin: Any,
                                                                                 st: Services) -> None:
    """Without a provider (the default) an enabled site's download says which settings are
    missing and claims nothing; with one, yesterday's weather is stored in the site's Clean
    series once, and the forecast service asks for the days ahead."""
    campaign, scope = await _campaign(admin)
    site = (await call(admin.sites.create, {"name": unique("site"), "campaign_id": campaign["id"],
                                            "latitude": 45.2, "longitude": 5.7})).data
    series = await _series(admin, campaign, scope, "outdoor")
    await call(admin.weather_ts_by_sites.create, {"site_id": site["id"], "parameter": "AIR_TEMPERATURE",
                                                  "timeseries_id": series["id"], "forecast": False})
    ahead = await _series(admin, campaign, scope, "outdoor forecast")
    await call(admin.weather_ts_by_sites.create, {"site_id": site["id"], "parameter": "AIR_TEMPERATURE",
                                                  "timeseries_id": ahead["id"], "forecast": True})
    await call(st.st_download_weather_by_site.create, {"site_id": site["id"]})
    await call(st.st_download_weather_forecast_by_site.create, {"site_id": site["id"]})
    now = datetime(2026, 1, 6, 6, 0, tzinfo=PARIS)
    checks = runner(bem)
    assert checks.provider is None
    off = await checks.run_now(now=now, services=("weather",), campaign_id=campaign["id"])
    assert [r.ran for r in off] == [False]
    assert "TWIN_WEATHER_PROVIDER" in off[0].outcome and "TWIN_WEATHER_API_KEY" in off[0].outcome

    stand_in = StandIn()
    checks.provider = stand_in
    try:
        on = await checks.run_now(now=now, services=("weather", "weather_forecast"), campaign_id=campaign["id"])
        again = await checks.run_now(now=now, services=("weather",), campaign_id=campaign["id"])
        # bemserver-api 0.26's way: a DownloadWeatherData task naming the site, the two days before
        await call(admin.task_by_campaign.create, {
            "task_name": "DownloadWeatherData", "campaign_id": campaign["id"], "offset_unit": "day",
            "start_offset": -2, "end_offset": 0, "parameters": {"sites": [site["name"]], "forecast": False}})
        tasked = await checks.run_now(now=now, services=("weather",), campaign_id=campaign["id"])
    finally:
        checks.provider = None
    assert [r.ran for r in on] == [True, True] and [r.ran for r in again] == [False]
    assert [r.outcome for r in on] == ["24 points stored", "48 points stored"]
    assert [(r.ran, r.start) for r in tasked] == [(False, DAY), (True, DAY - timedelta(days=1))]
    assert [(c[1], c[2], c[3]) for c in stand_in.calls] == [
        (DAY, DAY + timedelta(days=1), False), (DAY + timedelta(days=1), DAY + timedelta(days=3), True),
        (DAY - timedelta(days=1), DAY + timedelta(days=1), False)]
    got = (await call(admin.timeseries_data.download, DAY.isoformat(), (DAY + timedelta(days=1)).isoformat(),
                      CLEAN, [series["id"]], timezone="Europe/Paris")).data
    assert got[str(series["id"])] == {(DAY + timedelta(hours=h)).isoformat(): 4.5 for h in range(24)}


async def test_the_schedule_runs_the_check_by_itself_and_the_internal_trigger(bem: Stack, admin: Any,
                                                                              st: Services) -> None:
    """The runner's loop (as the twin starts it, here every 0.1 s) checks yesterday by the clock:
    a series with no data is reported missing once, however many times the loop comes round.
    The internal trigger wants a service token and answers each run's figures."""
    campaign, scope = await _campaign(admin)
    await _series(admin, campaign, scope, "never fed")
    await call(st.st_check_missing_by_campaign.create, {"campaign_id": campaign["id"]})
    loop = asyncio.create_task(runner(bem).run(interval=0.1))
    try:
        for _ in range(200):
            if await _events(admin, campaign):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # a few more rounds
    finally:
        loop.cancel()
    events = await _events(admin, campaign)
    local = datetime.now(PARIS)
    assert len(events) == 1
    assert events[0]["timestamp"] == datetime(local.year, local.month, local.day, tzinfo=PARIS).astimezone(
        UTC).isoformat()

    status, body = await _trigger(bem, {"services": ["check_missing"], "campaign_id": campaign["id"]}, token=False)
    assert status == 401
    status, body = await _trigger(bem, {"services": ["check_missing"], "campaign_id": campaign["id"],
                                        "at": "2026-01-03T12:00:00+01:00"})
    assert status == 200
    [result] = body["results"]
    assert result["ran"] is True and result["start"] == "2026-01-02T00:00:00+01:00"
    assert result["series"][0]["name"] == "never fed" and result["series"][0]["flagged"] is True
    status, body = await _trigger(bem, {"services": ["nope"], "at": "yesterday"})
    assert status == 400 and set(body["errors"]["json"]) == {"services", "at"}


async def _trigger(bem: Stack, body: dict[str, Any], *, token: bool = True) -> tuple[int, Any]:
    headers = as_service("twin") if token else {}
    response = await bem.twin.post("/internal/v1/checks/run", json=body, headers=headers)
    return response.status, await response.json()



async def test_two_replicas_checking_the_same_period_at_once_write_its_events_once(bem: Stack, admin: Any,
                                                                                   st: Services) -> None:
    """Two runners on the database (as two twin replicas) asked for the same campaign and day at
    the same moment: one runs it, the other finds it claimed; one event."""
    campaign, scope = await _campaign(admin)
    await _series(admin, campaign, scope, "quiet")
    await call(st.st_check_missing_by_campaign.create, {"campaign_id": campaign["id"]})
    first = runner(bem)
    second = CheckRunner(first.pool, first.partitions, provider=None)
    at = datetime(2026, 2, 10, 12, 0, tzinfo=PARIS)
    results = await asyncio.gather(*(r.run_now(now=at, services=("check_missing",), campaign_id=campaign["id"])
                                     for r in (first, second, first, second)))
    assert sorted(result.ran for batch in results for result in batch) == [False, False, False, True]
    assert len(await _events(admin, campaign)) == 1


async def test_tasks_of_bemserver_api_0_26_through_the_installed_client(bem: Stack, admin: Any) -> None:
    """bemserver-api 0.26-0.27's `tasks` and `task_by_campaign` (client 0.22): the task list with
    default parameters, a task scheduled for a campaign (CRUD with the ETag, its parameters used
    by the run: a threshold of 0.5 lets a 19/24 series pass), and a task run by hand."""
    tasks = {t["name"]: t for t in (await call(admin.tasks.getall)).data}
    assert tasks["CheckMissingData"]["default_parameters"] == {"min_completeness_ratio": 0.9}
    assert set(tasks) == {"CheckMissingData", "CheckOutliers", "Cleanup", "DownloadWeatherData"}
    campaign, scope = await _campaign(admin)
    gappy = await _series(admin, campaign, scope, "gappy")
    silent = await _series(admin, campaign, scope, "silent")
    await _property(admin, gappy, "Interval", "3600")
    day = DAY + timedelta(days=60)
    kept = [day + timedelta(hours=h) for h in range(24) if not 10 <= h < 15]
    await call(admin.timeseries_data.upload, RAW, {str(gappy["id"]): {h.isoformat(): 1.0 for h in kept}})

    made = (await call(admin.task_by_campaign.create, {
        "task_name": "CheckMissingData", "campaign_id": campaign["id"], "offset_unit": "day",
        "parameters": {"min_completeness_ratio": 0.5}})).data
    assert made == {"id": made["id"], "task_name": "CheckMissingData", "campaign_id": campaign["id"],
                    "is_enabled": True, "parameters": {"min_completeness_ratio": 0.5}, "offset_unit": "day",
                    "start_offset": -1, "end_offset": 0}
    assert (await call(admin.task_by_campaign.getall, campaign_id=campaign["id"])).data == [made]
    with pytest.raises(BEMServerAPIValidationError):
        await call(admin.task_by_campaign.create, {"task_name": "Cleanup", "campaign_id": campaign["id"],
                                                    "offset_unit": "fortnight"})

    [result] = await runner(bem).run_now(now=day + timedelta(days=1, hours=7), services=("check_missing",),
                                         campaign_id=campaign["id"])
    assert (result.ran, result.start, result.end) == (True, day, day + timedelta(days=1))
    assert {f.name: f.flagged for f in result.series} == {"gappy": False, "silent": True}
    [event] = await _events(admin, campaign)
    assert await _linked(admin, event) == {silent["id"]}

    one = await call(admin.task_by_campaign.getone, made["id"])
    off = (await call(admin.task_by_campaign.update, made["id"], {"is_enabled": False}, etag=one.etag)).data
    assert off["is_enabled"] is False
    assert await runner(bem).run_now(now=day + timedelta(days=2, hours=7), services=("check_missing",),
                                     campaign_id=campaign["id"]) == []

    noisy = await _series(admin, campaign, scope, "noisy")
    await _property(admin, noisy, "Max", "10")
    await call(admin.timeseries_data.upload, RAW, {str(noisy["id"]): {
        (day + timedelta(hours=h)).isoformat(): 50.0 for h in range(3)}})
    await call(admin.tasks.run_async, {"task_name": "CheckOutliers", "campaign_id": campaign["id"],
                                       "start_time": day.isoformat(),
                                       "end_time": (day + timedelta(days=1)).isoformat()})
    outliers = [e for e in await _events(admin, campaign) if e["source"] == "BEMServer - Check outliers"]
    assert len(outliers) == 1 and await _linked(admin, outliers[0]) == {noisy["id"]}
    with pytest.raises(BEMServerAPIValidationError):
        await call(admin.tasks.run_async, {"task_name": "Nope", "campaign_id": campaign["id"],
                                           "start_time": day.isoformat(), "end_time": day.isoformat()})
    with pytest.raises(BEMServerAPIValidationError) as named:  # not a string: named, not a 500
        await call(admin.tasks.run_async, {"task_name": {}, "campaign_id": campaign["id"],
                                           "start_time": day.isoformat(), "end_time": day.isoformat()})
    assert "task_name" in str(named.value.errors)
    await call(admin.task_by_campaign.delete, made["id"],
               etag=(await call(admin.task_by_campaign.getone, made["id"])).etag)
