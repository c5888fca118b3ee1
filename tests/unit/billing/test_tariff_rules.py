"""Tariffs as utilities publish them: accumulation windows and annual blocks (seasons, standing charges
and rounding are in test_tariff_seasons.py).

Worked examples use Beijing's published residential tariffs (annual blocks, billed monthly):
water 0-180 m3 a year at 5 CNY/m3, 181-260 at 7, above 260 at 9; electricity 0-2880 kWh a
year at 0.4883 CNY/kWh, 2881-4800 at 0.5383, above 4800 at 0.7883. Years reset on 1 January,
Asia/Shanghai time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.billing.tariffs import (
    EPOCH,
    POWER_BLOCKS,
    WATER_BLOCKS,
    D,
    annual,
    flat,
    local,
    month_period,
    year_to_date,
)
from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import (
    Block,
    Tariff,
    TariffError,
    accumulation_window,
    price_blocks,
    price_consumption,
)

# --- accumulation windows ---------------------------------------------------------------------


@pytest.mark.parametrize(("period", "reset_month", "reset_day", "at", "window"), [
    ("year", 1, 1, local(2024, 5, 17), (local(2024, 1, 1), local(2025, 1, 1))),
    ("year", 1, 1, local(2024, 1, 1), (local(2024, 1, 1), local(2025, 1, 1))),  # the reset instant opens
    ("year", 7, 1, local(2024, 5, 17), (local(2023, 7, 1), local(2024, 7, 1))),  # a water year
    ("year", 7, 1, local(2024, 7, 1), (local(2024, 7, 1), local(2025, 7, 1))),
    ("month", None, 15, local(2024, 3, 14), (local(2024, 2, 15), local(2024, 3, 15))),
    ("month", None, 15, local(2024, 12, 20), (local(2024, 12, 15), local(2025, 1, 15))),
    ("quarter", 1, 1, local(2024, 5, 17), (local(2024, 4, 1), local(2024, 7, 1))),
    ("quarter", 2, 1, local(2024, 1, 10), (local(2023, 11, 1), local(2024, 2, 1))),
])
def test_accumulation_window_is_read_in_the_tariff_time_zone(
        period: str, reset_month: int | None, reset_day: int, at: datetime,
        window: tuple[datetime, datetime]) -> None:
    """Windows start on the reset date at local midnight; the reset instant belongs to the new one."""
    tariff = Tariff(id="w", kind="flat", unit_price=D(1), effective_from=EPOCH, timezone="Asia/Shanghai",
                    accumulation_period=period, reset_month=reset_month,  # type: ignore[arg-type]
                    reset_day=reset_day)
    assert accumulation_window(tariff, at) == window
    # 1 January 00:30 in Beijing is still 31 December in UTC: the zone decides.
    assert accumulation_window(annual(), datetime(2023, 12, 31, 16, 30, tzinfo=UTC)) == (
        local(2024, 1, 1), local(2025, 1, 1))


def test_billing_period_blocks_have_no_window() -> None:
    """accumulation_period billing_period: None (blocks reset every bill)."""
    assert accumulation_window(flat("1"), local(2024, 1, 1)) is None


def test_a_window_without_a_reset_date_is_an_error() -> None:
    """A domain tariff that slipped past validation fails the device, with the reason."""
    broken = Tariff(id="x", kind="tiered", blocks=WATER_BLOCKS, effective_from=EPOCH,
                    accumulation_period="year")
    with pytest.raises(TariffError, match="reset date"):
        price_consumption(D(1), tariffs=[broken], period=month_period(2024, 1))


# --- published tariffs to the cent -------------------------------------------------------------


@pytest.mark.parametrize(("before", "consumption", "total", "line"), [
    ("0", "15", "75.00", "75.00"),            # all in block 1
    ("170", "25", "155.00", "155.00"),        # 10 x 5 + 15 x 7
    ("250", "30.5", "254.50", "254.50"),      # 10 x 7 + 20.5 x 9
    ("170", "100", "700.00", "700.00"),       # 10 x 5 + 80 x 7 + 10 x 9: all three blocks
    ("300", "12.34", "111.06", "111.06"),     # year-to-date past the top: all at 9
])
def test_beijing_water_monthly_bill_with_year_to_date(before: str, consumption: str, total: str,
                                                      line: str) -> None:
    """Beijing water, a May bill: the blocks continue from the year-to-date consumption."""
    for rounding, expected in (("total", total), ("line", line)):
        charge = price_consumption(D(consumption), tariffs=[annual(rounding=rounding)],
                                   period=month_period(2024, 5), accumulated_before=D(before))
        assert str(charge.amount) == expected
        assert charge.accumulated_before == D(before)
        assert [(u.accumulated_before, u.consumption) for u in charge.accumulation] == [
            (D(before), D(consumption))]


@pytest.mark.parametrize(("before", "consumption", "total", "line", "lines"), [
    ("2800", "80.1", "39.12", "39.11", [("39.064", "39.06"), ("0.05383", "0.05")]),
    ("2800", "85.0", "41.76", "41.75", [("39.064", "39.06"), ("2.6915", "2.69")]),
    ("0", "250", "122.08", "122.08", [("122.075", "122.08")]),  # a single line: same either way
    ("4700", "200", "132.66", "132.66", [("53.83", "53.83"), ("78.83", "78.83")]),
])
def test_beijing_electricity_rounding_total_or_per_line(before: str, consumption: str, total: str, line: str,
                                                       lines: list[tuple[str, str]]) -> None:
    """Electricity 0.4883/0.5383/0.7883: a bill printed per block line rounds each line half-up,
    which can differ by a cent from rounding the sum once."""
    by_total = price_consumption(D(consumption), tariffs=[annual(POWER_BLOCKS)], period=month_period(2024, 9),
                                 accumulated_before=D(before))
    by_line = price_consumption(D(consumption), tariffs=[annual(POWER_BLOCKS, rounding="line")],
                                period=month_period(2024, 9), accumulated_before=D(before))
    assert str(by_total.amount) == total
    assert str(by_line.amount) == line
    assert [(doc["exact_amount"], doc["amount"]) for doc in by_line.to_document()["lines"]] == lines
    assert [line.rounded for line in by_total.lines] == [None] * len(lines)


def test_block_lines_show_bounds_quantity_price_amount() -> None:
    """Each block line of a bill: block number, bounds as applied, quantity, unit price, amount."""
    charge = price_consumption(D("100"), tariffs=[annual()], period=month_period(2024, 10),
                               accumulated_before=D("170"))
    doc = charge.to_document()
    assert [(ln["block"], ln["lower"], ln["upper"], ln["quantity"], ln["unit_price"], ln["amount"])
            for ln in doc["lines"]] == [
        (1, "0", "180", "10", "5", "50.00"),
        (2, "180", "260", "80", "7", "560.00"),
        (3, "260", None, "10", "9", "90.00"),
    ]
    assert doc["amount"] == "700.00" and doc["amount_minor"] == 70000
    assert doc["accumulated_before"] == "170"
    assert doc["accumulation"] == [{"window_start": "2023-12-31T16:00:00+00:00",
                                    "window_end": "2024-12-31T16:00:00+00:00",
                                    "accumulated_before": "170", "consumption": "100"}]
    assert doc["tariffs"][0]["accumulation_period"] == "year"
    assert doc["tariffs"][0]["blocks"][0] == {"up_to": "180", "price": "5"}
    assert doc["tariffs"][0]["effective_from"] == "2000-01-01T00:00:00+00:00"


def test_to_document_is_json_safe() -> None:
    """Only str, int, None, lists and dicts: the same document goes to JSON and to BSON."""
    import json

    charge = price_consumption(D("10"), tariffs=[flat("1", until=local(2024, 1, 11, ), tid="a"),
                                                  annual(since=local(2024, 1, 11), standing="3")],
                               period=month_period(2024, 1))
    doc = charge.to_document()
    assert json.loads(json.dumps(doc)) == doc


# --- twelve monthly bills equal one annual bill ------------------------------------------------


def bill_year(monthly: list[Decimal], tariff: Tariff) -> tuple[list[dict[str, Any]], list[Decimal]]:
    """Twelve monthly bills, each carrying the year-to-date from the earlier bills' documents."""
    docs: list[dict[str, Any]] = []
    amounts: list[Decimal] = []
    for month, consumption in enumerate(monthly, start=1):
        period = month_period(2024, month)
        before = year_to_date(docs, accumulation_window(tariff, period.start))
        charge = price_consumption(consumption, tariffs=[tariff], period=period, accumulated_before=before)
        docs.append(charge.to_document())
        amounts.append(charge.amount)
    return docs, amounts


