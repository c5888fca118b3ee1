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
from collections.abc import Sequence
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


def _block_lines(
    quantity: Fraction, blocks: Sequence[Block], *, base: Fraction, scale: Fraction
) -> list[tuple[int, Fraction, Fraction | None, Fraction, Decimal, Fraction]]:
    """(block, lower, upper, quantity, price, amount) of [base, base + quantity) on the ladder."""
    out: list[tuple[int, Fraction, Fraction | None, Fraction, Decimal, Fraction]] = []
    top = base + quantity
    lower = Fraction(0)
    for index, block in enumerate(blocks, start=1):
        upper = None if block.up_to is None else Fraction(block.up_to) * scale
        taken = (top if upper is None else min(top, upper)) - max(base, lower)
        if taken > 0:
            out.append((index, lower, upper, taken, block.price, taken * Fraction(block.price)))
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


def _group_quantities(consumption: Fraction, groups: list[list[_Piece]], total_us: int) -> list[Fraction]:
    """Consumption per run of pieces in one window: exact decimals that add up to the whole."""
    if len(groups) == 1:
        return [consumption]
    quantities = [
        Fraction(round_fraction(consumption * Fraction(sum(p.microseconds for p in g), total_us),
                                "half_even", places=SPLIT_PLACES))
        for g in groups[:-1]
    ]
    return [*quantities, consumption - sum(quantities, Fraction(0))]


def _price_piece(piece: _Piece, quantity: Fraction, share: Fraction, base: Fraction) -> list[Line]:
    tariff = piece.tariff
    rates: Rates = tariff.rates_at(piece.start)
    raw: list[tuple[int, Fraction | None, Fraction | None, Fraction, Decimal, Fraction]] = []
    if tariff.kind == "flat":
        if rates.unit_price is None:
            raise TariffError(f"flat tariff {tariff.id} has no unit price")
        if quantity:
            raw.append((0, None, None, quantity, rates.unit_price, quantity * Fraction(rates.unit_price)))
    else:
        scale = share if piece.window is None else Fraction(1)
        raw += _block_lines(quantity, rates.blocks, base=base, scale=scale)
    return [
        Line(
            tariff.id, rates.season, piece.start, piece.end, block, lower, upper, taken, price, amount,
            round_fraction(amount, tariff.rounding_mode) if tariff.rounding == "line" else None,
        )
        for block, lower, upper, taken, price, amount in raw
    ]


def price_consumption(
    consumption: Decimal,
    *,
    tariffs: Sequence[Tariff],
    period: Period,
    accumulated_before: Decimal = Decimal(0),
) -> Charge:
    """Price one period's consumption under the tariffs in force in it (see the module docstring).

    `accumulated_before` is the meter's consumption already billed in the accumulation window
    holding `period.start` (ignored when that tariff's blocks reset every billing period).
    """
    if consumption < 0:
        raise TariffError(f"consumption {consumption} is negative")
    if accumulated_before < 0:
        raise TariffError(f"accumulated_before {accumulated_before} is negative")
    spans = _spans(tariffs, period)
    total_us = period.microseconds
    pieces = _pieces(spans)
    groups = [list(g) for _, g in itertools.groupby(pieces, key=lambda p: p.window)]
    quantities = _group_quantities(Fraction(consumption), groups, total_us)
    first_window = pieces[0].window
    held: dict[tuple[datetime, datetime], Fraction] = {}
    before: dict[tuple[datetime, datetime], Fraction] = {}
    if first_window is not None:
        held[first_window] = before[first_window] = Fraction(accumulated_before)
    lines: list[Line] = []
    piece_quantity: list[Fraction] = []
    for group, group_quantity in zip(groups, quantities, strict=True):
        group_us = sum(p.microseconds for p in group)
        for piece in group:
            quantity = group_quantity * Fraction(piece.microseconds, group_us)
            share = Fraction(piece.microseconds, total_us)
            base = Fraction(0)
            if piece.window is not None:
                base = held.setdefault(piece.window, Fraction(0))
                before.setdefault(piece.window, base)
                held[piece.window] = base + quantity
            lines += _price_piece(piece, quantity, share, base)
            piece_quantity.append(quantity)
    charges: list[StandingCharge] = []
    parts: list[ChargePart] = []
    for tariff, start, end in spans:
        share = Fraction((end - start) // timedelta(microseconds=1), total_us)
        fixed = Fraction(tariff.standing_charge) * share
        if tariff.standing_charge:
            rounded = round_fraction(fixed, tariff.rounding_mode) if tariff.rounding == "line" else None
            charges.append(StandingCharge(tariff.id, start, end, share, tariff.standing_charge, fixed, rounded))
        own = [line for line in lines if line.tariff_id == tariff.id and start <= line.start < end]
        used = sum((q for p, q in zip(pieces, piece_quantity, strict=True)
                    if p.tariff is tariff and start <= p.start < end), Fraction(0))
        parts.append(ChargePart(tariff.id, start, end, share, as_decimal(used),
                                as_decimal(sum((ln.amount for ln in own), fixed))))
    items: list[Line | StandingCharge] = [*lines, *charges]
    exact = sum((Fraction(x.rounded) if x.rounded is not None else x.amount for x in items), Fraction(0))
    last = spans[-1][0]
    windows = tuple(
        WindowUse(w[0], w[1], as_decimal(before[w]), as_decimal(held[w] - before[w])) for w in held
    )
    used_tariffs = tuple(dict.fromkeys(t for t, _, _ in spans))
    return Charge(
        amount=round_fraction(exact, last.rounding_mode),
        parts=tuple(parts),
        consumption=consumption,
        lines=tuple(lines),
        charges=tuple(charges),
        accumulation=windows,
        accumulated_before=accumulated_before if first_window is not None else Decimal(0),
        tariffs=used_tariffs,
        exact=exact,
    )
