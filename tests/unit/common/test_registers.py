"""Property: the twin's per-bucket meter consumption (twinbill_common.registers.period_consumption)
equals, period by period, what billing's decide_bill bills for the same periods (rollovers,
exchanges with new multipliers), and adds up to what the meter consumed."""

from __future__ import annotations

from decimal import Decimal
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.billing.test_ledger_property import REGISTER, Ledger, decide, hour, worlds
from twinbill_billing.domain.bills import BillDraft
from twinbill_common.registers import MeterEvent, Reading, period_consumption


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_period_consumption_equals_the_bills_of_the_same_periods(data: st.DataObject) -> None:
    """Periods from the installation through each reading to the horizon, billed in order: each
    bill's consumption is the breakdown's value for that period."""
    world, horizon = data.draw(worlds())
    times = sorted({t for t, _ in world.samples})
    bounds = [hour(0), *times]
    ledger = Ledger()
    billed: list[Decimal] = []
    for start, end in pairwise(bounds):
        draft = decide(world, ledger, int((start - hour(0)).total_seconds() // 3600),
                       int((end - hour(0)).total_seconds() // 3600))
        assert isinstance(draft, BillDraft), draft
        assert ledger.insert(draft)
        billed.append(draft.usage.consumption)
    readings = [world.last_at_or_before(b) for b in bounds]
    counted = period_consumption(bounds, readings, events=world.events, multiplier=world.multiplier,
                                 register_max=REGISTER)
    assert counted == billed
    assert sum(counted, Decimal(0)) == world.consumed
    assert horizon >= len(times)


def test_a_meter_read_first_inside_the_bounds_counts_from_that_reading() -> None:
    """No reading before the first bound and no installation: the first reading opens the chain."""
    bounds = [hour(0), hour(10), hour(20)]
    first = Reading(Decimal(5), hour(2))
    readings: list[Reading | None] = [None, Reading(Decimal(9), hour(8)), Reading(Decimal(12), hour(19))]
    assert period_consumption(bounds, readings, events=[], multiplier=Decimal(2), register_max=None,
                              first=first) == [Decimal(8), Decimal(6)]


def test_a_backwards_register_counts_nothing_in_its_period_and_the_chain_goes_on() -> None:
    """A drop that is no plausible rollover: 0 in that period (billing refuses that bill), and the
    next period counts from the lower reading."""
    bounds = [hour(0), hour(10), hour(20), hour(30)]
    readings: list[Reading | None] = [Reading(Decimal(500), hour(0)), Reading(Decimal(510), hour(9)),
                                      Reading(Decimal(100), hour(19)), Reading(Decimal(130), hour(29))]
    counted = period_consumption(bounds, readings, events=[], multiplier=Decimal(1), register_max=Decimal(1000))
    assert counted == [Decimal(10), Decimal(0), Decimal(30)]
    removal = MeterEvent("removal", hour(25), Decimal(120), None, Decimal(1), Decimal(1), None, None)
    assert period_consumption(bounds, readings, events=[removal], multiplier=Decimal(1),
                              register_max=Decimal(1000))[2] == Decimal(20)
