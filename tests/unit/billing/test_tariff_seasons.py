"""Tariff rules besides windows and annual blocks: seasons, standing charges, tariff changes inside
a period, rounding modes, and inputs pricing refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest

from tests.unit.billing.tariffs import EPOCH, D, annual, flat, local, month_period
from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import (
    Block,
    Season,
    Tariff,
    TariffError,
    price_consumption,
    round_fraction,
)

# --- seasons -----------------------------------------------------------------------------------

SUMMER = Season("summer", 6, 9, unit_price=D("0.60"))
WINTER = Season("non-summer", 10, 5, unit_price=D("0.50"))


def seasonal(*seasons: Season, kind: str = "flat") -> Tariff:
    """Seasonal prices, Beijing time."""
    return Tariff(id="s", kind=kind, effective_from=EPOCH, timezone="Asia/Shanghai",  # type: ignore[arg-type]
                  seasons=seasons)


def test_seasonal_prices_split_the_period_at_the_month_the_season_changes() -> None:
    """16 September - 16 October: 15 days summer, 15 days not: half the consumption at each price."""
    charge = price_consumption(D("300"), tariffs=[seasonal(SUMMER, WINTER)],
                               period=Period(local(2024, 9, 16), local(2024, 10, 16)))
    assert [(ln.season, ln.quantity, ln.unit_price) for ln in charge.lines] == [
        ("summer", Fraction(150), D("0.60")), ("non-summer", Fraction(150), D("0.50"))]
    assert charge.amount == D("165.00")


def test_seasonal_split_is_exact_in_time() -> None:
    """May 20 - June 20 (31 days: 12 in May, 19 in June): shares 12/31 and 19/31, exact."""
    charge = price_consumption(D("31"), tariffs=[seasonal(SUMMER, WINTER)],
                               period=Period(local(2024, 5, 20), local(2024, 6, 20)))
    assert [ln.quantity for ln in charge.lines] == [Fraction(12), Fraction(19)]
    assert charge.amount == D("17.40")  # 12 x 0.5 + 19 x 0.6


def test_months_inside_one_season_are_not_split() -> None:
    """July-August (both summer) is one line."""
    charge = price_consumption(D("10"), tariffs=[seasonal(SUMMER, WINTER)],
                               period=Period(local(2024, 7), local(2024, 9)))
    assert len(charge.lines) == 1 and charge.amount == D("6.00")


def test_seasonal_blocks_per_billing_period_scale_with_the_season_share() -> None:
    """Tiered seasons with billing-period blocks: each season's part gets blocks scaled by its share."""
    summer = Season("summer", 6, 9, blocks=(Block(D("100"), D("1")), Block(None, D("2"))))
    winter = Season("non-summer", 10, 5, blocks=(Block(D("100"), D("1")), Block(None, D("3"))))
    charge = price_consumption(D("300"), tariffs=[seasonal(summer, winter, kind="tiered")],
                               period=Period(local(2024, 9, 16), local(2024, 10, 16)))
    # each half: 150 over blocks of 50: 50 x 1 + 100 x (2 | 3)
    assert charge.amount == D("600.00")
    assert [(ln.season, ln.upper) for ln in charge.lines] == [
        ("summer", Fraction(50)), ("summer", None), ("non-summer", Fraction(50)), ("non-summer", None)]


# --- standing charge and tariff changes --------------------------------------------------------


def test_standing_charge_is_due_per_period_even_without_consumption() -> None:
    """A standing charge is owed for the period whatever the consumption."""
    charge = price_consumption(D("0"), tariffs=[flat("1", standing="12.50")], period=month_period(2024, 2))
    assert charge.amount == D("12.50") and charge.lines == ()
    assert charge.to_document()["charges"][0]["amount"] == "12.50"


