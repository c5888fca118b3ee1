"""The per-meter ledger: where the next bill of a meter's chain opens and ends, and its segments.

A meter's issued bills form one chain in time: each opens at the previous one's closing reading
and `to_time`. Pure: the chain head, lifecycle events and readings come in as arguments.

- Opening: the chain head (the latest issued bill); without one, the meter's installation
  reading, else (a meter from before lifecycles were recorded) the last reading at or before the
  period start.
- A period the chain already reaches is `covered` (never billed again); one it reaches into is
  shortened to start at the chain end; a gap before the period start is billed in the same bill
  (a catch-up, priced per period: see pieces()).
- Lifecycle events inside the span cut it into segments: an exchange ends the old meter's segment
  at its final reading and starts the new one's at its initial reading; a multiplier change cuts
  at its reading; a removal ends the chain. Each segment has its own multiplier and register size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from itertools import pairwise
from typing import Literal

from twinbill_common.registers import (
    BackwardsReading,
    MeterEvent,
    Reading,
    Usage,
    closing_in,
    compute_usage,
    register_pieces,
)

__all__ = [  # Reading and MeterEvent are the shared register types, re-exported for billing
    "BackwardsReading",
    "ChainHead",
    "MeterEvent",
    "PastBill",
    "Piece",
    "Reading",
    "Segment",
    "Skip",
    "Span",
    "Usage",
    "accumulated",
    "closing_of",
    "estimate_closing",
    "head_of",
    "ledger_complete",
    "open_span",
    "pieces",
    "segments",
]
ESTIMATE_BILLS = 3  # actual bills the average daily consumption is taken from


@dataclass(frozen=True)
class ChainHead:
    """The end of a meter's chain: its latest issued bill's `to_time` and closing reading.

    When that closing was estimated, `actual` is the last actual reading the chain rests on (the
    opening of the first of the trailing estimated bills) and `estimated` the consumption billed
    on estimates since: the next actual reading trues them up against it.
    """

    to_time: datetime
    closing: Reading
    actual: Reading | None = None
    estimated: Decimal = Decimal(0)


@dataclass(frozen=True)
class PastBill:
    """What the ledger needs of an issued bill (chain head, estimates, year-to-date sums)."""

    from_time: datetime
    to_time: datetime
    consumption: Decimal
    estimated: bool
    opening: Decimal = Decimal(0)
    closing: Decimal = Decimal(0)
    closing_time: datetime | None = None
    periods: tuple[tuple[datetime, datetime, Decimal], ...] = ()  # per billing period, as priced
    windows: tuple[tuple[datetime, Decimal], ...] = ()  # (window start, consumption credited to it)


def head_of(bills: Sequence[PastBill]) -> ChainHead | None:
    """The chain head of a meter's issued bills (None: no bill yet)."""
    if not bills:
        return None
    ordered = sorted(bills, key=lambda b: b.to_time)
    last = ordered[-1]
    closing = Reading(last.closing, last.closing_time or last.to_time)
    if not last.estimated:
        return ChainHead(last.to_time, closing)
    trailing = []
    for bill in reversed(ordered):
        if not bill.estimated:
            break
        trailing.append(bill)
    first = trailing[-1]
    return ChainHead(last.to_time, closing, Reading(first.opening, first.from_time),
                     sum((b.consumption for b in trailing), Decimal(0)))


def ledger_complete(bills: Sequence[PastBill], *, since: datetime, estimating: bool,
                    window_start: Callable[[datetime], datetime | None]) -> bool:
    """Whether a meter's issued bills ending at or after `since` are all its decision needs.

    A job reads its meters' ledgers from `since` on (the run's period start, or the start of the
    block window it lies in), so that the read stays the size of the chain's recent end however
    long the chain grows; a meter whose decision needs older bills is read whole. Enough when:
    there is a bill (the latest issued bill is then the chain head: every later one was read);
    the head is actual, or the actual bill its trailing estimates rest on was read; an estimate
    (`estimating`) has its ESTIMATE_BILLS actual bills; and the block window at the head's end
    (`window_start`, None: blocks reset every period) starts at or after `since`, so every bill
    that filled it was read.
    """
    if not bills:
        return False  # a first bill, or every bill voided: the chain's origin is older
    if all(b.estimated for b in bills):
        return False
    if estimating and sum(1 for b in bills if not b.estimated and b.to_time > b.from_time) < ESTIMATE_BILLS:
        return False
    head = max(bills, key=lambda b: b.to_time)
    start = window_start(head.to_time)
    return start is None or start >= since


