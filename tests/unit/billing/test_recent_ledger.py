"""A job reads only the recent end of each meter's chain (bills ending at or after
ledger_since()) and reads the whole chain of the meters ledger_complete() says need it. Property:
whenever the recent end is called complete, deciding on it gives exactly the decision the whole
chain gives (estimates, true-ups, catch-ups across block windows, annual ladders); and a steady
chain of monthly bills is complete from the period start, so the read stays two bills deep."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twinbill_billing.domain.bills import BillDraft, Meter, NotBilled, decide_bill, ledger_since, window_start
from twinbill_billing.domain.ledger import MeterEvent, PastBill, Reading, head_of, ledger_complete
from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import Tariff
from twinbill_billing.jobs import id_ranges

from .tariffs import WATER_BLOCKS, annual, flat

D = Decimal
T0 = datetime(2023, 10, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def past(draft: BillDraft) -> PastBill:
    """What the ledger reads back of a stored bill (jobs.past_bills on its document)."""
    return PastBill(draft.span.from_time, draft.span.to_time, draft.usage.consumption, draft.estimated,
                    draft.opening.value, draft.closing.value, draft.closing.time,
                    tuple((p.piece.start, p.piece.end, p.piece.consumption) for p in draft.priced),
                    tuple((use.start, use.consumption) for use in draft.charge.accumulation))


@dataclass
class Chain:
    samples: list[tuple[datetime, Decimal]] = field(default_factory=list)
    bills: list[PastBill] = field(default_factory=list)

    def reading(self, at: datetime) -> Reading | None:
        index = bisect.bisect_right([t for t, _ in self.samples], at)
        return Reading(self.samples[index - 1][1], self.samples[index - 1][0]) if index else None


METER = Meter(1, None, D(1), None, (MeterEvent("installation", day(0), None, D(0), D(1), D(1), None, None),))


def decide(chain: Chain, history: list[PastBill], period: Period, tariffs: list[Tariff]) -> BillDraft | NotBilled:
    return decide_bill(METER, period=period, closing=chain.reading(period.end), tariffs=tariffs,
                       head=head_of(history), history=history, period_length=timedelta(days=30))


def recent_complete(chain: Chain, period: Period, tariffs: list[Tariff]) -> tuple[list[PastBill], bool]:
    """The recent end a job reads, and whether it would stop there (jobs.read_ledgers' test)."""
    since = ledger_since(tariffs, period.start)
    recent = [b for b in chain.bills if b.to_time >= since]
    head = head_of(recent)
    closing = chain.reading(period.end)
    estimating = closing is None or (head is not None and closing.time <= head.to_time)
    return recent, ledger_complete(recent, since=since, estimating=estimating,
                                   window_start=lambda at: window_start(tariffs, at))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Chain, list[Period], list[Tariff]]:
    """Daily readings with silent stretches (estimates, true-ups), 30-day requests some of
    which are never made (catch-ups), under a flat tariff or an annual ladder resetting in a
    random month."""
    tariffs = [draw(st.sampled_from([flat("0.5"), annual(WATER_BLOCKS, reset_month=draw(st.integers(1, 12)))]))]
    days = draw(st.integers(200, 500))
    silent = set()
    for _ in range(draw(st.integers(0, 4))):
        start = draw(st.integers(1, days))
        silent |= set(range(start, start + draw(st.integers(10, 100))))
    chain = Chain()
    value = D(0)
    for n in range(1, days + 1):
        value += D(draw(st.integers(0, 40))) / 4
        if n not in silent:
            chain.samples.append((day(n), value))
    made = draw(st.lists(st.booleans(), min_size=days // 30, max_size=days // 30))
    periods = [Period(day(30 * i), day(30 * (i + 1))) for i, make in enumerate(made) if make or i == len(made) - 1]
    return chain, periods, tariffs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_a_complete_recent_end_decides_as_the_whole_chain(scenario: tuple[Chain, list[Period], list[Tariff]]) -> None:
    chain, periods, tariffs = scenario
    for period in periods:
        whole = decide(chain, chain.bills, period, tariffs)
        recent, complete = recent_complete(chain, period, tariffs)
        if complete:
            assert decide(chain, recent, period, tariffs) == whole
        if isinstance(whole, BillDraft):
            chain.bills.append(past(whole))


def test_a_steady_chain_reads_two_bills_deep() -> None:
    """Monthly bills with a reading every day: each month's decision needs the last bill only
    (and, under an annual ladder resetting in January, the year's bills so far)."""
    chain = Chain(samples=[(day(n), D(n)) for n in range(1, 400)])
    depths: dict[str, list[int]] = {"flat": [], "annual": []}
    for name, tariffs in (("flat", [flat("0.5")]), ("annual", [annual(reset_month=1)])):
        chain.bills = []
        for index in range(12):
            period = Period(day(30 * index), day(30 * (index + 1)))
            recent, complete = recent_complete(chain, period, tariffs)
            if index:  # the first bill opens at the installation: read whole (there is nothing)
                assert complete, (name, index)
                depths[name].append(len(recent))
            draft = decide(chain, chain.bills, period, tariffs)
            assert isinstance(draft, BillDraft)
            chain.bills.append(past(draft))
    assert depths["flat"] == [1] * 11
    # day(0) is 1 October 2023: bills ending in 2023 are read until the January reset, then the year's
    assert max(depths["annual"]) <= 12 and depths["annual"][-1] < len(chain.bills)


def test_a_chain_that_needs_its_past_is_not_complete() -> None:
    """No bill yet; only estimates since `since`; an estimate without three actual bills."""
    since = day(60)
    actual = PastBill(day(30), day(60), D(10), False)
    estimate = PastBill(day(60), day(90), D(10), True)
    assert not ledger_complete([], since=since, estimating=False, window_start=lambda _: None)
    assert not ledger_complete([estimate], since=since, estimating=False, window_start=lambda _: None)
    assert ledger_complete([actual, estimate], since=since, estimating=False, window_start=lambda _: None)
    assert not ledger_complete([actual], since=since, estimating=True, window_start=lambda _: None)
    assert not ledger_complete([actual], since=since, estimating=False, window_start=lambda _: day(0))


def test_short_meters_are_read_in_runs_of_neighbours() -> None:
    assert id_ranges([3, 4, 9], [1, 2, 3, 4, 5, 9]) == [(3, 4), (9, 9)]
    assert id_ranges([], [1, 2]) == []
    assert id_ranges([1, 2], [2, 1]) == [(1, 2)]
