"""Time series and their data through the BEMServer client: free and device series, uploads
(JSON, CSV, by ids and by names) into the twin's one sample store, downloads, aggregates in
buckets aligned in the asked zone, stats, delete, data states, and every bad input refused
with the field or line named and nothing stored."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from bemserver_api_client.enums import Aggregation, BucketWidthUnit, DataFormat
from bemserver_api_client.exceptions import (
    BEMServerAPIAuthorizationError,
    BEMServerAPIValidationError,
)

from tests.integration.bemserver.conftest import Stack, call, raw, unique
from tests.integration.twin_registry.conftest import make_device, make_product
from twinbill_twin.keys import POOL

RAW, CLEAN = 1, 2
T0 = "2026-01-05T00:00:00+00:00"  # a Monday
END = "2026-01-06T00:00:00+00:00"


async def _campaign(admin: Any, zone: str = "Europe/Paris") -> tuple[dict[str, Any], dict[str, Any]]:
    campaign = (await call(admin.campaigns.create, {"name": unique("energy"), "timezone": zone})).data
    scope = (await call(admin.campaign_scopes.create, {"name": "all", "campaign_id": campaign["id"]})).data
    return campaign, scope


async def _series(admin: Any, campaign: dict[str, Any], scope: dict[str, Any], name: str, **extra: Any) -> Any:
    body = {"name": name, "campaign_id": campaign["id"], "campaign_scope_id": scope["id"], **extra}
    return (await call(admin.timeseries.create, body)).data


async def test_upload_and_download_json_and_csv_by_ids_and_names(bem: Stack, admin: Any) -> None:
    """What is uploaded comes back: JSON per series, CSV joined on timestamps (empty cells where a
    series has no point), by ids and by names, in the asked time zone."""
    campaign, scope = await _campaign(admin)
    temp = await _series(admin, campaign, scope, "Outdoor temperature", unit_symbol="°C")
    energy = await _series(admin, campaign, scope, "Energy", unit_symbol="kWh")
    assert temp["unit_symbol"] == "°C" and "attribute_id" not in temp
    await call(admin.timeseries_data.upload, RAW, {
        str(temp["id"]): {"2026-01-05T00:00:00+00:00": 1.5, "2026-01-05T01:00:00+00:00": 2.5},
        str(energy["id"]): {"2026-01-05T01:00:00+00:00": 10}})
    got = await call(admin.timeseries_data.download, T0, END, RAW, [temp["id"], energy["id"]])
    assert got.data == {str(temp["id"]): {"2026-01-05T00:00:00+00:00": 1.5, "2026-01-05T01:00:00+00:00": 2.5},
                        str(energy["id"]): {"2026-01-05T01:00:00+00:00": 10.0}}
    paris = await call(admin.timeseries_data.download, T0, END, RAW, [temp["id"]], timezone="Europe/Paris",
                       format=DataFormat.csv)
    assert paris.data.decode().splitlines() == [f"Datetime,{temp['id']}", "2026-01-05T01:00:00+0100,1.5",
                                                "2026-01-05T02:00:00+0100,2.5"]
    joined = await call(admin.timeseries_data.download, T0, END, RAW, [temp["id"], energy["id"]],
                        format=DataFormat.csv)
    assert list(csv.reader(io.StringIO(joined.data.decode()))) == [
        ["Datetime", str(temp["id"]), str(energy["id"])], ["2026-01-05T00:00:00+0000", "1.5", ""],
        ["2026-01-05T01:00:00+0000", "2.5", "10.0"]]
    upload = b"Datetime,Energy\n2026-01-05T02:00:00+00:00,11\n2026-01-05T03:00:00+00:00,12.25\n"
    await call(admin.timeseries_data.upload_by_names, campaign["id"], RAW, upload, format=DataFormat.csv)
    by_names = await call(admin.timeseries_data.download_by_names, campaign["id"], T0, END, RAW, ["Energy"])
    assert by_names.data == {"Energy": {"2026-01-05T01:00:00+00:00": 10.0, "2026-01-05T02:00:00+00:00": 11.0,
                                        "2026-01-05T03:00:00+00:00": 12.25}}
    assert (await call(admin.timeseries_data.download, T0, END, CLEAN, [energy["id"]])).data == {}


async def test_a_bad_line_refuses_the_whole_csv_and_names_the_line(bem: Stack, admin: Any) -> None:
    """A bad timestamp or number on line N is a 422 naming line N, and nothing of it is stored."""
    campaign, scope = await _campaign(admin)
    meter = await _series(admin, campaign, scope, "Meter")
    for bad_line, message in (("2026-01-05T02:00:00+00:00,abc", "line 3"), ("yesterday,4", "line 3")):
        text = f"Datetime,{meter['id']}\n2026-01-05T01:00:00+00:00,3\n{bad_line}\n".encode()
        with pytest.raises(BEMServerAPIValidationError) as refused:
            await call(admin.timeseries_data.upload, RAW, text, format=DataFormat.csv)
        assert message in refused.value.errors["_general"][0]
    stats = await call(admin.timeseries_data.get_stats, RAW, [meter["id"]])
    assert stats.data["stats"][str(meter["id"])]["count"] == 0
    with pytest.raises(BEMServerAPIValidationError) as json_refused:
        await call(admin.timeseries_data.upload, RAW, {str(meter["id"]): {"2026-01-05T01:00:00+00:00": "x"}})
    assert json_refused.value.errors == {str(meter["id"]): {"2026-01-05T01:00:00+00:00": [
        f"Invalid value 'x' at 2026-01-05T01:00:00+00:00 in series '{meter['id']}': not a number"]}}


async def test_unknown_series_and_bad_parameters_are_named(bem: Stack, admin: Any) -> None:
    """Unknown ids or names, an unknown data state or bucket unit, a page size above 100."""
    campaign, scope = await _campaign(admin)
    meter = await _series(admin, campaign, scope, "Known")
    with pytest.raises(BEMServerAPIValidationError) as unknown:
        await call(admin.timeseries_data.download_by_names, campaign["id"], T0, END, RAW, ["Known", "Nope"])
    assert unknown.value.errors == {"timeseries": ["Unknown timeseries name(s): Nope"]}
    with pytest.raises(BEMServerAPIValidationError):
        await call(admin.timeseries_data.upload, RAW, {str(2**31 - 1): {T0: 1}})
    status, body, _ = await raw(bem, "GET", "/timeseries_data/", params={
        "start_time": T0, "end_time": END, "data_state": 9, "timeseries": meter["id"]})
    assert (status, body["errors"]) == (422, {"query": {"data_state": "Unknown data state ID"}})
    status, body, _ = await raw(bem, "GET", "/timeseries_data/aggregate", params={
        "start_time": T0, "end_time": END, "data_state": RAW, "timeseries": meter["id"],
        "bucket_width_value": 1, "bucket_width_unit": "fortnight"})
    assert status == 422 and list(body["errors"]["query"]) == ["bucket_width_unit"]
    status, body, _ = await raw(bem, "GET", "/timeseries_data/aggregate", params={
        "start_time": T0, "end_time": END, "data_state": RAW, "timeseries": meter["id"],
        "bucket_width_value": 2, "bucket_width_unit": "month"})
    assert status == 422 and list(body["errors"]["query"]) == ["bucket_width_value"]
    with pytest.raises(BEMServerAPIValidationError) as page:
        await call(admin.timeseries.getall, page_size=101)
    assert list(page.value.errors) == ["page_size"]
    listed = await call(admin.timeseries.getall, campaign_id=campaign["id"], page_size=1)
    assert listed.pagination["total"] == 1 and [t["id"] for t in listed.data] == [meter["id"]]


async def test_aggregate_stats_and_delete(bem: Stack, admin: Any) -> None:
    """download_aggregate fills every bucket (null, or 0 for count), aligns days in the asked
    zone; get_stats summarises; delete removes a range and the rest stays."""
    campaign, scope = await _campaign(admin)
    meter = await _series(admin, campaign, scope, "Power")
    points = {f"2026-01-05T00:{m:02d}:00+00:00": float(m) for m in range(0, 60, 10)}
    points["2026-01-05T02:30:00+00:00"] = 100.0
    await call(admin.timeseries_data.upload, RAW, {str(meter["id"]): points})
    key = str(meter["id"])
    avg = await call(admin.timeseries_data.download_aggregate, T0, "2026-01-05T03:00:00+00:00", RAW, [meter["id"]],
                     aggregation=Aggregation.avg, bucket_width_value="1", bucket_width_unit=BucketWidthUnit.hour)
    assert avg.data == {key: {"2026-01-05T00:00:00+00:00": 25.0, "2026-01-05T01:00:00+00:00": None,
                              "2026-01-05T02:00:00+00:00": 100.0}}
    count = await call(admin.timeseries_data.download_aggregate, T0, "2026-01-05T03:00:00+00:00", RAW,
                       [meter["id"]], aggregation=Aggregation.count, bucket_width_unit=BucketWidthUnit.hour,
                       format=DataFormat.csv)
    assert count.data.decode().splitlines()[1:] == ["2026-01-05T00:00:00+0000,6", "2026-01-05T01:00:00+0000,0",
                                                    "2026-01-05T02:00:00+0000,1"]
    day = await call(admin.timeseries_data.download_aggregate, T0, END, RAW, [meter["id"]], timezone="Europe/Paris",
                     aggregation=Aggregation.sum, bucket_width_unit=BucketWidthUnit.day)
    # [00:00Z the 5th, 00:00Z the 6th) is [01:00, 01:00) in Paris: floored and ceiled to Paris days
    assert day.data == {key: {"2026-01-05T00:00:00+01:00": 250.0, "2026-01-06T00:00:00+01:00": None}}
    stats = (await call(admin.timeseries_data.get_stats, RAW, [meter["id"]])).data["stats"][key]
    assert stats["count"] == 7 and stats["min"] == 0.0 and stats["max"] == 100.0
    assert stats["first_timestamp"] == "2026-01-05T00:00:00+00:00"
    assert stats["last_timestamp"] == "2026-01-05T02:30:00+00:00"
    await call(admin.timeseries_data.delete, "2026-01-05T00:20:00+00:00", END, RAW, [meter["id"]])
    left = await call(admin.timeseries_data.download, T0, END, RAW, [meter["id"]])
    assert list(left.data[key].values()) == [0.0, 10.0]
    hour = await call(admin.timeseries_data.download_aggregate, T0, "2026-01-05T01:00:00+00:00", RAW, [meter["id"]],
                      aggregation=Aggregation.avg, bucket_width_unit=BucketWidthUnit.hour)
    assert hour.data == {key: {"2026-01-05T00:00:00+00:00": 5.0}}


async def test_aggregate_by_ids_in_one_statement_checks_as_find_series_does(bem: Stack, admin: Any) -> None:
    """download_aggregate by ids reads the series and their values in one statement: it answers
    as by names (two series, a repeated id, the Clean state), names unknown and malformed ids,
    and gives a user who may not read a series 403 and no values."""
    campaign, scope = await _campaign(admin, zone="UTC")
    a = await _series(admin, campaign, scope, "A")
    b = await _series(admin, campaign, scope, "B")
    await call(admin.timeseries_data.upload, RAW, {str(a["id"]): {"2026-01-05T00:10:00+00:00": 1.5,
                                                                  "2026-01-05T00:20:00+00:00": 2.0},
                                                   str(b["id"]): {"2026-01-05T02:00:00+00:00": 7}})
    await call(admin.timeseries_data.upload, CLEAN, {str(a["id"]): {"2026-01-05T01:00:00+00:00": 9}})
    params = [("start_time", T0), ("end_time", "2026-01-05T03:00:00+00:00"), ("aggregation", "avg"),
              ("bucket_width_value", "1"), ("bucket_width_unit", "hour")]

    def query(state: int, *series: object) -> list[tuple[str, str]]:
        return [*params, ("data_state", str(state)), *(("timeseries", str(s)) for s in series)]

    hours = ["2026-01-05T00:00:00+00:00", "2026-01-05T01:00:00+00:00", "2026-01-05T02:00:00+00:00"]
    status, by_ids, _ = await raw(bem, "GET", "/timeseries_data/aggregate",
                                  params=query(RAW, a["id"], b["id"], a["id"]))
    assert status == 200 and by_ids == {str(a["id"]): dict(zip(hours, [1.75, None, None], strict=True)),
                                        str(b["id"]): dict(zip(hours, [None, None, 7.0], strict=True))}
    status, by_names, _ = await raw(bem, "GET", f"/timeseries_data/campaign/{campaign['id']}/aggregate",
                                    params=query(RAW, "A", "B"))
    assert status == 200 and list(by_names.values()) == list(by_ids.values())
    status, clean, _ = await raw(bem, "GET", "/timeseries_data/aggregate", params=query(CLEAN, a["id"]))
    assert status == 200 and clean == {str(a["id"]): dict(zip(hours, [None, 9.0, None], strict=True))}
    for ids, message in (([a["id"], 2**31 - 1], f"Unknown timeseries ID(s): {2**31 - 1}"),
                         ([a["id"], "x"], "Not a valid integer: x.")):
        status, body, _ = await raw(bem, "GET", "/timeseries_data/aggregate", params=query(RAW, *ids))
        assert status == 422 and message in str(body["errors"]), body
    email = f"{unique('outsider')}@example.test"
    await call(admin.users.create, {"name": "Outsider", "email": email, "password": "outsider-pw"})
    outsider = await call(bem.client, email, "outsider-pw")
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(outsider.timeseries_data.download_aggregate, T0, END, RAW, [a["id"]],
                   aggregation=Aggregation.avg, bucket_width_value="1", bucket_width_unit=BucketWidthUnit.hour)


async def test_device_series_raw_data_is_the_attribute_and_shows_in_seed_002(bem: Stack, admin: Any) -> None:
    """A series made of a device attribute takes the thing model's unit; its uploaded Raw points
    are that attribute's samples (the seed-002 query sees them at once, the current value moves
    to the newest); a point already stored at a timestamp is kept (deduplicated as MQTT points);
    Clean data is a separate series."""
    campaign, scope = await _campaign(admin)
    product = await make_product(bem.twin)
    device = await make_device(bem.twin, product_key=product["product_key"], project_id=campaign["id"])
    assert bem.twin.app is not None
    pool = bem.twin.app[POOL]
    attribute = await pool.fetchval("SELECT a.id FROM attributes a JOIN instances i ON i.id = a.instance_id "
                                    "WHERE i.device_id = $1 AND a.name = 'total'", device["id"])
    series = await _series(admin, campaign, scope, "Water total", attribute_id=attribute)
    assert series["unit_symbol"] == "m3" and series["attribute_id"] == attribute
    await call(admin.timeseries_data.upload, RAW, {str(series["id"]): {
        "2026-01-05T00:00:00+00:00": 100.5, "2026-01-05T00:01:00+00:00": 101.25}})
    await call(admin.timeseries_data.upload, RAW, {str(series["id"]): {"2026-01-05T00:01:00+00:00": 999}})
    seconds = 1767571200  # 2026-01-05T00:00:00Z
    response = await bem.twin.get(f"/dt/open/v1/instance/attribute/{attribute}",
                                  params={"start": str(seconds), "end": str(seconds + 3600)})
    body = await response.json()
    assert response.status == 200, body
    assert sorted(body["data"]["value"][0]["dps"].values()) == [100.5, 101.25]
    assert body["data"]["value"][0]["dps"] != {}
    assert await pool.fetchval("SELECT value FROM attributes WHERE id = $1", attribute) == "101.25"
    await call(admin.timeseries_data.upload, CLEAN, {str(series["id"]): {"2026-01-05T00:00:00+00:00": 100}})
    clean = await call(admin.timeseries_data.download, T0, END, CLEAN, [series["id"]])
    assert clean.data == {str(series["id"]): {"2026-01-05T00:00:00+00:00": 100.0}}
    states = await call(admin.timeseries_datastates.getall)
    assert states.data == [{"id": 1, "name": "Raw"}, {"id": 2, "name": "Clean"}]


async def test_series_of_another_campaign_are_forbidden(bem: Stack, admin: Any) -> None:
    """A user given one campaign scope reads that scope's series and data, not another's."""
    campaign, scope = await _campaign(admin)
    other_scope = (await call(admin.campaign_scopes.create, {"name": "other", "campaign_id": campaign["id"]})).data
    readable = await _series(admin, campaign, scope, "Readable")
    hidden = await _series(admin, campaign, other_scope, "Hidden")
    email = f"{unique('ts-reader')}@example.test"
    user = (await call(admin.users.create, {"name": "R", "email": email, "password": "reader-pw"})).data
    group = (await call(admin.user_groups.create, {"name": unique("g")})).data
    await call(admin.user_by_user_groups.create, {"user_id": user["id"], "user_group_id": group["id"]})
    await call(admin.user_groups_by_campaign_scopes.create,
               {"user_group_id": group["id"], "campaign_scope_id": scope["id"]})
    reader = await call(bem.client, email, "reader-pw")
    assert [t["id"] for t in (await call(reader.timeseries.getall)).data] == [readable["id"]]
    await call(reader.timeseries_data.upload, RAW, {str(readable["id"]): {T0: 1}})
    assert (await call(reader.timeseries_data.download, T0, END, RAW, [readable["id"]])).data
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.timeseries_data.download, T0, END, RAW, [hidden["id"]])
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.timeseries.getone, hidden["id"])
    assert [s["id"] for s in (await call(reader.campaign_scopes.getall)).data] == [scope["id"]]
    with pytest.raises(BEMServerAPIAuthorizationError):
        await call(reader.campaign_scopes.getone, other_scope["id"])


async def test_seed_002_millisecond_keys_and_start_agree(bem: Stack, admin: Any) -> None:
    """A point at 1970-01-01T00:02:03.456Z (seed 003's `"time": 123456`) is keyed by 13 digits,
    and that key given back as `start` means the same instant."""
    campaign, scope = await _campaign(admin, zone="UTC")
    product = await make_product(bem.twin)
    device = await make_device(bem.twin, product_key=product["product_key"], project_id=campaign["id"])
    assert bem.twin.app is not None
    attribute = await bem.twin.app[POOL].fetchval(
        "SELECT a.id FROM attributes a JOIN instances i ON i.id = a.instance_id "
        "WHERE i.device_id = $1 AND a.name = 'total'", device["id"])
    series = await _series(admin, campaign, scope, "early", attribute_id=attribute)
    await call(admin.timeseries_data.upload, RAW, {str(series["id"]): {"1970-01-01T00:02:03.456+00:00": 7}})
    url = f"/dt/open/v1/instance/attribute/{attribute}"
    body = await (await bem.twin.get(url, params={"start": "0", "end": "0000000200000"})).json()
    assert body["data"]["value"][0]["dps"] == {"0000000123456": 7}
    again = await (await bem.twin.get(url, params={"start": "0000000123456", "end": "0000000123457"})).json()
    assert again["data"]["value"][0]["dps"] == {"0000000123456": 7}
    zero = await bem.twin.get(url, params={"start": "0h-ago"})
    assert zero.status == 400 and "start" in (await zero.json())["data"]["errors"]


async def test_aggregates_agree_whether_read_from_rollups_or_raw_points(bem: Stack, admin: Any) -> None:
    """Hour buckets (hour rollup), minute buckets (minute rollup), 10 and 20 s buckets (10 s
    rollup) and 8 s buckets (raw points) give the values computed here from the uploaded points,
    for every aggregation."""
    campaign, scope = await _campaign(admin, zone="UTC")
    meter = await _series(admin, campaign, scope, "Mixed")
    points = {i * 7: (i * 37 % 101) / 4 for i in range(1, 1000)}  # seconds after T0 -> value
    await call(admin.timeseries_data.upload, RAW, {str(meter["id"]): {
        f"2026-01-05T{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}+00:00": v for s, v in points.items()}})
    end = "2026-01-05T02:00:00+00:00"
    for width, unit, seconds in (("1", BucketWidthUnit.hour, 3600), ("1", BucketWidthUnit.minute, 60),
                                 ("30", BucketWidthUnit.second, 30), ("10", BucketWidthUnit.second, 10),
                                 ("20", BucketWidthUnit.second, 20), ("8", BucketWidthUnit.second, 8)):
        buckets: dict[int, list[float]] = {}
        for second, value in points.items():
            buckets.setdefault(second // seconds * seconds, []).append(value)
        for aggregation, expect in ((Aggregation.sum, sum), (Aggregation.count, len), (Aggregation.min, min),
                                    (Aggregation.max, max), (Aggregation.avg, lambda v: sum(v) / len(v))):
            got = (await call(admin.timeseries_data.download_aggregate, T0, end, RAW, [meter["id"]],
                              aggregation=aggregation, bucket_width_value=width,
                              bucket_width_unit=unit)).data[str(meter["id"])]
            values = list(got.values())
            assert len(values) == 7200 // seconds
            for index, value in enumerate(values):
                held = buckets.get(index * seconds)
                if held is None:
                    assert value == (0 if aggregation is Aggregation.count else None)
                else:
                    assert value == pytest.approx(expect(held)), (unit, aggregation, index)


async def test_raw_retention_answers_whole_minutes_from_rollups_and_names_start_time_otherwise(
        bem: Stack, admin: Any) -> None:
    """Past the campaign's raw horizon: hour and minute aggregates still answer (the rollups
    stay), raw downloads and 10 s buckets are a 422 naming start_time; CSV and JSON agree."""
    campaign, scope = await _campaign(admin, zone="UTC")
    meter = await _series(admin, campaign, scope, "Kept")
    points = {f"2026-01-05T{h:02d}:{m:02d}:{s:02d}+00:00": h * 100 + m + s / 4
              for h in range(3) for m in range(60) for s in (0, 10, 25)}
    await call(admin.timeseries_data.upload, RAW, {str(meter["id"]): points})
    end = "2026-01-05T03:00:00+00:00"
    before = {unit: (await call(admin.timeseries_data.download_aggregate, T0, end, RAW, [meter["id"]],
                                bucket_width_value=1, bucket_width_unit=unit)).data
              for unit in (BucketWidthUnit.hour, BucketWidthUnit.minute)}
    assert list(before[BucketWidthUnit.hour][str(meter["id"])].values()) == [
        pytest.approx(sum(v for k, v in points.items() if k[11:13] == f"{h:02d}") / 180) for h in range(3)]
    pool = bem.twin.app[POOL]
    horizon = 1_767_574_800_000  # 2026-01-05T01:00:00Z
    await pool.execute("INSERT INTO ts_retention (project_id, raw_kept_from) VALUES ($1, $2)",
                       campaign["id"], horizon)
    await pool.execute("DELETE FROM samples WHERE attribute_id = $1 AND ts < $2", meter["id"], horizon)
    for unit, answer in before.items():
        again = await call(admin.timeseries_data.download_aggregate, T0, end, RAW, [meter["id"]],
                           bucket_width_value=1, bucket_width_unit=unit)
        assert again.data == answer
    csv_hours = await call(admin.timeseries_data.download_aggregate, T0, end, RAW, [meter["id"]],
                           bucket_width_value=1, bucket_width_unit=BucketWidthUnit.hour, format=DataFormat.csv)
    rows = list(csv.reader(io.StringIO(csv_hours.data.decode())))
    assert rows[0] == ["Datetime", str(meter["id"])]
    assert [float(r[1]) for r in rows[1:]] == list(before[BucketWidthUnit.hour][str(meter["id"])].values())
    for path, extra in (("/timeseries_data/", {}),
                        ("/timeseries_data/aggregate", {"bucket_width_value": 10, "bucket_width_unit": "second"})):
        status, body, _ = await raw(bem, "GET", path, params={
            "start_time": T0, "end_time": end, "data_state": RAW, "timeseries": meter["id"], **extra})
        assert status == 422 and "raw retention" in body["errors"]["query"]["start_time"][0], body
    status, _, _ = await raw(bem, "GET", "/timeseries_data/", params={
        "start_time": "2026-01-05T01:00:00+00:00", "end_time": end, "data_state": RAW, "timeseries": meter["id"]})
    assert status == 200


async def test_long_aggregates_read_in_index_order_equal_the_points_with_gaps_zones_and_late_points(
        bem: Stack, admin: Any) -> None:
    """More than 2,000 buckets of a rollup's own width are read per series in index order (issue
    16): two series at once, one with a two-hour gap, in a half-hour zone with a start off the
    grid, give the values computed here from the uploaded points, before and after late points
    land in buckets that already had some."""
    campaign, scope = await _campaign(admin, zone="Asia/Kolkata")
    dense = await _series(admin, campaign, scope, "Dense")
    gappy = await _series(admin, campaign, scope, "Gappy")
    points = {"dense": {s: (s * 37 % 101) / 4 for s in range(0, 8 * 3600, 3)},
              "gappy": {s: (s * 13 % 89) / 8 for s in range(1, 8 * 3600, 7) if not 3 * 3600 <= s < 5 * 3600}}
    ids = {"dense": dense["id"], "gappy": gappy["id"]}

    def stamp(second: int) -> str:
        return f"2026-01-05T{second // 3600:02d}:{second % 3600 // 60:02d}:{second % 60:02d}+00:00"

    async def upload(values: dict[str, dict[int, float]]) -> None:
        await call(admin.timeseries_data.upload, RAW, {
            str(ids[name]): {stamp(s): v for s, v in series.items()} for name, series in values.items()})

    async def check() -> None:
        start, end = "2026-01-05T05:30:04+05:30", "2026-01-05T13:30:00+05:30"  # 00:00:04 to 08:00 UTC
        for width, unit, seconds in (("10", BucketWidthUnit.second, 10), ("1", BucketWidthUnit.minute, 60)):
            for aggregation, expect in ((Aggregation.avg, lambda v: sum(v) / len(v)), (Aggregation.count, len),
                                        (Aggregation.max, max)):
                got = (await call(admin.timeseries_data.download_aggregate, start, end, RAW,
                                  [ids["dense"], ids["gappy"]], timezone="Asia/Kolkata", aggregation=aggregation,
                                  bucket_width_value=width, bucket_width_unit=unit)).data
                for name, series in points.items():
                    buckets: dict[int, list[float]] = {}
                    for second, value in series.items():  # floor(start) is 00:00:00 UTC: every point counts
                        buckets.setdefault(second // seconds * seconds, []).append(value)
                    values = list(got[str(ids[name])].values())
                    assert len(values) == 8 * 3600 // seconds
                    assert next(iter(got[str(ids[name])])) == "2026-01-05T05:30:00+05:30"
                    for index, value in enumerate(values):
                        held = buckets.get(index * seconds)
                        if held is None:
                            assert value == (0 if aggregation is Aggregation.count else None), (name, index)
                        else:
                            assert value == pytest.approx(expect(held)), (name, unit, aggregation, index)

    await upload(points)
    await check()
    late = {"dense": {4: 100.0, 3 * 3600 + 1: -50.0}, "gappy": {3: 7.5, 4 * 3600 + 1: 12.25}}
    for name, series in late.items():
        points[name].update(series)
    await upload(late)
    await check()