@dataclass(frozen=True)
class Segment:
    """One meter and multiplier between two readings of a bill."""

    opening: Reading
    closing: Reading
    multiplier: Decimal
    register_max: Decimal | None
    usage: Usage


@dataclass(frozen=True)
class Span:
    """Where the next bill opens and ends, and why."""

    opening: Reading
    from_time: datetime
    to_time: datetime
    shortened: bool  # the chain reached into the requested period
    gap: bool  # the chain ended before the requested period start (a catch-up)


@dataclass(frozen=True)
class Skip:
    """No bill: `covered` (the chain already reaches the period end), or skipped/exception."""

    outcome: Literal["covered", "skipped", "exception"]
    reason: str


def open_span(
    *, start: datetime, end: datetime, head: ChainHead | None, events: Sequence[MeterEvent],
    start_reading: Reading | None, origin: Reading | None = None,
) -> Span | Skip:
    """Where the bill for the requested period (start, end] opens and ends on the chain.

    `origin`: where a chain whose every bill was voided started (the first bill's opening), so
    voiding a meter's first bills never drops their period from the chain.
    """
    removal = next((e for e in events if e.kind == "removal"), None)
    if head is not None:
        if head.to_time >= end:
            return Skip("covered", f"the meter's bills already reach {head.to_time.isoformat()}")
        if removal is not None and removal.at <= head.to_time:
            return Skip("skipped", f"meter removed at {removal.at.isoformat()}, already billed to it")
        opening = Reading(head.closing.value, head.to_time, "previous_bill")
        from_time = head.to_time
    elif origin is not None:
        if origin.time >= end:
            return Skip("skipped", f"the meter's chain starts at {origin.time.isoformat()}, after the period")
        opening = Reading(origin.value, origin.time, "previous_bill")
        from_time = origin.time
    else:
        installation = next((e for e in events if e.kind == "installation"), None)
        if installation is not None and installation.reading_after is not None:
            if installation.at >= end:
                return Skip("skipped", f"meter installed at {installation.at.isoformat()}, after the period")
            opening = Reading(installation.reading_after, installation.at, "installation")
            from_time = installation.at
        elif start_reading is not None:
            opening = Reading(start_reading.value, start_reading.time, "period_start_reading")
            from_time = start
        else:
            return Skip("skipped", "no opening reading: no previous bill, no installation and no reading "
                                   "at or before the period start")
    to_time = end
    if removal is not None and from_time < removal.at < end:
        to_time = removal.at
    return Span(opening, from_time, to_time, shortened=from_time > start, gap=from_time < start)


def closing_of(span: Span, *, closing: Reading | None, events: Sequence[MeterEvent]) -> Reading | None:
    """The last known register value in the span: the twin's reading, or a later event's reading."""
    return closing_in(span.from_time, span.to_time, reading=closing, events=events)


def segments(span: Span, closing: Reading, *, events: Sequence[MeterEvent], multiplier: Decimal,
             register_max: Decimal | None, true_up: ChainHead | None = None) -> list[Segment]:
    """The span cut at its lifecycle events; BackwardsReading names the reading that went back.

    `true_up`: the chain head whose closing was an estimate: the first segment is billed as the
    advance from the last actual reading minus what the estimates billed (negative when they
    were too high), so the chain stays exact.
    """
    cut = register_pieces(span.opening, closing, from_time=span.from_time, to_time=span.to_time, events=events,
                          multiplier=multiplier, register_max=register_max)
    return [_segment(piece.opening, piece.closing, piece.multiplier, piece.register_max,
                     true_up=true_up if index == 0 else None, field=piece.field)
            for index, piece in enumerate(cut)]


