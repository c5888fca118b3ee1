"""Pricing a period's consumption: block lines, standing charges, accumulation windows, rounding.

Arithmetic is exact (`fractions.Fraction`) until the tariff's rounding rule: `total` rounds the
sum once, `line` rounds each block line and charge and adds them. Nothing else is ever rounded,
so a half-cent total split over a tariff change rounds exactly as the unsplit total would.

The period is cut where a tariff changes, where an accumulation window resets and where a season
changes (local month starts). Consumption is spread over the period evenly in time (readings say
nothing finer): each piece gets the share of the consumption proportional to its length.

- Blocks that reset every billing period are scaled by the piece's time share and start empty,
  so a change never hands the customer a second set of cheap first blocks, nor pushes them into
  dearer ones.
- Blocks of a calendar window (month, quarter, year) are not scaled: the piece continues from the
  window's consumption so far (`accumulated_before` for the window holding the period start, zero
  for a window that starts inside the period). The consumption credited to each window is an
  exact decimal (split across a reset to 1e-6, the rest to the later window), so later bills can
  add up year-to-date figures exactly from earlier bills.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from twinbill_billing.domain.charges import (
    CENT,
    Charge,
    ChargePart,
    Line,
    StandingCharge,
    WindowUse,
    as_decimal,
    round_fraction,
    round_money,
)
from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.tariffs import (
    Block,
    Rates,
    Season,
    Tariff,
    TariffError,
    accumulation_window,
    pick_tariffs,
    season_changes,
    window_resets,
)

__all__ = [
    "CENT",
    "Block",
    "Charge",
    "ChargePart",
    "Line",
    "PricingCache",
    "Season",
    "StandingCharge",
    "Tariff",
    "TariffError",
    "WindowUse",
    "accumulation_window",
    "as_decimal",
    "pick_tariffs",
    "price_blocks",
    "price_consumption",
    "round_fraction",
    "round_money",
]

SPLIT_PLACES = 6  # consumption credited to a window when a period crosses its reset
Window = tuple[datetime, datetime] | None


def price_blocks(consumption: Decimal, blocks: Sequence[Block], *, share: Fraction = Fraction(1)) -> Decimal:
    """Graduated pricing from an empty first block, limits scaled by `share` (unrounded)."""
    lines = _block_lines(Fraction(consumption), blocks, base=Fraction(0), scale=share)
    return as_decimal(sum((amount for _, _, _, _, _, amount in lines), Fraction(0)))


# A block ladder as applied: (1-based block, upper bound scaled or None, price, price as a fraction).
Ladder = tuple[tuple[int, Fraction | None, Decimal, Fraction], ...]
BlockLine = tuple[int, Fraction | None, Fraction | None, Fraction, Decimal, Fraction]


def _ladder(blocks: Sequence[Block], scale: Fraction) -> Ladder:
    """The blocks' bounds scaled and prices as fractions, up to the first block without a limit."""
    steps: list[tuple[int, Fraction | None, Decimal, Fraction]] = []
    for index, block in enumerate(blocks, start=1):
        upper = None if block.up_to is None else Fraction(block.up_to) * scale
        steps.append((index, upper, block.price, Fraction(block.price)))
        if upper is None:
            break
    return tuple(steps)


def _block_lines(quantity: Fraction, blocks: Sequence[Block], *, base: Fraction, scale: Fraction) -> list[BlockLine]:
    """(block, lower, upper, quantity, price, amount) of [base, base + quantity) on the ladder."""
    return _ladder_lines(quantity, _ladder(blocks, scale), base=base)


def _ladder_lines(quantity: Fraction, ladder: Ladder, *, base: Fraction) -> list[BlockLine]:
    """_block_lines on a ladder worked out already."""
    out: list[BlockLine] = []
    top = base + quantity
    lower = Fraction(0)
    for index, upper, price, price_fraction in ladder:
        taken = (top if upper is None else min(top, upper)) - max(base, lower)
        if taken > 0:
            out.append((index, lower, upper, taken, price, taken * price_fraction))
        if upper is None:
            return out
        lower = upper
    if top > lower:
        raise TariffError(f"consumption {as_decimal(top)} exceeds the last block (the last block needs no limit)")
    return out


def _spans(tariffs: Sequence[Tariff], period: Period) -> list[tuple[Tariff, datetime, datetime]]:
    """The tariffs in force over the period, in order, covering it exactly once."""
    spans: list[tuple[Tariff, datetime, datetime]] = []
    for tariff in sorted(tariffs, key=lambda t: t.effective_from):
        start = max(tariff.effective_from, period.start)
        end = period.end if tariff.effective_to is None else min(tariff.effective_to, period.end)
        if end > start:
            spans.append((tariff, start, end))
    covered = period.start
    for tariff, start, end in spans:
        if start < covered:
            raise TariffError(f"tariffs overlap at {start.isoformat()} (tariff {tariff.id})")
        if start > covered:
            raise TariffError(f"no tariff in force from {covered.isoformat()} to {start.isoformat()}")
        covered = end
    if covered < period.end:
        raise TariffError(f"no tariff in force from {covered.isoformat()} to {period.end.isoformat()}")
    return spans


