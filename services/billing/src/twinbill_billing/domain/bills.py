"""The decision for one meter and requested period: a bill draft on the meter's chain, or why not.

The chain (domain/ledger.py) says where the bill opens and ends; this module reads the closing,
cuts the span into lifecycle segments, estimates a missing closing, and prices the consumption
per billing period through price_period(), the one call into pricing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

from twinbill_billing.domain.charges import combined, credited
from twinbill_billing.domain.ledger import (
    ChainHead,
    MeterEvent,
    PastBill,
    Piece,
    Reading,
    Segment,
    Skip,
    Span,
    accumulated,
    closing_of,
    estimate_closing,
    open_span,
    pieces,
    segments,
)
from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import (
    Charge,
    PricingCache,
    Tariff,
    TariffError,
    accumulation_window,
    pick_tariffs,
    price_consumption,
)
from twinbill_billing.domain.usage import BackwardsReading, Usage

__all__ = ["BillDraft", "ChainHead", "Meter", "NotBilled", "Reading", "canonical", "decide_bill", "ledger_since",
           "price_period", "window_start"]


@dataclass(frozen=True)
class Meter:
    """What billing needs of a device (from the registry at billing time)."""

    device_id: int
    water_meter_kind: str | None
    multiplier: Decimal
    register_max: Decimal | None
    events: tuple[MeterEvent, ...] = ()


@dataclass(frozen=True)
class PricedPiece:
    """One billing period of a bill, its consumption, the block consumption before it, its charge."""

    piece: Piece
    accumulated_before: Decimal
    window: tuple[datetime, datetime] | None
    charge: Charge


@dataclass(frozen=True)
class BillDraft:
    """Everything a bill states, before it is stored."""

    opening: Reading
    closing: Reading
    span: Span
    segments: tuple[Segment, ...]
    usage: Usage
    charge: Charge
    priced: tuple[PricedPiece, ...] = ()
    estimated: bool = False
    true_up: bool = False
    flags: tuple[str, ...] = field(default=())

    @property
    def catch_up(self) -> bool:
        """A bill covering more than one billing period (priced per period)."""
        return len(self.priced) > 1


@dataclass(frozen=True)
class NotBilled:
    """Why a meter got no bill: covered (already billed), skipped, failed (no price), exception."""

    outcome: Literal["covered", "skipped", "failed", "exception"]
    reason: str


def block_window(tariffs: Sequence[Tariff], at: datetime) -> tuple[datetime, datetime] | None:
    """The block-accumulation window containing `at` of the tariff in force then; None: its blocks
    reset every billing period (or no tariff is in force, which pricing reports)."""
    for tariff in tariffs:
        if tariff.effective_from <= at and (tariff.effective_to is None or at < tariff.effective_to):
            return accumulation_window(tariff, at)
    return None


def ledger_since(tariffs: Sequence[Tariff], period_start: datetime) -> datetime:
    """How far back a job reads its meters' ledgers: the period start, or the start of the
    block window containing it of any of the run's tariffs, whichever is earlier (a tariff whose
    window can't be worked out fails pricing, not the read)."""
    since = period_start
    for tariff in tariffs:
        try:
            window = accumulation_window(tariff, period_start)
        except TariffError:
            continue
        if window is not None:
            since = min(since, window[0])
    return since


def window_start(tariffs: Sequence[Tariff], at: datetime) -> datetime | None:
    """The start of block_window(tariffs, at); None also when the window can't be worked out
    (pricing then fails the meter whatever its history)."""
    try:
        window = block_window(tariffs, at)
    except TariffError:
        return None
    return None if window is None else window[0]


