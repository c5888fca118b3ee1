"""What a bill shows of its charge: block lines, standing charges, accumulation windows, rounding.

Amounts are exact fractions until a tariff's rounding rule rounds them; documents carry decimals as
canonical strings and instants as UTC ISO-8601 text, so they are JSON- and BSON-safe as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from twinbill_billing.domain.tariffs import RoundingMode, Tariff, utc_iso

CENT = Decimal("0.01")


def round_money(amount: Decimal) -> Decimal:
    """Half-up to 0.01."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def round_fraction(value: Fraction, mode: RoundingMode = "half_up", *, places: int = 2) -> Decimal:
    """`value` rounded to `places` decimals in `mode` (half_up: away from zero on a tie)."""
    # On the integers: the same quotient, and a remainder in the same ratio to the denominator, as
    # from Fraction(value * 10**places), without building that fraction (this runs for every bill).
    numerator, denominator = value.numerator, value.denominator
    sign = -1 if numerator < 0 else 1
    quotient, remainder = divmod(abs(numerator) * 10**places, denominator)
    twice = 2 * remainder
    if mode == "half_up":
        quotient += twice >= denominator
    elif mode == "half_even":
        quotient += twice > denominator or (twice == denominator and quotient % 2 == 1)
    elif mode == "up":
        quotient += remainder > 0
    return (Decimal(sign * quotient).scaleb(-places)).quantize(Decimal(1).scaleb(-places))