@dataclass(frozen=True)
class _Piece:
    tariff: Tariff
    start: datetime
    end: datetime
    window: Window

    @property
    def microseconds(self) -> int:
        return (self.end - self.start) // timedelta(microseconds=1)


def _pieces(spans: list[tuple[Tariff, datetime, datetime]]) -> list[_Piece]:
    pieces: list[_Piece] = []
    for tariff, start, end in spans:
        cuts = sorted({start, end, *window_resets(tariff, start, end), *season_changes(tariff, start, end)})
        pieces += [_Piece(tariff, a, b, accumulation_window(tariff, a)) for a, b in itertools.pairwise(cuts)]
    return pieces


@dataclass(frozen=True)
class _Slot:
    """A piece as pricing applies it: its part of its window group's time (None: all of it), the
    rates in force, a flat price as a fraction and, for tiered rates, the ladder as applied."""

    piece: _Piece
    part: Fraction | None
    rates: Rates
    unit_price: Fraction | None
    ladder: Ladder


@dataclass(frozen=True)
class _Group:
    """A run of pieces in one accumulation window; `share` of the period (None for the last group,
    which takes the rest of the consumption)."""

    share: Fraction | None
    slots: tuple[_Slot, ...]


@dataclass(frozen=True)
class _Span:
    """A tariff's stretch of the period: its share, standing charge, and which pieces are its own."""

    tariff: Tariff
    start: datetime
    end: datetime
    share: Fraction
    fixed: Fraction
    charge: StandingCharge | None
    lines_of: tuple[int, ...]  # pieces whose lines are this tariff's in the span (by tariff id)
    used_of: tuple[int, ...]  # pieces whose consumption is this tariff's in the span


@dataclass(frozen=True)
class _Layout:
    """Everything pricing a period needs that does not depend on the consumption."""

    groups: tuple[_Group, ...]
    spans: tuple[_Span, ...]
    first_window: Window
    last: Tariff
    tariffs: tuple[Tariff, ...]


