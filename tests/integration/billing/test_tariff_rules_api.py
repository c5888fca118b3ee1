"""Tariffs as utilities publish them, over the tariff HTTP API and the MongoDB wire server:
accumulation windows with reset dates, seasons, standing charges, rounding rules, and the errors
that name each bad field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId

from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import accumulation_window, price_consumption
from twinbill_billing.tariffs import to_domain
from twinbill_common.schemas.billing import RunBilling
from twinbill_common.topology import BILLING

from .conftest import Billing, wait_for
from .fake_twin import TwinData, meter
from .test_tariffs_api import call

D = Decimal
PROJECT = 7
BEIJING_WATER = {
    "project_id": PROJECT, "device_type": 1, "water_meter_kind": "tap", "name": "Beijing residential water",
    "kind": "tiered", "effective_from": "2024-01-01T00:00:00+08:00",
    "blocks": [{"up_to": "180", "price": "5"}, {"up_to": "260", "price": "7"}, {"up_to": None, "price": "9"}],
    "accumulation_period": "year", "reset_month": 1, "reset_day": 1,
}
SEASONAL_POWER = {
    "project_id": PROJECT, "device_type": 2, "name": "summer / non-summer", "kind": "flat",
    "effective_from": "2024-01-01T00:00:00+08:00", "timezone": "Asia/Shanghai",
    "seasons": [{"name": "summer", "from_month": 6, "to_month": 9, "unit_price": "0.60"},
                {"name": "non-summer", "from_month": 10, "to_month": 5, "unit_price": "0.50"}],
    "standing_charge": "12.50", "rounding": "line", "rounding_mode": "half_even",
}


async def test_annual_blocks_take_the_project_zone_and_price_after_a_round_trip(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """A tariff with a reset date and no timezone gets the project's zone from the twin; the stored
    document prices a May bill with year-to-date 170 m3 as published (10 x 5 + 15 x 7)."""
    twin[0].timezones[PROJECT] = "Asia/Shanghai"
    status, created, _ = await call(billing, "POST", "/api/v1/tariffs/", BEIJING_WATER)
    assert status == 201, created
    assert {k: created[k] for k in ("accumulation_period", "reset_month", "reset_day", "timezone", "standing_charge",
                                    "seasons", "rounding", "rounding_mode")} == {
        "accumulation_period": "year", "reset_month": 1, "reset_day": 1, "timezone": "Asia/Shanghai",
        "standing_charge": "0", "seasons": [], "rounding": "total", "rounding_mode": "half_up"}
    status, got, _ = await call(billing, "GET", f"/api/v1/tariffs/{created['id']}")
    assert status == 200 and got == created
    stored = await billing.db.tariffs.find_one({"_id": ObjectId(created["id"])})
    tariff = to_domain(stored)
    may = Period(datetime(2024, 4, 30, 16, tzinfo=UTC), datetime(2024, 5, 31, 16, tzinfo=UTC))
    assert accumulation_window(tariff, may.start) == (datetime(2023, 12, 31, 16, tzinfo=UTC),
                                                      datetime(2024, 12, 31, 16, tzinfo=UTC))
    charge = price_consumption(D("25"), tariffs=[tariff], period=may, accumulated_before=D("170"))
    assert charge.amount == D("155.00")


async def test_seasonal_tariff_with_standing_charge_and_line_rounding(billing: Billing) -> None:
    """Seasons, standing charge, rounding rule and mode are stored, read back and replaced by PUT."""
    status, created, _ = await call(billing, "POST", "/api/v1/tariffs/", SEASONAL_POWER)
    assert status == 201, created
    assert created["seasons"] == [
        {"name": "summer", "from_month": 6, "to_month": 9, "unit_price": "0.60", "blocks": []},
        {"name": "non-summer", "from_month": 10, "to_month": 5, "unit_price": "0.50", "blocks": []}]
    assert (created["standing_charge"], created["rounding"], created["rounding_mode"]) == ("12.50", "line",
                                                                                           "half_even")
    assert created["accumulation_period"] == "billing_period" and created["unit_price"] is None
    update = {k: v for k, v in SEASONAL_POWER.items() if k not in ("project_id", "device_type")}
    update.update(rounding="total", timezone=None)  # timezone left out: the stored one stays
    status, updated, _ = await call(billing, "PUT", f"/api/v1/tariffs/{created['id']}", update)
    assert status == 200, updated
    assert updated["rounding"] == "total" and updated["timezone"] == "Asia/Shanghai"
    stored = await billing.db.tariffs.find_one({"_id": ObjectId(created["id"])})
    charge = price_consumption(D("300"), tariffs=[to_domain(stored)],
                               period=Period(datetime(2024, 9, 15, 16, tzinfo=UTC),
                                             datetime(2024, 10, 15, 16, tzinfo=UTC)))
    assert charge.amount == D("177.50")  # 150 x 0.60 + 150 x 0.50 + 12.50


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    ("a year window without a reset date", {"reset_month": None, "reset_day": None}, "reset_day", "reset date"),
    ("a year window without its month", {"reset_month": None}, "reset_month", "reset_month"),
    ("a quarter window without a reset date", {"accumulation_period": "quarter", "reset_day": None},
     "reset_day", "reset date"),
    ("a monthly window given a month", {"accumulation_period": "month"}, "reset_month", "every month"),
    ("a reset date without a window", {"accumulation_period": "billing_period"}, "reset_day", "only a month"),
    ("a reset day past 28", {"reset_day": 31}, "reset_day", "less than or equal to 28"),
    ("an unknown accumulation period", {"accumulation_period": "decade"}, "accumulation_period", "billing_period"),
    ("an unknown time zone", {"timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
    ("a negative block price", {"blocks": [{"up_to": "180", "price": "5"}, {"up_to": None, "price": "-7"}]},
     "blocks[1].price", "greater than or equal to 0"),
    ("blocks out of order", {"blocks": [{"up_to": "260", "price": "5"}, {"up_to": "180", "price": "7"},
                                        {"up_to": None, "price": "9"}]}, "blocks", "must increase"),
    ("an open block before the last", {"blocks": [{"up_to": None, "price": "5"}, {"up_to": None, "price": "7"}]},
     "blocks", "only the last block"),
    ("a negative standing charge", {"standing_charge": "-1"}, "standing_charge", "greater than or equal to 0"),
    ("an unknown rounding rule", {"rounding": "per_page"}, "rounding", "'total' or 'line'"),
    ("an unknown rounding mode", {"rounding_mode": "bankers"}, "rounding_mode", "half_up"),
    ("seasons that overlap",
     {"blocks": [], "seasons": [
         {"name": "summer", "from_month": 6, "to_month": 9, "blocks": [{"up_to": None, "price": "1"}]},
         {"name": "rest", "from_month": 9, "to_month": 5, "blocks": [{"up_to": None, "price": "1"}]}]},
     "seasons", "month 9 is in both 'summer' and 'rest'"),
    ("seasons that leave months out",
     {"blocks": [], "seasons": [
         {"name": "summer", "from_month": 6, "to_month": 9, "blocks": [{"up_to": None, "price": "1"}]},
         {"name": "winter", "from_month": 11, "to_month": 3, "blocks": [{"up_to": None, "price": "1"}]}]},
     "seasons", "months 4, 5, 10 are in no season"),
    ("a season with a negative price",
     {"kind": "flat", "blocks": [], "seasons": [
         {"name": "all", "from_month": 1, "to_month": 12, "unit_price": "-0.5"}]},
     "seasons[0].unit_price", "greater than or equal to 0"),
    ("a season's blocks out of order",
     {"blocks": [], "seasons": [
         {"name": "all", "from_month": 1, "to_month": 12,
          "blocks": [{"up_to": "20", "price": "1"}, {"up_to": "10", "price": "2"}, {"up_to": None, "price": "3"}]}]},
     "seasons[0].blocks", "must increase"),
    ("prices both on the tariff and its seasons",
     {"seasons": [{"name": "all", "from_month": 1, "to_month": 12, "blocks": [{"up_to": None, "price": "1"}]}]},
     "blocks", "each season has its blocks"),
    ("a month out of range", {"blocks": [], "seasons": [
        {"name": "x", "from_month": 0, "to_month": 12, "blocks": [{"up_to": None, "price": "1"}]}]},
     "seasons[0].from_month", "greater than or equal to 1"),
]


@pytest.mark.parametrize(("case", "change", "field", "why"), BAD, ids=[case for case, *_ in BAD])
async def test_bad_tariff_is_refused_naming_the_field(billing: Billing, twin: tuple[TwinData, str], case: str,
                                                      change: dict[str, Any], field: str, why: str) -> None:
    """422 with errors.json[field] saying why, on create and on update; nothing is stored."""
    twin[0].timezones[PROJECT] = "Asia/Shanghai"
    body = {**BEIJING_WATER, **change}
    status, answer, _ = await call(billing, "POST", "/api/v1/tariffs/", body)
    assert status == 422, (case, answer)
    assert answer["status"] == "Unprocessable Entity"
    assert field in answer["errors"]["json"], (case, answer)
    assert why in json.dumps(answer["errors"]["json"][field]), (case, answer)
    assert await billing.db.tariffs.count_documents({}) == 0
    status, good, _ = await call(billing, "POST", "/api/v1/tariffs/", BEIJING_WATER)
    assert status == 201, good
    update = {k: v for k, v in body.items() if k not in ("project_id", "device_type")}
    status, answer, _ = await call(billing, "PUT", f"/api/v1/tariffs/{good['id']}", update)
    assert status == 422 and field in answer["errors"]["json"], (case, answer)
    status, again, _ = await call(billing, "GET", f"/api/v1/tariffs/{good['id']}")
    assert again == good


async def test_a_window_needs_a_zone_the_twin_can_give(billing: Billing) -> None:
    """Reset dates without timezone for a project the twin does not know: 422 naming timezone;
    with an explicit zone the same tariff is accepted."""
    status, answer, _ = await call(billing, "POST", "/api/v1/tariffs/", BEIJING_WATER)
    assert status == 422 and "timezone" in answer["errors"]["json"], answer
    explicit = {**BEIJING_WATER, "timezone": "Asia/Shanghai"}
    status, created, _ = await call(billing, "POST", "/api/v1/tariffs/", explicit)
    assert status == 201 and created["timezone"] == "Asia/Shanghai"


async def test_overlapping_annual_tariffs_conflict(billing: Billing) -> None:
    """Two annual tariffs in force at once for the same project, type and kind: 409, as for any tariff."""
    body = {**BEIJING_WATER, "timezone": "Asia/Shanghai"}
    new_year = "2025-01-01T00:00:00+08:00"
    status, first, _ = await call(billing, "POST", "/api/v1/tariffs/", {**body, "effective_to": new_year})
    assert status == 201, first
    mid_year = {**body, "effective_from": "2024-07-01T00:00:00+08:00"}
    status, answer, _ = await call(billing, "POST", "/api/v1/tariffs/", mid_year)
    assert status == 409 and first["id"] in answer["message"]
    status, _, _ = await call(billing, "POST", "/api/v1/tariffs/", {**body, "effective_from": new_year})
    assert status == 201


async def test_a_bill_shows_its_lines_charges_tariff_snapshot_and_accumulation(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """A billing run under a seasonal tariff with a standing charge: the stored bill carries
    charge_detail with each line, the standing charge, the tariff snapshot and its windows."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    start, end = datetime(2024, 9, 15, 16, tzinfo=UTC), datetime(2024, 10, 15, 16, tzinfo=UTC)
    data.add_device(PROJECT, meter(1))
    data.add_reading(1, int(start.timestamp() * 1000), "1000")
    data.add_reading(1, int((end - timedelta(minutes=1)).timestamp() * 1000), "1300")
    status, tariff, _ = await call(billing, "POST", "/api/v1/tariffs/", SEASONAL_POWER)
    assert status == 201, tariff
    run_id = "seasons:1"
    await billing.bus.publish(BILLING, "run.requested", RunBilling(
        run_id=run_id, project_id=PROJECT, device_type=2, task_key="seasons", period_start=start,
        period_end=end, fire_time=end))

    async def bill() -> dict[str, Any] | None:
        found: dict[str, Any] | None = await billing.db.bills.find_one({"run_id": run_id})
        return found

    stored = await wait_for(bill, what="the bill")
    assert stored["charge"] == "177.50"
    detail = stored["charge_detail"]
    assert [(ln["season"], ln["quantity"], ln["unit_price"], ln["amount"]) for ln in detail["lines"]] == [
        ("summer", "150", "0.60", "90.00"), ("non-summer", "150", "0.50", "75.00")]
    assert [(c["kind"], c["share"], c["amount"]) for c in detail["charges"]] == [("standing", "1/1", "12.50")]
    assert detail["tariffs"][0]["id"] == tariff["id"] and detail["tariffs"][0]["seasons"][0]["name"] == "summer"
    assert detail["accumulation"] == [] and detail["accumulated_before"] == "0"
