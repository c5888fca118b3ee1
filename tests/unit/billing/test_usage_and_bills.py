"""Consumption and the per-device decision: multiplier, rollover, backwards and missing readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from twinbill_billing.domain.bills import BillDraft, ChainHead, Meter, NotBilled, Reading, decide_bill
from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import Tariff
from twinbill_billing.domain.usage import BackwardsReading, compute_usage

D = Decimal
START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 2, 1, tzinfo=UTC)
PERIOD = Period(START, END)
FLAT = Tariff(id="f", kind="flat", unit_price=D("0.50"), effective_from=datetime(2000, 1, 1, tzinfo=UTC))
METER = Meter(device_id=1, water_meter_kind=None, multiplier=D("1"), register_max=D("100000"))


def test_plain_usage_times_multiplier() -> None:
    """(closing - opening) x multiplier, exact."""
    usage = compute_usage(D("100.25"), D("130.75"), multiplier=D("40"), register_max=None)
    assert (usage.register_delta, usage.consumption, usage.rolled_over) == (D("30.50"), D("1220.00"), False)


def test_rollover_past_register_max() -> None:
    """99990 -> 15 on a 100000 register is 25 units, not negative use."""
    usage = compute_usage(D("99990"), D("15"), multiplier=D("1"), register_max=D("100000"))
    assert usage.rolled_over and usage.register_delta == D("25")


def test_small_drop_is_backwards_not_rollover() -> None:
    """500.0 -> 499.9 would be a whole register turn: an exception, never a bill."""
    with pytest.raises(BackwardsReading):
        compute_usage(D("500.0"), D("499.9"), multiplier=D("1"), register_max=D("100000"))


def test_drop_without_register_max_is_backwards() -> None:
    """Without a known register maximum a drop cannot be a rollover."""
    with pytest.raises(BackwardsReading):
        compute_usage(D("10"), D("9"), multiplier=D("1"), register_max=None)


def test_reading_beyond_register_max_is_backwards() -> None:
    """A value over the register's maximum cannot have wrapped."""
    with pytest.raises(BackwardsReading):
        compute_usage(D("200000"), D("5"), multiplier=D("1"), register_max=D("100000"))


def reading(value: str, at: datetime, source: str = "reading") -> Reading:
    return Reading(D(value), at, source)  # type: ignore[arg-type,unused-ignore]  # any source text


def test_decide_bill_happy_path() -> None:
    """A reading in the period and an opening: a bill with the charge."""
    draft = decide_bill(METER, period=PERIOD, head=ChainHead(START, reading("10", START)),
                        closing=reading("30", END - timedelta(hours=1)), tariffs=[FLAT])
    assert isinstance(draft, BillDraft)
    assert draft.usage.consumption == D("20") and draft.charge.amount == D("10.00")


def test_rollover_bill() -> None:
    """A wrapped register bills the wrapped advance."""
    draft = decide_bill(METER, period=PERIOD, start_reading=reading("99999", START),
                        closing=reading("1", END), tariffs=[FLAT])
    assert isinstance(draft, BillDraft)
    assert draft.usage.rolled_over and draft.usage.consumption == D("2") and draft.charge.amount == D("1.00")


def test_backwards_reading_is_an_exception_outcome() -> None:
    """A backwards reading: outcome exception with the reason, no bill."""
    decision = decide_bill(METER, period=PERIOD, start_reading=reading("50", START),
                           closing=reading("49", END), tariffs=[FLAT])
    assert isinstance(decision, NotBilled) and decision.outcome == "exception"
    assert "backwards" in decision.reason


def test_missing_reading_in_period_is_skipped() -> None:
    """The last reading is at or before the period start: skipped, nothing invented."""
    decision = decide_bill(METER, period=PERIOD, start_reading=reading("50", START),
                           closing=reading("50", START), tariffs=[FLAT])
    assert isinstance(decision, NotBilled) and decision.outcome == "skipped"
    assert "no reading in the period" in decision.reason
    none = decide_bill(METER, period=PERIOD, closing=None, tariffs=[FLAT])
    assert isinstance(none, NotBilled) and none.outcome == "skipped"


def test_first_bill_without_opening_is_skipped() -> None:
    """No previous bill and no reading at the period start: skipped with the reason."""
    decision = decide_bill(METER, period=PERIOD, closing=reading("5", END), tariffs=[FLAT])
    assert isinstance(decision, NotBilled) and "no opening reading" in decision.reason


def test_reading_at_period_end_belongs_to_the_period() -> None:
    """(start, end]: a reading exactly at the end is inside."""
    draft = decide_bill(METER, period=PERIOD, start_reading=reading("1", START), closing=reading("2", END),
                        tariffs=[FLAT])
    assert isinstance(draft, BillDraft)


def test_no_tariff_is_a_failure() -> None:
    """No tariff for the device type: failed with a reason, no bill."""
    decision = decide_bill(METER, period=PERIOD, start_reading=reading("1", START), closing=reading("2", END),
                           tariffs=[])
    assert isinstance(decision, NotBilled) and decision.outcome == "failed"