def _segment(opening: Reading, closing: Reading, multiplier: Decimal, register_max: Decimal | None, *,
             true_up: ChainHead | None, field: str) -> Segment:
    base = opening if true_up is None or true_up.actual is None else true_up.actual
    try:
        usage = compute_usage(base.value, closing.value, multiplier=multiplier, register_max=register_max)
    except BackwardsReading as err:
        raise BackwardsReading(f"{field} {closing.value} at {closing.time.isoformat()} is below "
                               f"the last billed reading {base.value}: {err}") from err
    if true_up is not None:  # the actual advance since the last actual reading, less the estimates
        consumption = usage.consumption - true_up.estimated
        usage = Usage(consumption / multiplier, consumption, usage.rolled_over)
    return Segment(opening, closing, multiplier, register_max, usage)


def estimate_closing(span: Span, *, history: Sequence[PastBill], multiplier: Decimal,
                     register_max: Decimal | None) -> Reading | None:
    """An estimated closing reading at the span end from the recent average daily consumption.

    The average is over the meter's last ESTIMATE_BILLS actual (not estimated) bills; None when
    there are none. The register advance keeps the opening reading's decimal places, wraps past
    `register_max`, and the next actual reading trues it up.
    """
    actual = sorted((b for b in history if not b.estimated and b.to_time > b.from_time),
                    key=lambda b: b.to_time)[-ESTIMATE_BILLS:]
    if not actual:
        return None
    used = sum((b.consumption for b in actual), Decimal(0))
    seconds = sum(((b.to_time - b.from_time) // timedelta(microseconds=1) for b in actual), 0)
    elapsed = (span.to_time - span.from_time) // timedelta(microseconds=1)
    rate = Fraction(used) * Fraction(elapsed, seconds) / Fraction(multiplier)
    exponent = span.opening.value.as_tuple().exponent
    places = Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)
    advance = (Decimal(rate.numerator) / Decimal(rate.denominator)).quantize(places, rounding=ROUND_HALF_UP)
    value = span.opening.value + max(advance, Decimal(0))
    if register_max is not None and value >= register_max:
        value -= register_max
    return Reading(value, span.to_time, "estimate")


@dataclass(frozen=True)
class Piece:
    """One billing period of a (possibly catch-up) bill and its share of the consumption."""

    start: datetime
    end: datetime
    consumption: Decimal


def pieces(from_time: datetime, to_time: datetime, *, period_length: timedelta,
           consumption: Decimal) -> list[Piece]:
    """A catch-up span cut into periods of the run's length, counted back from its end.

    A leftover shorter than half a period joins its neighbour (a time zone moved west by an hour
    is not a period of its own). The consumption is shared by time, exactly: the newest piece
    takes the remainder, so the pieces always add up to the bill.
    """
    bounds = [to_time]
    while bounds[-1] - period_length > from_time:
        bounds.append(bounds[-1] - period_length)
    if len(bounds) > 1 and (bounds[-1] - from_time) * 2 < period_length:
        bounds.pop()
    bounds.append(from_time)
    bounds.reverse()
    total_us = (to_time - from_time) // timedelta(microseconds=1)
    result: list[Piece] = []
    given = Decimal(0)
    for index, (start, end) in enumerate(pairwise(bounds)):
        if index == len(bounds) - 2:
            share = consumption - given
        else:
            fraction = Fraction((end - start) // timedelta(microseconds=1), total_us) * Fraction(consumption)
            share = Decimal(fraction.numerator) / Decimal(fraction.denominator)
            given += share
        result.append(Piece(start, end, share))
    return result


def accumulated(history: Sequence[PastBill], window: tuple[datetime, datetime] | None, *,
                before: datetime) -> Decimal:
    """Consumption already billed in the block window up to `before`. A bill priced under a
    windowed tariff recorded what it credited to each window (exact across a reset date inside
    it); an older bill counts by its periods inside the window."""
    if window is None:
        return Decimal(0)
    start, _ = window
    total = Decimal(0)
    for bill in history:
        if bill.windows:
            if bill.to_time <= before:
                total += sum((used for at, used in bill.windows if at == start), Decimal(0))
            continue
        for piece_start, piece_end, consumption in bill.periods or ((bill.from_time, bill.to_time, bill.consumption),):
            if piece_start >= start and piece_end <= before:
                total += consumption
    return total