def _layout(tariffs: Sequence[Tariff], period: Period) -> _Layout:
    """The period cut into pieces and window groups, with shares, rates, ladders and standing
    charges: what price_consumption used to work out again for every meter."""
    spans = _spans(tariffs, period)
    total_us = period.microseconds
    pieces = _pieces(spans)
    groups: list[_Group] = []
    runs = [list(g) for _, g in itertools.groupby(pieces, key=lambda p: p.window)]
    for number, run in enumerate(runs):
        run_us = sum(p.microseconds for p in run)
        slots: list[_Slot] = []
        for piece in run:
            rates: Rates = piece.tariff.rates_at(piece.start)
            unit_price = ladder = None
            if piece.tariff.kind == "flat":
                unit_price = None if rates.unit_price is None else Fraction(rates.unit_price)
            else:  # billing-period blocks scale with the piece's share of the period
                scale = Fraction(piece.microseconds, total_us) if piece.window is None else Fraction(1)
                ladder = _ladder(rates.blocks, scale)
            part = None if piece.microseconds == run_us else Fraction(piece.microseconds, run_us)
            slots.append(_Slot(piece, part, rates, unit_price, ladder or ()))
        share_of_run = None if number == len(runs) - 1 else Fraction(run_us, total_us)
        groups.append(_Group(share_of_run, tuple(slots)))
    applied: list[_Span] = []
    for tariff, start, end in spans:
        share = Fraction((end - start) // timedelta(microseconds=1), total_us)
        fixed = Fraction(tariff.standing_charge) * share
        charge = None
        if tariff.standing_charge:
            rounded = round_fraction(fixed, tariff.rounding_mode) if tariff.rounding == "line" else None
            charge = StandingCharge(tariff.id, start, end, share, tariff.standing_charge, fixed, rounded)
        lines_of = tuple(i for i, p in enumerate(pieces) if p.tariff.id == tariff.id and start <= p.start < end)
        used_of = tuple(i for i, p in enumerate(pieces) if p.tariff is tariff and start <= p.start < end)
        applied.append(_Span(tariff, start, end, share, fixed, charge, lines_of, used_of))
    return _Layout(tuple(groups), tuple(applied), pieces[0].window, spans[-1][0],
                   tuple(dict.fromkeys(t for t, _, _ in spans)))


class PricingCache:
    """What pricing works out from the tariffs and the period alone, kept for the next meter.

    For one job (one set of tariff objects, a few distinct periods): keyed by the tariffs'
    identity, not their value, so two tariffs that compare equal but print differently (a price
    stored as 0.61 and as 0.610) never share an entry; each entry holds its tariffs, so their ids
    stay theirs while it exists.
    """

    def __init__(self) -> None:
        self._layouts: dict[tuple[tuple[int, ...], Period], tuple[tuple[Tariff, ...], _Layout]] = {}

    def layout(self, tariffs: Sequence[Tariff], period: Period) -> _Layout:
        """The layout of pricing `period` under `tariffs` (TariffError as price_consumption)."""
        key = (tuple(map(id, tariffs)), period)
        found = self._layouts.get(key)
        if found is None:
            found = self._layouts[key] = (tuple(tariffs), _layout(tariffs, period))
        return found[1]


def _price_slot(slot: _Slot, quantity: Fraction, base: Fraction) -> list[Line]:
    piece, rates = slot.piece, slot.rates
    tariff = piece.tariff
    raw: list[BlockLine] = []
    if tariff.kind == "flat":
        if slot.unit_price is None or rates.unit_price is None:
            raise TariffError(f"flat tariff {tariff.id} has no unit price")
        if quantity:
            raw.append((0, None, None, quantity, rates.unit_price, quantity * slot.unit_price))
    else:
        raw += _ladder_lines(quantity, slot.ladder, base=base)
    return [
        Line(
            tariff.id, rates.season, piece.start, piece.end, block, lower, upper, taken, price, amount,
            round_fraction(amount, tariff.rounding_mode) if tariff.rounding == "line" else None,
        )
        for block, lower, upper, taken, price, amount in raw
    ]


def _group_quantities(consumption: Fraction, groups: Sequence[_Group]) -> list[Fraction]:
    """Consumption per run of pieces in one window: exact decimals that add up to the whole."""
    if len(groups) == 1:
        return [consumption]
    quantities = [
        Fraction(round_fraction(consumption * group.share, "half_even", places=SPLIT_PLACES))
        for group in groups[:-1] if group.share is not None
    ]
    return [*quantities, consumption - sum(quantities, Fraction(0))]


def _sum(values: Iterable[Fraction], start: Fraction) -> Fraction:
    """sum(values, start), without the additions to zero (each costs a gcd in Python's Fraction)."""
    total = start
    for value in values:
        total = total + value if total else value
    return total


def price_consumption(
    consumption: Decimal,
    *,
    tariffs: Sequence[Tariff],
    period: Period,
    accumulated_before: Decimal = Decimal(0),
    cache: PricingCache | None = None,
) -> Charge:
    """Price one period's consumption under the tariffs in force in it (see the module docstring).

    `accumulated_before` is the meter's consumption already billed in the accumulation window
    holding `period.start` (ignored when that tariff's blocks reset every billing period).
    `cache`: a job's PricingCache, so that meters priced over the same period under the same
    tariffs work out the period's pieces, shares and standing charges once.
    """
    if consumption < 0:
        raise TariffError(f"consumption {consumption} is negative")
    if accumulated_before < 0:
        raise TariffError(f"accumulated_before {accumulated_before} is negative")
    layout = _layout(tariffs, period) if cache is None else cache.layout(tariffs, period)
    quantities = _group_quantities(Fraction(consumption), layout.groups)
    first_window = layout.first_window
    held: dict[tuple[datetime, datetime], Fraction] = {}
    before: dict[tuple[datetime, datetime], Fraction] = {}
    if first_window is not None:
        held[first_window] = before[first_window] = Fraction(accumulated_before)
    lines: list[Line] = []
    piece_lines: list[list[Line]] = []
    piece_quantity: list[Fraction] = []
    for group, group_quantity in zip(layout.groups, quantities, strict=True):
        for slot in group.slots:
            quantity = group_quantity if slot.part is None else group_quantity * slot.part
            window = slot.piece.window
            base = Fraction(0)
            if window is not None:
                base = held.setdefault(window, Fraction(0))
                before.setdefault(window, base)
                held[window] = base + quantity
            priced = _price_slot(slot, quantity, base)
            lines += priced
            piece_lines.append(priced)
            piece_quantity.append(quantity)
    charges: list[StandingCharge] = []
    parts: list[ChargePart] = []
    for span in layout.spans:
        if span.charge is not None:
            charges.append(span.charge)
        own = [line for i in span.lines_of for line in piece_lines[i]]
        used = _sum((piece_quantity[i] for i in span.used_of), Fraction(0))
        parts.append(ChargePart(span.tariff.id, span.start, span.end, span.share, as_decimal(used),
                                as_decimal(_sum((ln.amount for ln in own), span.fixed))))
    items: list[Line | StandingCharge] = [*lines, *charges]
    exact = _sum((Fraction(x.rounded) if x.rounded is not None else x.amount for x in items), Fraction(0))
    windows = tuple(
        WindowUse(w[0], w[1], as_decimal(before[w]), as_decimal(held[w] - before[w])) for w in held
    )
    return Charge(
        amount=round_fraction(exact, layout.last.rounding_mode),
        parts=tuple(parts),
        consumption=consumption,
        lines=tuple(lines),
        charges=tuple(charges),
        accumulation=windows,
        accumulated_before=accumulated_before if first_window is not None else Decimal(0),
        tariffs=layout.tariffs,
        exact=exact,
    )