def price_period(consumption: Decimal, *, tariffs: Sequence[Tariff], period: Period,
                 accumulated_before: Decimal, cache: PricingCache | None = None) -> Charge:
    """The one call into pricing: one billing period's consumption, after `accumulated_before`
    already billed inside its block-accumulation window (0 when blocks reset every period).

    A negative consumption (the true-up of an estimate that was too high) credits those units at
    the top of the blocks they were billed in; the period's standing charges are still due.
    `cache`: the job's PricingCache (see price_consumption)."""
    if consumption >= 0:
        return price_consumption(consumption, tariffs=tariffs, period=period, accumulated_before=accumulated_before,
                                 cache=cache)
    units = -consumption
    over = price_consumption(units, tariffs=tariffs, period=period,
                             accumulated_before=max(Decimal(0), accumulated_before - units), cache=cache)
    standing = price_consumption(Decimal(0), tariffs=tariffs, period=period, accumulated_before=accumulated_before,
                                 cache=cache)
    return credited(over, standing)


def decide_bill(
    meter: Meter,
    *,
    period: Period,
    closing: Reading | None,
    tariffs: Sequence[Tariff],
    head: ChainHead | None = None,
    start_reading: Reading | None = None,
    history: Sequence[PastBill] = (),
    period_length: timedelta | None = None,
    origin: Reading | None = None,
    cache: PricingCache | None = None,
) -> BillDraft | NotBilled:
    """Bill one meter on its chain for the requested period, or say why not (never a double bill).
    `cache`: a PricingCache shared by the meters of one job (pricing's per-period work, once)."""
    events = sorted(meter.events, key=lambda e: e.at)
    span = open_span(start=period.start, end=period.end, head=head, events=events, start_reading=start_reading,
                     origin=origin)
    if isinstance(span, Skip):
        return NotBilled(span.outcome, span.reason)
    last = closing_of(span, closing=closing, events=events)
    estimated = False
    if last is None:
        multiplier, register_max = _current(meter, events)
        last = estimate_closing(span, history=history, multiplier=multiplier, register_max=register_max)
        if last is None:
            where = "" if closing is None else f"; the last one is at {closing.time.isoformat()}"
            return NotBilled("skipped", f"no reading in the period{where} and no earlier bills to "
                                        "estimate from")
        estimated = True
    true_up = head if head is not None and head.actual is not None else None
    try:
        parts = segments(span, last, events=events, multiplier=meter.multiplier,
                         register_max=meter.register_max, true_up=true_up)
    except BackwardsReading as err:
        return NotBilled("exception", str(err))
    usage = Usage(
        sum((s.usage.register_delta for s in parts), Decimal(0)),
        sum((s.usage.consumption for s in parts), Decimal(0)),
        rolled_over=any(s.usage.rolled_over for s in parts),
    )
    chosen = pick_tariffs(tariffs, water_meter_kind=meter.water_meter_kind)
    length = period_length or (period.end - period.start)
    priced: list[PricedPiece] = []
    try:
        for piece in pieces(span.from_time, span.to_time, period_length=length, consumption=usage.consumption):
            window = block_window(chosen, piece.start)
            before = accumulated(history, window, before=piece.start) + sum(
                (p.piece.consumption for p in priced if window is not None and p.piece.start >= window[0]),
                Decimal(0))
            charge = price_period(piece.consumption, tariffs=chosen, period=Period(piece.start, piece.end),
                                  accumulated_before=before, cache=cache)
            priced.append(PricedPiece(piece, before, window, charge))
    except TariffError as err:
        return NotBilled("failed", f"no price: {err}")
    total = combined([p.charge for p in priced])
    flags = tuple(name for name, on in (("estimated", estimated), ("true_up", true_up is not None),
                                        ("shortened", span.shortened), ("catch_up", len(priced) > 1),
                                        ("exchange", any(e.kind == "exchange" for e in events
                                                         if span.from_time < e.at <= span.to_time)))
                  if on)
    return BillDraft(span.opening, last, span, tuple(parts), usage, total, tuple(priced), estimated,
                     true_up is not None, flags)


def _current(meter: Meter, events: Sequence[MeterEvent]) -> tuple[Decimal, Decimal | None]:
    if events:
        return events[-1].multiplier, events[-1].register_max
    return meter.multiplier, meter.register_max


def canonical(value: Decimal) -> str:
    """A decimal's canonical text for storage: no exponent, trailing zeros kept as measured."""
    return format(value, "f")
