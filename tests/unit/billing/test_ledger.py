"""The ledger's pure rules: where a bill opens, catch-up periods, accumulation windows, estimates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from twinbill_billing.domain.bills import BillDraft, Meter, NotBilled, decide_bill
from twinbill_billing.domain.ledger import (
    ChainHead,
    MeterEvent,
    PastBill,
    Reading,
    Skip,
    Span,
    accumulated,
    estimate_closing,
    head_of,
    open_span,
    pieces,
)
from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import Block, Tariff
from twinbill_billing.errors import BadRunInput
from twinbill_billing.twin import BillingDevice

D = Decimal
T = [datetime(2024, m, 1, tzinfo=UTC) for m in range(1, 13)]
DAY = timedelta(days=1)
TIERED = Tariff(id="t", kind="tiered", effective_from=datetime(2000, 1, 1, tzinfo=UTC),
                blocks=(Block(D(10), D(1)), Block(None, D(2))))


def test_covered_shortened_and_gap() -> None:
    """The chain reaching the period end covers it; reaching into it shortens it; ending before it
    opens the bill at the chain end (a catch-up)."""
    head = ChainHead(T[2], Reading(D(5), T[2]))
    covered = open_span(start=T[1], end=T[2], head=head, events=(), start_reading=None)
    assert isinstance(covered, Skip) and covered.outcome == "covered"
    shortened = open_span(start=T[1], end=T[3], head=head, events=(), start_reading=None)
    assert isinstance(shortened, Span) and shortened.from_time == T[2] and shortened.shortened
    gap = open_span(start=T[4], end=T[5], head=head, events=(), start_reading=None)
    assert isinstance(gap, Span) and gap.from_time == T[2] and gap.gap and gap.opening.value == 5


def test_catch_up_pieces_share_the_consumption_exactly() -> None:
    """Three periods back from the end; a leftover under half a period joins its neighbour; the
    shares add up exactly even when they do not divide evenly."""
    parts = pieces(T[0], T[0] + 90 * DAY + timedelta(hours=5), period_length=30 * DAY, consumption=D(100))
    assert len(parts) == 3 and parts[0].start == T[0] and parts[-1].end == T[0] + 90 * DAY + timedelta(hours=5)
    assert sum((p.consumption for p in parts), D(0)) == D(100)
    assert len(pieces(T[0], T[0] + 45 * DAY, period_length=30 * DAY, consumption=D(1))) == 2


def test_catch_up_bill_is_priced_per_period() -> None:
    """27 units over three monthly periods with blocks of 10 at 1: 27.00 (about 9 a period, all in
    the first block), not 10 + 17x2 = 44.00 as one squeezed period would be."""
    meter = Meter(1, None, D(1), None)
    head = ChainHead(T[0], Reading(D(0), T[0]))
    draft = decide_bill(meter, period=Period(T[2], T[3]), closing=Reading(D(27), T[3]), tariffs=[TIERED],
                        head=head, period_length=T[3] - T[2])
    assert isinstance(draft, BillDraft) and draft.catch_up and len(draft.priced) == 3
    assert draft.usage.consumption == 27 and draft.charge.amount == D("27.00")


def test_accumulated_counts_periods_inside_the_window() -> None:
    """Year-to-date: the periods of issued bills inside the window, before the instant."""
    bills = [PastBill(T[0] - 31 * DAY, T[1], D(50), False,
                      periods=((T[0] - 31 * DAY, T[0], D(20)), (T[0], T[1], D(30)))),
             PastBill(T[1], T[2], D(7), False)]
    assert accumulated(bills, (T[0], T[11]), before=T[2]) == D(37)
    assert accumulated(bills, (T[0], T[11]), before=T[1]) == D(30)
    assert accumulated(bills, None, before=T[2]) == 0


def test_estimate_from_recent_actual_bills_and_head_of_estimates() -> None:
    """Average daily consumption of the last actual bills, kept to the reading's places; the head
    of an estimated chain remembers the last actual reading and the estimated consumption."""
    history = [PastBill(T[0], T[0] + 10 * DAY, D(20), False, D(0), D(20))]
    span = Span(Reading(D("20.0"), T[0] + 10 * DAY), T[0] + 10 * DAY, T[0] + 15 * DAY, False, False)
    estimate = estimate_closing(span, history=history, multiplier=D(1), register_max=D(100))
    assert estimate == Reading(D("30.0"), T[0] + 15 * DAY, "estimate")
    head = head_of([*history, PastBill(T[0] + 10 * DAY, T[0] + 15 * DAY, D(10), True, D(20), D("30.0"))])
    assert head is not None and head.actual == Reading(D(20), T[0] + 10 * DAY) and head.estimated == 10
    assert estimate_closing(span, history=[], multiplier=D(1), register_max=None) is None


def test_exchange_with_final_reading_below_the_last_billed_names_the_field() -> None:
    """An exchange whose final reading is below the opening: an exception naming final_reading."""
    exchange = MeterEvent("exchange", T[1] + DAY, D(3), D(0), D(1), D(1), None, None)
    meter = Meter(1, None, D(1), None, (exchange,))
    decision = decide_bill(meter, period=Period(T[1], T[2]), closing=Reading(D(4), T[2]), tariffs=[TIERED],
                           head=ChainHead(T[1], Reading(D(9), T[1])))
    assert isinstance(decision, NotBilled) and decision.outcome == "exception"
    assert decision.reason.startswith("final_reading 3") and "last billed reading 9" in decision.reason


def test_lifecycle_from_the_twin_contract() -> None:
    """The billing device's `lifecycle` decodes to events; a naive time or unknown kind is a
    malformed device (a permanent error naming the event)."""
    event = {"id": 1, "kind": "exchange", "at": "2024-03-10T01:30:00+00:00", "reading_before": "99990",
             "reading_after": "0", "multiplier": "40", "multiplier_before": "1", "register_max": "1000000",
             "register_max_before": "100000"}
    device = {"id": 1, "device_key": "m1", "device_type": 2, "multiplier": "40", "lifecycle": [event]}
    [decoded] = BillingDevice.from_json(device).events
    assert decoded.at == datetime(2024, 3, 10, 1, 30, tzinfo=UTC)
    assert (decoded.reading_before, decoded.reading_after, decoded.multiplier_before) == (D(99990), D(0), D(1))
    assert decoded.register_max == D(1000000) and decoded.register_max_before == D(100000)
    for bad in ({**event, "at": "2024-03-10T01:30:00"}, {**event, "kind": "swap"}):
        with pytest.raises(BadRunInput, match="lifecycle"):
            BillingDevice.from_json({**device, "lifecycle": [bad]})