def test_twelve_beijing_water_bills_equal_the_annual_tariff() -> None:
    """25 m3 a month: months 1-7 at 5, month 8 straddles 180, 11 straddles 260, December at 9."""
    docs, amounts = bill_year([D(25)] * 12, annual())
    assert [str(a) for a in amounts] == ["125.00"] * 7 + ["165.00", "175.00", "175.00", "205.00", "225.00"]
    assert sum(amounts) == D("1820.00") == D(180 * 5 + 80 * 7 + 40 * 9)
    assert docs[-1]["accumulated_before"] == "275"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.decimals(min_value=0, max_value=120, places=2), min_size=12, max_size=12))
def test_annual_blocks_over_twelve_monthly_bills_equal_the_year_total(monthly: list[Decimal]) -> None:
    """For any monthly consumptions, the year's bills add up to the annual tariff on the year's total
    (exactly, before rounding; to the cent when every line is already whole cents)."""
    docs, amounts = bill_year(monthly, annual())
    total = sum(monthly, D(0))
    assert sum(amounts) == price_blocks(total, WATER_BLOCKS)
    whole = price_consumption(total, tariffs=[annual()], period=Period(local(2024, 1), local(2025, 1)))
    assert sum(amounts) == whole.amount
    assert sum(D(doc["accumulation"][0]["consumption"]) for doc in docs) == total


