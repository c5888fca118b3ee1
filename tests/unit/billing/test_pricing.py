"""Pricing: flat and tiered tariffs at and across block edges, rounding, tariff changes in a period."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest

from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import (
    Block,
    Tariff,
    TariffError,
    pick_tariffs,
    price_blocks,
    price_consumption,
    round_money,
)

D = Decimal
JAN = datetime(2024, 1, 1, tzinfo=UTC)
FEB = datetime(2024, 2, 1, tzinfo=UTC)
PERIOD = Period(JAN, FEB)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
BLOCKS = (Block(D("10"), D("2.00")), Block(D("20"), D("3.00")), Block(None, D("5.00")))


def flat(price: str, *, since: datetime = EPOCH, until: datetime | None = None, tid: str = "f") -> Tariff:
    return Tariff(id=tid, kind="flat", unit_price=D(price), effective_from=since, effective_to=until)


def tiered(*, since: datetime = EPOCH, until: datetime | None = None, tid: str = "t") -> Tariff:
    return Tariff(id=tid, kind="tiered", blocks=BLOCKS, effective_from=since, effective_to=until)


@pytest.mark.parametrize(("consumption", "expected"), [
    ("0", "0.00"),
    ("1", "0.55"),
    ("12.34", "6.79"),        # 6.787 -> 6.79
    ("0.01", "0.01"),         # 0.0055 -> 0.01 (half-up, not banker's)
    ("0.03", "0.02"),         # 0.0165 -> 0.02
    ("0.09", "0.05"),         # 0.0495 -> 0.05
])
def test_flat_tariff_rounds_half_up_once(consumption: str, expected: str) -> None:
    """Flat: consumption x unit price, rounded half-up to 0.01 at the end."""
    charge = price_consumption(D(consumption), tariffs=[flat("0.55")], period=PERIOD)
    assert charge.amount == D(expected)
    assert str(charge.amount) == expected


@pytest.mark.parametrize(("consumption", "expected"), [
    ("0", "0"),
    ("9.99", "19.98"),
    ("10", "20.00"),          # exactly at the first edge: all in block 1
    ("10.01", "20.03"),       # just across: 0.01 at the block-2 rate
    ("20", "50.00"),          # 10 x 2 + 10 x 3
    ("20.5", "52.50"),        # ... + 0.5 x 5
    ("100", "450.00"),        # 20 + 30 + 80 x 5
])
def test_tiered_blocks_each_priced_at_their_own_rate(consumption: str, expected: str) -> None:
    """Graduated blocks: each slice of consumption at its own block's price."""
    assert price_blocks(D(consumption), BLOCKS) == D(expected)


def test_tiered_charge_is_rounded_after_summing_blocks() -> None:
    """Block amounts are not rounded one by one: 10.005 -> 20 + 0.015 = 20.015 -> 20.02."""
    charge = price_consumption(D("10.005"), tariffs=[tiered()], period=PERIOD)
    assert charge.amount == D("20.02")


def test_round_money_is_half_up() -> None:
    """0.005 rounds up, 0.0049 down; negatives are never produced by pricing."""
    assert round_money(D("0.005")) == D("0.01")
    assert round_money(D("0.0049")) == D("0.00")
    assert round_money(D("2.675")) == D("2.68")


def test_tariff_change_inside_period_is_split_pro_rata_by_time() -> None:
    """A price change at the middle of the period: half the consumption at each price."""
    middle = datetime(2024, 1, 16, 12, tzinfo=UTC)  # 15.5 days of 31: exactly half
    tariffs = [flat("1.00", until=middle, tid="old"), flat("2.00", since=middle, tid="new")]
    charge = price_consumption(D("100"), tariffs=tariffs, period=PERIOD)
    assert [p.share for p in charge.parts] == [Fraction(1, 2), Fraction(1, 2)]
    assert [p.consumption for p in charge.parts] == [D("50"), D("50")]
    assert charge.amount == D("150.00")


def test_tiered_change_inside_period_scales_block_edges() -> None:
    """Each part's block limits are scaled by its time share (no second set of cheap blocks)."""
    middle = datetime(2024, 1, 16, 12, tzinfo=UTC)
    tariffs = [tiered(until=middle, tid="a"), tiered(since=middle, tid="b")]
    split = price_consumption(D("30"), tariffs=tariffs, period=PERIOD)
    whole = price_consumption(D("30"), tariffs=[tiered()], period=PERIOD)
    # 15 per half over blocks of 5/10/inf: 5x2 + 5x3 + 5x5 = 50 per half; same as unsplit.
    assert split.amount == whole.amount == D("100.00")


def test_tariff_change_on_uneven_split_rounds_once() -> None:
    """A change a third of the way in: the parts keep full precision, the sum is rounded once."""
    third = datetime(2024, 1, 11, 8, tzinfo=UTC)  # 10 1/3 days of 31 = 1/3
    tariffs = [flat("1.00", until=third, tid="a"), flat("2.00", since=third, tid="b")]
    charge = price_consumption(D("10"), tariffs=tariffs, period=PERIOD)
    assert charge.parts[0].share == Fraction(1, 3)
    assert charge.amount == D("16.67")  # 10/3 x 1 + 20/3 x 2 = 16.666...


def test_uncovered_part_of_period_is_an_error() -> None:
    """No tariff for part of the period: no charge is guessed."""
    with pytest.raises(TariffError, match="no tariff in force"):
        price_consumption(D("1"), tariffs=[flat("1", since=datetime(2024, 1, 10, tzinfo=UTC))],
                          period=PERIOD)
    with pytest.raises(TariffError, match="no tariff in force"):
        price_consumption(D("1"), tariffs=[], period=PERIOD)


def test_overlapping_tariffs_are_an_error() -> None:
    """Two tariffs in force at once are ambiguous."""
    with pytest.raises(TariffError, match="overlap"):
        price_consumption(D("1"), tariffs=[flat("1", tid="a"), flat("2", tid="b")], period=PERIOD)


def test_tariff_ending_exactly_at_period_start_does_not_apply() -> None:
    """effective_to is exclusive: a tariff that ended at the period start prices nothing in it."""
    tariffs = [flat("9", until=JAN, tid="old"), flat("1", since=JAN, tid="new")]
    charge = price_consumption(D("3"), tariffs=tariffs, period=PERIOD)
    assert [p.tariff_id for p in charge.parts] == ["new"]
    assert charge.amount == D("3.00")


def test_pick_tariffs_prefers_the_water_meter_kind() -> None:
    """A kind's own tariff wins; kind-less tariffs apply to kinds without one."""
    tap = Tariff(id="tap", kind="flat", unit_price=D("3"), effective_from=EPOCH, water_meter_kind="tap")
    anyk = flat("1", tid="any")
    assert [t.id for t in pick_tariffs([tap, anyk], water_meter_kind="tap")] == ["tap"]
    assert [t.id for t in pick_tariffs([tap, anyk], water_meter_kind="purified")] == ["any"]
    assert [t.id for t in pick_tariffs([tap, anyk], water_meter_kind=None)] == ["any"]
