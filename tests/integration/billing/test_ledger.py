"""The per-meter ledger on the real RabbitMQ and MongoDB: every double-billing path of issue #11
bills each unit of consumption once (out-of-order periods, a re-run run, a crontab edit, a time
zone moved east, concurrent workers and redelivery, a catch-up of many periods)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from twinbill_billing.app import create_app
from twinbill_billing.settings import BillingSettings
from twinbill_common.schemas.billing import RunBilling
from twinbill_common.topology import BILLING

from .conftest import Billing, serve
from .fake_twin import TwinData, meter
from .test_billing_run import PROJECT, create_tariff, finished_run, ms

D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")
TOKYO = ZoneInfo("Asia/Tokyo")


def local(year: int, month: int, day: int = 1, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(year, month, day, tzinfo=zone).astimezone(UTC)


def run(run_id: str, start: datetime, end: datetime) -> RunBilling:
    return RunBilling(run_id=run_id, project_id=PROJECT, device_type=2, task_key=run_id.split(":")[0],
                      period_start=start, period_end=end, fire_time=end)


async def flat_tariff(billing: Billing) -> None:
    await create_tariff(billing, {"project_id": PROJECT, "device_type": 2, "kind": "flat",
                                  "unit_price": "0.55", "effective_from": "2000-01-01T00:00:00Z"})


def daily_meter(data: TwinData, device_id: int, *, first: datetime, days: int, per_day: str = "1.5",
                start_value: str = "100") -> None:
    """A meter read every day at noon UTC from `first` for `days` days, `per_day` units a day."""
    data.add_device(PROJECT, meter(device_id))
    value = D(start_value)
    for day in range(days):
        data.add_reading(device_id, ms(first + timedelta(days=day, hours=12)), str(value))
        value += D(per_day)


async def bills_of(billing: Billing, device_id: int) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = await billing.db.bills.find(
        {"project_id": PROJECT, "device_id": device_id, "kind": "bill", "status": "issued"}).sort(
        "from_time", 1).to_list()
    return docs


def assert_chain(bills: list[dict[str, Any]]) -> None:
    """Each bill opens where the previous one closed: reading and time."""
    for before, after in pairwise(bills):
        assert after["from_time"] == before["to_time"], (before["to_time"], after["from_time"])
        assert after["opening_reading"] == before["closing_reading"]


def billed(bills: list[dict[str, Any]]) -> Decimal:
    return sum((D(b["consumption"]) for b in bills), D(0))


async def publish_and_finish(billing: Billing, *runs: RunBilling) -> None:
    for message in runs:
        await billing.bus.publish(BILLING, "run.requested", message)
    for message in runs:
        await finished_run(billing, message.run_id)


async def test_out_of_order_periods_and_a_rerun_bill_each_unit_once(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """After December's bill: March, then January, then February, then January re-run after its
    records were deleted. The chain has no overlap and bills exactly last - first (the issue's
    100 + 200 + 100 where 300 was consumed)."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    daily_meter(data, 1, first=local(2023, 11, 29), days=130)
    await flat_tariff(billing)
    await publish_and_finish(billing, run("t:12", local(2023, 12), local(2024, 1)))
    jan, feb, mar = (run(f"t:{m}", local(2024, m), local(2024, m + 1)) for m in (1, 2, 3))
    await publish_and_finish(billing, mar)
    await publish_and_finish(billing, jan)
    await publish_and_finish(billing, feb)
    for name in ("run_jobs", "run_chunks"):
        await billing.db[name].delete_many({"run_id": jan.run_id})
    await billing.db.runs.delete_one({"_id": jan.run_id})
    await publish_and_finish(billing, jan)  # the README's "re-run a run"
    bills = await bills_of(billing, 1)
    assert_chain(bills)
    first = data.last_at_or_before(1, ms(local(2023, 12)))
    last = data.last_at_or_before(1, ms(local(2024, 4)))
    assert first is not None and last is not None
    assert billed(bills) == D(last[1]) - D(first[1])
    # March (processed first) opened at December's bill: a catch-up from January 1, priced per month.
    assert len(bills) == 2 and bills[1]["catch_up"] and len(bills[1]["periods"]) == 3
    assert bills[1]["from_time"] == local(2024, 1)
    assert sum(D(p["consumption"]) for p in bills[1]["periods"]) == D(bills[1]["consumption"])
    rerun = await billing.db.runs.find_one({"_id": jan.run_id})
    assert rerun["summary"]["billed"] == 1 and rerun["summary"]["newly_billed"] == 0