@settings(max_examples=40, deadline=None)
@given(st.lists(st.decimals(min_value=0, max_value=600, places=3), min_size=12, max_size=12))
def test_annual_electricity_blocks_monthly_exact_sum(monthly: list[Decimal]) -> None:
    """Electricity (prices with four decimals): the exact monthly amounts add up to the annual one."""
    tariff = annual(POWER_BLOCKS)
    exact = Fraction(0)
    docs: list[dict[str, Any]] = []
    for month, consumption in enumerate(monthly, start=1):
        period = month_period(2024, month)
        charge = price_consumption(consumption, tariffs=[tariff], period=period,
                                   accumulated_before=year_to_date(docs, accumulation_window(tariff, period.start)))
        docs.append(charge.to_document())
        exact += charge.exact
    assert exact == Fraction(price_blocks(sum(monthly, D(0)), POWER_BLOCKS))


# --- window reset inside a period --------------------------------------------------------------


def test_a_window_reset_inside_the_period_starts_the_later_part_from_zero() -> None:
    """A water year resetting on 1 July, billed June-July: June's 30 of 61 days carry the old
    year's 170 m3, July's 31 start from zero."""
    tariff = annual(reset_month=7)
    charge = price_consumption(D("61"), tariffs=[tariff], period=Period(local(2024, 6), local(2024, 8)),
                               accumulated_before=D("170"))
    # June: 10 x 5 + 20 x 7 = 190; July: 31 x 5 = 155
    assert charge.amount == D("345.00")
    assert [(u.start, u.end, u.accumulated_before, u.consumption) for u in charge.accumulation] == [
        (local(2023, 7), local(2024, 7), D("170"), D("30")),
        (local(2024, 7), local(2025, 7), D("0"), D("31")),
    ]


def test_a_window_split_credits_exact_decimals_that_add_up() -> None:
    """A split that is not a whole decimal (10 m3 over 30 + 31 days) credits each window an exact
    decimal (to 1e-6, the rest to the later window) so year-to-date sums stay exact."""
    charge = price_consumption(D("10"), tariffs=[annual(reset_month=7)],
                               period=Period(local(2024, 6), local(2024, 8)), accumulated_before=D("0"))
    first, second = charge.accumulation
    assert first.consumption == D("4.918033")  # 10 x 30/61 = 4.9180327...
    assert first.consumption + second.consumption == D("10")
    assert charge.amount == D("50.00")


