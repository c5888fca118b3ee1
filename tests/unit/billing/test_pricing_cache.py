"""What makes pricing cheaper per bill changes no bill: a job's PricingCache prices exactly as
pricing without it, keyed by the tariff objects (never by equal-looking values); rounding on the
integers rounds as on the fraction; a memoized instant's text is the instant's."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.billing.tariffs import EPOCH, POWER_BLOCKS, WATER_BLOCKS, D, annual, flat, local
from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import (
    Block,
    PricingCache,
    Season,
    Tariff,
    TariffError,
    price_consumption,
    round_fraction,
)
from twinbill_billing.domain.tariffs import utc_iso

CHANGE = local(2024, 3, 10)
SEASONAL = Tariff(id="s", kind="tiered", effective_from=CHANGE, timezone="Asia/Shanghai", standing_charge=D("2.5"),
                  seasons=(Season("summer", 6, 9, blocks=(Block(D("60"), D("0.55")), Block(None, D("0.95")))),
                           Season("rest", 10, 5, blocks=(Block(D("60"), D("0.45")), Block(None, D("0.85"))))))
TARIFF_SETS: list[list[Tariff]] = [
    [flat("0.61")],
    [annual()],
    [annual(POWER_BLOCKS, rounding="line", standing="3.25")],
    [flat("0.5", tid="a", until=CHANGE), flat("0.0125", tid="b", since=CHANGE)],
    [annual(WATER_BLOCKS, until=CHANGE, standing="1.10"), SEASONAL],
    [Tariff(id="m", kind="tiered", blocks=WATER_BLOCKS, effective_from=EPOCH, accumulation_period="month",
            reset_day=15, timezone="Asia/Shanghai", rounding="line", rounding_mode="half_even")],
]
MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "down": ROUND_DOWN, "up": ROUND_UP}


@settings(max_examples=150, deadline=None)
@given(tariffs=st.sampled_from(TARIFF_SETS),
       start_day=st.integers(0, 400), days=st.integers(1, 120),
       uses=st.lists(st.tuples(st.decimals(0, 5000, places=3), st.decimals(0, 400, places=2)),
                     min_size=1, max_size=4))
def test_a_cache_prices_every_meter_as_pricing_without_it(
        tariffs: list[Tariff], start_day: int, days: int, uses: list[tuple[Decimal, Decimal]]) -> None:
    """Meters priced one after another over the same period share one cache (as a job's do): each
    charge, and the document a bill stores of it, is the one pricing computes on its own."""
    start = local(2023, 11, 1) + timedelta(days=start_day)
    period = Period(start, start + timedelta(days=days, hours=start_day % 7))
    cache = PricingCache()
    for consumption, before in uses:
        try:
            alone = price_consumption(consumption, tariffs=tariffs, period=period, accumulated_before=before)
        except TariffError as err:
            with pytest.raises(TariffError, match=re.escape(str(err))):
                price_consumption(consumption, tariffs=tariffs, period=period, accumulated_before=before,
                                  cache=cache)
            continue
        shared = price_consumption(consumption, tariffs=tariffs, period=period, accumulated_before=before,
                                   cache=cache)
        assert shared == alone
        assert shared.to_document() == alone.to_document()


def test_the_cache_tells_equal_tariffs_apart() -> None:
    """0.61 and 0.610 are equal decimals, so the two tariffs compare equal; a bill still shows the
    price as its own tariff stores it."""
    period = Period(local(2024, 5, 1), local(2024, 6, 1))
    short, long = flat("0.61"), flat("0.610")
    assert short == long
    cache = PricingCache()
    for tariff, text in ((short, "0.61"), (long, "0.610"), (short, "0.61")):
        charge = price_consumption(D("10"), tariffs=[tariff], period=period, cache=cache)
        assert charge.to_document()["lines"][0]["unit_price"] == text
        assert charge.to_document()["tariffs"][0]["unit_price"] == text


@settings(max_examples=300, deadline=None)
@given(numerator=st.integers(-10**9, 10**9), denominator=st.integers(1, 10**7),
       mode=st.sampled_from(sorted(MODES)), places=st.integers(0, 6))
def test_rounding_a_fraction_rounds_its_exact_value(numerator: int, denominator: int, mode: str,
                                                    places: int) -> None:
    """round_fraction agrees with decimal rounding of the exact value (to 60 digits, enough for
    these fractions to be told apart from a tie)."""
    with localcontext() as context:
        context.prec = 60
        expected = (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1).scaleb(-places),
                                                                        rounding=MODES[mode])
    value = Fraction(numerator, denominator)
    rounded = round_fraction(value, mode, places=places)  # type: ignore[arg-type]  # mode: a RoundingMode
    assert rounded == expected
    assert rounded.as_tuple().exponent == -places  # 0.50, not 0.5: as many places as asked


def test_an_instants_text_is_its_own_in_a_repeated_hour() -> None:
    """The two instants a wall time names when clocks go back (fold 0 and 1 compare equal in
    their zone) keep their own UTC text, whichever was asked first."""
    zone = ZoneInfo("Europe/Berlin")
    first = datetime(2024, 10, 27, 2, 30, tzinfo=zone)
    second = first.replace(fold=1)
    assert first == second
    assert utc_iso(first) == "2024-10-27T00:30:00+00:00"
    assert utc_iso(second) == "2024-10-27T01:30:00+00:00"
    assert utc_iso(first) == "2024-10-27T00:30:00+00:00"
    assert utc_iso(datetime(2024, 10, 27, 0, 30, tzinfo=UTC)) == utc_iso(first)
