"""Property: whatever the readings, crontab edits, processing order, redelivery and concurrency,
the bills of a meter form one chain and add up to exactly what the meter consumed (exchanges and
rollovers included), through the same decide_bill the jobs use."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twinbill_billing.domain.bills import BillDraft, ChainHead, Meter, NotBilled, decide_bill
from twinbill_billing.domain.ledger import MeterEvent, PastBill, Reading, head_of
from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import Tariff

D = Decimal
T0 = datetime(2024, 1, 1, tzinfo=UTC)
REGISTER = D(100000)  # 5 digits: 99999 rolls over to 00000
FLAT = Tariff(id="f", kind="flat", unit_price=D("0.5"), effective_from=datetime(2000, 1, 1, tzinfo=UTC))


def hour(n: int) -> datetime:
    return T0 + timedelta(hours=n)


@dataclass
class World:
    """One meter: its register samples (as the twin has them), lifecycle events, the truth."""

    samples: list[tuple[datetime, Decimal]] = field(default_factory=list)
    events: list[MeterEvent] = field(default_factory=list)
    consumed: Decimal = field(default_factory=Decimal)  # really consumed from installation to the horizon
    multiplier: Decimal = field(default_factory=lambda: Decimal(1))

    def last_at_or_before(self, at: datetime) -> Reading | None:
        index = bisect.bisect_right([t for t, _ in self.samples], at)
        return Reading(self.samples[index - 1][1], self.samples[index - 1][0]) if index else None


@st.composite
def worlds(draw: st.DrawFn) -> tuple[World, int]:
    """Installation, up to 40 readings with rollovers, up to 3 exchanges (new multipliers), and a
    reading at the horizon."""
    horizon = draw(st.integers(24 * 20, 24 * 200))
    value = D(draw(st.integers(0, 99999)))
    world = World()
    world.events.append(MeterEvent("installation", hour(0), None, value, D(1), D(1), REGISTER, REGISTER))
    points = draw(st.lists(st.integers(1, horizon - 1), max_size=40, unique=True))
    swaps = set(draw(st.lists(st.sampled_from(points), max_size=3, unique=True))) if points else set()
    for at in [*sorted(points), horizon]:
        # x.5 steps; all of them together stay under half the register, or no reading could tell
        # one turn from two (a meter billed that rarely is ambiguous to anyone)
        step = D(draw(st.integers(0, 2000))) / 2
        value = (value + step) % REGISTER
        world.consumed += step * world.multiplier
        if at in swaps:
            new_value = D(draw(st.integers(0, 99999)))
            new_multiplier = D(draw(st.sampled_from([1, 2, 40])))
            world.events.append(MeterEvent("exchange", hour(at), value, new_value, new_multiplier,
                                           world.multiplier, REGISTER, REGISTER))
            value, world.multiplier = new_value, new_multiplier
        else:
            world.samples.append((hour(at), value))
    return world, horizon


@st.composite
def requests(draw: st.DrawFn, horizon: int) -> list[tuple[int, int]]:
    """Requested periods from schedules that change (crontab edits and zone moves shift the
    boundaries back or forward, so requests overlap or leave gaps), the last ending at the horizon."""
    periods: list[tuple[int, int]] = []
    at = 0
    while at < horizon:
        length = draw(st.integers(24, 24 * 40))
        shift = draw(st.integers(-24 * 10, 24 * 10)) if draw(st.booleans()) else 0  # an edit
        start = max(0, min(at + shift, horizon - 1))
        end = min(max(start + length, at + 1), horizon)
        periods.append((start, end))
        at = end
    return periods


@dataclass
class Ledger:
    """The bills collection with its unique chain position, in memory."""

    bills: list[BillDraft] = field(default_factory=list)

    def head(self) -> ChainHead | None:
        return head_of(self.history())

    def history(self) -> list[PastBill]:
        return [PastBill(b.span.from_time, b.span.to_time, b.usage.consumption, b.estimated, b.opening.value,
                         b.closing.value, b.closing.time) for b in self.bills]

    def insert(self, draft: BillDraft) -> bool:
        if any(b.span.from_time == draft.span.from_time for b in self.bills):
            return False  # the unique chain_key: another worker took this position
        self.bills.append(draft)
        return True


def decide(world: World, ledger: Ledger, start: int, end: int) -> BillDraft | NotBilled:
    meter = Meter(1, None, world.multiplier, REGISTER, tuple(world.events))
    period = Period(hour(start), hour(end))
    return decide_bill(meter, period=period, closing=world.last_at_or_before(period.end), tariffs=[FLAT],
                       head=ledger.head(), start_reading=world.last_at_or_before(period.start),
                       history=ledger.history(), period_length=period.end - period.start)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_billed_consumption_equals_what_the_meter_consumed(data: st.DataObject) -> None:
    """Random readings (rollovers, exchanges with new multipliers), random crontab edits, random
    processing order with redeliveries, and workers deciding on the same snapshot: one chain,
    no gap, no overlap, and the sum billed == the meter's consumption since installation."""
    world, horizon = data.draw(worlds())
    periods = data.draw(requests(horizon))
    redelivered = data.draw(st.lists(st.sampled_from(periods), max_size=len(periods)))
    order = data.draw(st.permutations(periods + redelivered))
    ledger = Ledger()
    refused: list[str] = []
    index = 0
    while index < len(order):  # a batch of concurrent workers decides on the same ledger state
        batch = order[index:index + data.draw(st.integers(1, 3))]
        index += len(batch)
        pending = list(batch)
        for _ in range(10):
            decided = [((s, e), decide(world, ledger, s, e)) for s, e in pending]
            refused += [f"{r}: {d.reason}" for r, d in decided if isinstance(d, NotBilled) and d.outcome != "covered"]
            lost = [request for request, draft in decided
                    if isinstance(draft, BillDraft) and not ledger.insert(draft)]
            if not lost:
                break
            pending = lost
    bills = sorted(ledger.bills, key=lambda b: b.span.from_time)
    assert bills, "the request ending at the horizon always bills"
    assert bills[0].span.from_time == hour(0) and bills[0].opening.source == "installation"
    for before, after in pairwise(bills):
        assert after.span.from_time == before.span.to_time
        assert after.opening.value == before.closing.value
    assert bills[-1].span.to_time == hour(horizon), refused
    assert not bills[-1].estimated
    assert sum((b.usage.consumption for b in bills), D(0)) == world.consumed
    for bill in bills:  # each bill's periods share its consumption exactly
        assert sum((p.piece.consumption for p in bill.priced), D(0)) == bill.usage.consumption