def test_annual_blocks_continue_across_a_tariff_change_in_the_window() -> None:
    """A price rise on 16 May (of 31 days) keeps the year-to-date: the new prices continue the ladder."""
    rise = local(2024, 5, 16, )
    dearer = (Block(D("180"), D("6")), Block(D("260"), D("8")), Block(None, D("10")))
    tariffs = [annual(tid="old", until=rise), annual(dearer, tid="new", since=rise)]
    charge = price_consumption(D("31"), tariffs=tariffs, period=month_period(2024, 5), accumulated_before=D("170"))
    # old: 15 m3 from 170: 10 x 5 + 5 x 7 = 85; new: 16 m3 from 185: 16 x 8 = 128
    assert charge.amount == D("213.00")
    assert [(p.tariff_id, p.consumption) for p in charge.parts] == [("old", D("15")), ("new", D("16"))]
    assert [(u.accumulated_before, u.consumption) for u in charge.accumulation] == [(D("170"), D("31"))]


def test_a_monthly_window_resetting_on_the_15th_splits_a_calendar_month_bill() -> None:
    """Blocks per month from the 15th, billed by calendar month: March 1-15 (14 of 31 days) carries
    the window's 8 units so far, March 15-31 (17 days) starts a new window from zero."""
    blocks = (Block(D("10"), D("1")), Block(None, D("2")))
    tariff = Tariff(id="m", kind="tiered", blocks=blocks, effective_from=EPOCH, timezone="Asia/Shanghai",
                    accumulation_period="month", reset_day=15)
    charge = price_consumption(D("31"), tariffs=[tariff], period=month_period(2024, 3), accumulated_before=D("8"))
    # before: 14 units from 8: 2 x 1 + 12 x 2 = 26; after: 17 units from 0: 10 x 1 + 7 x 2 = 24
    assert charge.amount == D("50.00")
    assert [(u.start, u.accumulated_before, u.consumption) for u in charge.accumulation] == [
        (local(2024, 2, 15), D("8"), D("14")), (local(2024, 3, 15), D("0"), D("17"))]


def test_quarterly_blocks_carry_within_the_quarter() -> None:
    """Quarters from 1 January: a May bill continues April's consumption; a July bill starts empty."""
    blocks = (Block(D("100"), D("1")), Block(None, D("3")))
    tariff = Tariff(id="q", kind="tiered", blocks=blocks, effective_from=EPOCH, timezone="Asia/Shanghai",
                    accumulation_period="quarter", reset_month=1, reset_day=1)
    may = price_consumption(D("50"), tariffs=[tariff], period=month_period(2024, 5), accumulated_before=D("80"))
    assert may.amount == D("110.00")  # 20 x 1 + 30 x 3
    assert accumulation_window(tariff, month_period(2024, 7).start) == (local(2024, 7), local(2024, 10))


def test_decide_bill_carries_the_year_to_date_from_the_chain() -> None:
    """decide_bill prices a May bill after the year's earlier bills: the 170 m3 they credited to
    this year's window put the first 10 m3 in block 1 and the rest in block 2 (the ledger's
    year-to-date, from each bill's `charge_detail.accumulation`)."""
    from twinbill_billing.domain.bills import BillDraft, Meter, decide_bill
    from twinbill_billing.domain.ledger import PastBill, Reading, head_of

    period = month_period(2024, 5)
    closing = Reading(D("125"), period.end)
    meter = Meter(1, None, D("1"), None)
    window = accumulation_window(annual(), period.start)
    assert window is not None
    earlier = PastBill(local(2024, 1), period.start, D("170"), False, opening=D("-70"), closing=D("100"),
                       closing_time=period.start, windows=((window[0], D("170")),))
    last_year = replace(earlier, windows=((window[0] - timedelta(days=366), D("170")),))
    fresh = decide_bill(meter, period=period, closing=closing, tariffs=[annual()], head=head_of([last_year]),
                        history=[last_year])
    carried = decide_bill(meter, period=period, closing=closing, tariffs=[annual()], head=head_of([earlier]),
                          history=[earlier])
    assert isinstance(fresh, BillDraft) and isinstance(carried, BillDraft)
    assert (fresh.charge.amount, carried.charge.amount) == (D("125.00"), D("155.00"))
    assert carried.charge.to_document()["accumulated_before"] == "170"