@pytest.mark.parametrize(("rounding", "expected", "amounts"), [
    ("total", "11.33", ["3.333333333333333333333333333", "8.00"]),
    ("line", "11.33", ["3.33", "8.00"]),
])
def test_standing_charge_is_pro_rated_when_the_tariff_changes(rounding: str, expected: str,
                                                              amounts: list[str]) -> None:
    """A change a third of the way into January: 10.00 x 1/3 + 12.00 x 2/3."""
    third = datetime(2024, 1, 11, 8, tzinfo=UTC)
    period = Period(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
    tariffs = [flat("0", tid="old", until=third, standing="10.00", rounding=rounding),
               flat("0", tid="new", since=third, standing="12.00", rounding=rounding)]
    charge = price_consumption(D("5"), tariffs=tariffs, period=period)
    assert str(charge.amount) == expected
    assert [c.share for c in charge.charges] == [Fraction(1, 3), Fraction(2, 3)]
    assert [c["amount"] for c in charge.to_document()["charges"]] == amounts


def test_tariff_change_with_a_half_cent_total_loses_no_cent() -> None:
    """1 unit, a third at 0.5 and two thirds at 0.0125: exactly 0.175, which rounds half-up to 0.18
    (summing 28-digit decimals gave 0.1749999... and 0.17)."""
    third = datetime(2024, 1, 11, 8, tzinfo=UTC)
    period = Period(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
    tariffs = [flat("0.5", tid="a", until=third), flat("0.0125", tid="b", since=third)]
    charge = price_consumption(D("1"), tariffs=tariffs, period=period)
    assert charge.exact == Fraction(7, 40)
    assert charge.amount == D("0.18")
    assert price_consumption(D("7"), tariffs=tariffs, period=period).amount == D("1.23")  # 1.225


@pytest.mark.parametrize(("mode", "value", "expected"), [
    ("half_up", Fraction(5, 1000), "0.01"),
    ("half_up", Fraction(-5, 1000), "-0.01"),
    ("half_even", Fraction(5, 1000), "0.00"),
    ("half_even", Fraction(15, 1000), "0.02"),
    ("down", Fraction(199, 10000), "0.01"),
    ("up", Fraction(101, 10000), "0.02"),
    ("half_up", Fraction(1, 3), "0.33"),
])
def test_rounding_modes(mode: str, value: Fraction, expected: str) -> None:
    """Each rounding mode on exact fractions."""
    assert str(round_fraction(value, mode)) == expected  # type: ignore[arg-type]


def test_negative_consumption_or_year_to_date_is_refused() -> None:
    """Pricing never produces a credit from bad input."""
    with pytest.raises(TariffError, match="negative"):
        price_consumption(D("-1"), tariffs=[annual()], period=month_period(2024, 1))
    with pytest.raises(TariffError, match="negative"):
        price_consumption(D("1"), tariffs=[annual()], period=month_period(2024, 1), accumulated_before=D("-1"))


def test_seasonal_prices_on_annual_blocks_share_one_ladder() -> None:
    """Annual blocks with summer prices: the season changes the price, not the year-to-date."""
    summer = Season("summer", 6, 9, blocks=(Block(D("180"), D("6")), Block(None, D("8"))))
    rest = Season("rest", 10, 5, blocks=(Block(D("180"), D("5")), Block(None, D("7"))))
    tariff = Tariff(id="sa", kind="tiered", effective_from=EPOCH, timezone="Asia/Shanghai",
                    accumulation_period="year", reset_month=1, reset_day=1, seasons=(summer, rest))
    # 16 September - 16 October, 30 m3 from 170: summer 15 m3 (10 x 6 + 5 x 8), then 15 m3 at 7
    charge = price_consumption(D("30"), tariffs=[tariff], period=Period(local(2024, 9, 16), local(2024, 10, 16)),
                               accumulated_before=D("170"))
    assert charge.amount == D("205.00")
    assert [(ln.season, ln.block, ln.quantity) for ln in charge.lines] == [
        ("summer", 1, Fraction(10)), ("summer", 2, Fraction(5)), ("rest", 2, Fraction(15))]
    assert [(u.accumulated_before, u.consumption) for u in charge.accumulation] == [(D("170"), D("30"))]