def as_decimal(value: Fraction) -> Decimal:
    """A fraction as a decimal: exact when it terminates, else to 28 significant digits."""
    numerator, denominator = value.numerator, value.denominator
    if denominator == 1:
        return Decimal(numerator)
    rest, twos, fives = denominator, 0, 0
    while rest % 2 == 0:
        rest //= 2
        twos += 1
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    if rest == 1:  # 10**places / denominator is a whole number: exact
        places = max(twos, fives)
        return Decimal(numerator * 10**places // denominator).scaleb(-places)
    return Decimal(numerator) / Decimal(denominator)


def _text(value: Fraction | Decimal | None) -> str | None:
    if value is None:
        return None
    return format(as_decimal(value) if isinstance(value, Fraction) else value, "f")


def _money(value: Fraction | Decimal) -> str:
    """An amount's text: at least two decimals (12.50), more when exact needs them (0.05383)."""
    number = as_decimal(value) if isinstance(value, Fraction) else value
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        number = number.quantize(CENT)
    return format(number, "f")


@dataclass(frozen=True)
class Line:
    """One block (or flat) line: which piece of the period, block bounds, quantity, price, amount.

    `lower`/`upper` are the bounds as applied (a billing-period block scaled by the piece's time
    share; a window block as published); `block` is 1-based, 0 for a flat price. `rounded` is set
    when the tariff rounds each line.
    """

    tariff_id: str
    season: str | None
    start: datetime
    end: datetime
    block: int
    lower: Fraction | None
    upper: Fraction | None
    quantity: Fraction
    unit_price: Decimal
    amount: Fraction
    rounded: Decimal | None = None

    def to_document(self) -> dict[str, Any]:
        """JSON/BSON-safe form."""
        return {
            "tariff_id": self.tariff_id,
            "season": self.season,
            "from": utc_iso(self.start),
            "to": utc_iso(self.end),
            "block": self.block,
            "lower": _text(self.lower),
            "upper": _text(self.upper),
            "quantity": _text(self.quantity),
            "unit_price": _text(self.unit_price),
            "amount": _money(self.rounded if self.rounded is not None else self.amount),
            "exact_amount": _money(self.amount),
        }


@dataclass(frozen=True)
class StandingCharge:
    """A tariff's fixed charge for the part of the period it was in force."""

    tariff_id: str
    start: datetime
    end: datetime
    share: Fraction
    per_period: Decimal
    amount: Fraction
    rounded: Decimal | None = None

    def to_document(self) -> dict[str, Any]:
        """JSON/BSON-safe form."""
        return {
            "kind": "standing",
            "tariff_id": self.tariff_id,
            "from": utc_iso(self.start),
            "to": utc_iso(self.end),
            "share": f"{self.share.numerator}/{self.share.denominator}",
            "per_period": _text(self.per_period),
            "amount": _money(self.rounded if self.rounded is not None else self.amount),
            "exact_amount": _money(self.amount),
        }


@dataclass(frozen=True)
class WindowUse:
    """An accumulation window the period touched: what it held before and what this bill added."""

    start: datetime
    end: datetime
    accumulated_before: Decimal
    consumption: Decimal

    def to_document(self) -> dict[str, Any]:
        """JSON/BSON-safe form; `window_start`/`window_end` are UTC ISO text, equal for equal windows."""
        return {
            "window_start": utc_iso(self.start),
            "window_end": utc_iso(self.end),
            "accumulated_before": format(self.accumulated_before, "f"),
            "consumption": format(self.consumption, "f"),
        }


@dataclass(frozen=True)
class ChargePart:
    """One tariff's share of a period: time share, consumption share, unrounded amount."""

    tariff_id: str
    start: datetime
    end: datetime
    share: Fraction
    consumption: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Charge:
    """The rounded charge and everything it was summed from."""

    amount: Decimal
    parts: tuple[ChargePart, ...]
    consumption: Decimal = Decimal(0)
    lines: tuple[Line, ...] = ()
    charges: tuple[StandingCharge, ...] = ()
    accumulation: tuple[WindowUse, ...] = ()
    accumulated_before: Decimal = Decimal(0)
    tariffs: tuple[Tariff, ...] = ()
    exact: Fraction = Fraction(0)

    def to_document(self) -> dict[str, Any]:
        """The charge as a bill stores it: decimals as canonical strings, instants as UTC ISO text."""
        return {
            "amount": format(self.amount, "f"),
            "amount_minor": int(self.amount.scaleb(2)),
            "exact_amount": _money(self.exact),
            "consumption": format(self.consumption, "f"),
            "accumulated_before": format(self.accumulated_before, "f"),
            "accumulation": [use.to_document() for use in self.accumulation],
            "lines": [line.to_document() for line in self.lines],
            "charges": [charge.to_document() for charge in self.charges],
            "parts": [
                {
                    "tariff_id": p.tariff_id,
                    "from": utc_iso(p.start),
                    "to": utc_iso(p.end),
                    "share": f"{p.share.numerator}/{p.share.denominator}",
                    "consumption": format(p.consumption, "f"),
                    "amount": format(p.amount, "f"),
                }
                for p in self.parts
            ],
            "tariffs": [t.snapshot() for t in self.tariffs],
        }


def combined(charges: Sequence[Charge]) -> Charge:
    """One bill's charge from the charges of its billing periods (a catch-up bill prices each period
    on its own): amounts added, lines, standing charges, windows and parts listed in order."""
    if len(charges) == 1:
        return charges[0]
    tariffs: dict[str, Tariff] = {}
    for charge in charges:
        tariffs.update((t.id, t) for t in charge.tariffs)
    return Charge(
        amount=sum((c.amount for c in charges), Decimal(0)),
        parts=tuple(p for c in charges for p in c.parts),
        consumption=sum((c.consumption for c in charges), Decimal(0)),
        lines=tuple(line for c in charges for line in c.lines),
        charges=tuple(s for c in charges for s in c.charges),
        accumulation=tuple(w for c in charges for w in c.accumulation),
        accumulated_before=charges[0].accumulated_before if charges else Decimal(0),
        tariffs=tuple(tariffs.values()),
        exact=sum((c.exact for c in charges), Fraction(0)),
    )


def credited(units: Charge, standing: Charge) -> Charge:
    """A period whose consumption is negative (the true-up of an estimate that was too high): the
    energy of `units` (those units priced where they sit in the blocks) credited, the standing
    charges of `standing` (the same period priced at zero consumption) still due."""
    energy = units.amount - standing.amount
    return Charge(
        amount=standing.amount - energy,
        parts=tuple(replace(p, consumption=-p.consumption, amount=-p.amount) for p in units.parts),
        consumption=-units.consumption,
        lines=tuple(replace(line, quantity=-line.quantity, amount=-line.amount,
                            rounded=None if line.rounded is None else -line.rounded) for line in units.lines),
        charges=standing.charges,
        accumulation=tuple(replace(w, consumption=-w.consumption) for w in units.accumulation),
        accumulated_before=standing.accumulated_before,
        tariffs=units.tariffs,
        exact=standing.exact - (units.exact - standing.exact),
    )