async def test_crontab_edit_after_a_bill_opens_at_the_chain_end(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """Day 1 -> day 15 after January's bill: the next bill runs from February 1 (not from an older
    bill, not from February 15) and the months after follow the chain."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    daily_meter(data, 1, first=local(2023, 12, 30), days=120, per_day="2.25")
    await flat_tariff(billing)
    await publish_and_finish(billing, run("a:1", local(2024, 1), local(2024, 2)))
    await publish_and_finish(billing, run("b:1", local(2024, 2, 15), local(2024, 3, 15)))
    await publish_and_finish(billing, run("b:2", local(2024, 3, 15), local(2024, 4, 15)))
    await publish_and_finish(billing, run("a:2", local(2024, 2), local(2024, 3)))  # the old task, late
    bills = await bills_of(billing, 1)
    assert_chain(bills)
    assert [b["from_time"] for b in bills] == [local(2024, 1), local(2024, 2), local(2024, 3, 15)]
    assert bills[1]["requested_from"] == local(2024, 2, 15)
    first = data.last_at_or_before(1, ms(local(2024, 1)))
    last = data.last_at_or_before(1, ms(local(2024, 4, 15)))
    assert first is not None and last is not None
    assert billed(bills) == D(last[1]) - D(first[1])


async def test_time_zone_moved_east_shortens_the_overlap(
        billing: Billing, twin: tuple[TwinData, str]) -> None:
    """February in Shanghai, then the project moves to Tokyo: March in Tokyo starts an hour before
    the chain end, so it is shortened to start there; February re-run in Tokyo is covered."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    data.add_device(PROJECT, meter(1))
    for hour in range(24 * 70):
        data.add_reading(1, ms(local(2024, 1, 31) + timedelta(hours=hour)), str(D(1000) + hour))
    await flat_tariff(billing)
    await publish_and_finish(billing, run("sh:2", local(2024, 2), local(2024, 3)))
    data.timezones[PROJECT] = "Asia/Tokyo"
    await publish_and_finish(billing, run("tk:3", local(2024, 3, 1, TOKYO), local(2024, 4, 1, TOKYO)))
    await publish_and_finish(billing, run("tk:2", local(2024, 2, 1, TOKYO), local(2024, 3, 1, TOKYO)))
    bills = await bills_of(billing, 1)
    assert_chain(bills)
    assert len(bills) == 2
    assert bills[1]["from_time"] == local(2024, 3) and "shortened" in bills[1]["flags"]
    first = data.last_at_or_before(1, ms(local(2024, 2)))
    last = data.last_at_or_before(1, ms(local(2024, 4, 1, TOKYO)))
    assert first is not None and last is not None
    assert billed(bills) == D(last[1]) - D(first[1])
    tk2 = await billing.db.runs.find_one({"_id": "tk:2"})
    assert tk2["summary"]["billed"] == 1 and tk2["summary"]["newly_billed"] == 0


@pytest.fixture
async def second_worker(billing_settings: BillingSettings) -> AsyncIterator[None]:
    """Another billing replica on the same database and bus namespace (jobs only)."""
    settings = billing_settings.model_copy(update={"consume_runs": False, "job_prefetch": 4})
    runner, _ = await serve(create_app(settings))
    yield
    await runner.cleanup()


async def test_concurrent_workers_catch_up_and_redelivery_bill_each_unit_once(
        billing: Billing, twin: tuple[TwinData, str], second_worker: None) -> None:
    """Twelve monthly runs published at once, each twice, on two replicas: 30 meters, each of
    whose chains has no gap and no overlap and bills exactly last - first."""
    data, _ = twin
    data.timezones[PROJECT] = "Asia/Shanghai"
    for device_id in range(1, 31):
        daily_meter(data, device_id, first=local(2023, 12, 30), days=380, per_day=f"{device_id}.125")
    await flat_tariff(billing)
    months = [run(f"c:{m}", local(2024, m), local(2024 + m // 12, m % 12 + 1)) for m in range(1, 13)]
    for message in months + months[::-1]:
        await billing.bus.publish(BILLING, "run.requested", message)
    for message in months:
        await finished_run(billing, message.run_id, timeout=120)
    for device_id in range(1, 31):
        bills = await bills_of(billing, device_id)
        assert_chain(bills)
        first = data.last_at_or_before(device_id, ms(local(2024, 1)))
        last = data.last_at_or_before(device_id, ms(local(2025, 1)))
        assert first is not None and last is not None
        assert billed(bills) == D(last[1]) - D(first[1]), device_id
        assert bills[-1]["to_time"] == local(2025, 1)
    summaries = [(await billing.db.runs.find_one({"_id": m.run_id}))["summary"] for m in months]
    assert sum(s["newly_billed"] for s in summaries) == await billing.db.bills.count_documents({})
