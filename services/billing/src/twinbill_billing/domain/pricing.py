"""Tariffs and pricing: flat or tiered (graduated blocks), effective-dated, split pro-rata by time.

Rounding step: nothing is rounded until the end. Block amounts and tariff parts keep full
precision; the charge is their sum rounded once, half-up, to 0.01.

A tariff change inside a period: the period is split at the change; each tariff in force gets the
share of the consumption proportional to the time it was in force (exact fractions of
microseconds), and a tiered tariff's block limits are scaled by the same share, so a change never
hands the customer a second set of cheap first blocks nor pushes them into dearer ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal

from twinbill_billing.domain.periods import Period

CENT = Decimal("0.01")


class TariffError(ValueError):
    """No tariff (or no unambiguous tariff) prices this period: the device fails with this reason."""


@dataclass(frozen=True)
class Block:
    """A graduated block: consumption up to `up_to` (cumulative; None = no limit) at `price` per unit."""

    up_to: Decimal | None
    price: Decimal


@dataclass(frozen=True)
class Tariff:
    """A tariff in force over [effective_from, effective_to) (effective_to None = open-ended)."""

    id: str
    kind: Literal["flat", "tiered"]
    effective_from: datetime
    effective_to: datetime | None = None
    unit_price: Decimal | None = None
    blocks: tuple[Block, ...] = ()
    water_meter_kind: str | None = None


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
    """The rounded charge and the parts it was summed from."""

    amount: Decimal
    parts: tuple[ChargePart, ...]


def round_money(amount: Decimal) -> Decimal:
    """Half-up to 0.01: the only rounding step."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _scale(value: Decimal, share: Fraction) -> Decimal:
    if share == 1:
        return value
    return value * Decimal(share.numerator) / Decimal(share.denominator)


def price_blocks(consumption: Decimal, blocks: Sequence[Block], *, share: Fraction = Fraction(1)) -> Decimal:
    """Graduated pricing: each block's slice of the consumption at that block's own rate (unrounded)."""
    total = Decimal(0)
    lower = Decimal(0)
    for block in blocks:
        upper = None if block.up_to is None else _scale(block.up_to, share)
        if consumption <= lower:
            break
        top = consumption if upper is None else min(consumption, upper)
        total += (top - lower) * block.price
        if upper is None:
            return total
        lower = upper
    if consumption > lower:
        raise TariffError(f"consumption {consumption} exceeds the last block (the last block needs no limit)")
    return total


def price_tariff(consumption: Decimal, tariff: Tariff, *, share: Fraction = Fraction(1)) -> Decimal:
    """One tariff's unrounded amount for `consumption` (blocks scaled by `share`)."""
    if tariff.kind == "flat":
        if tariff.unit_price is None:
            raise TariffError(f"flat tariff {tariff.id} has no unit price")
        return consumption * tariff.unit_price
    return price_blocks(consumption, tariff.blocks, share=share)


def pick_tariffs(tariffs: Sequence[Tariff], *, water_meter_kind: str | None) -> list[Tariff]:
    """The tariffs for a device's water-meter kind: its own kind's if any, else the kind-less ones."""
    own = [t for t in tariffs if water_meter_kind is not None and t.water_meter_kind == water_meter_kind]
    return own or [t for t in tariffs if t.water_meter_kind is None]


def price_consumption(consumption: Decimal, *, tariffs: Sequence[Tariff], period: Period) -> Charge:
    """Price one period's consumption under the tariffs in force in it (see the module docstring)."""
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
    total_us = period.microseconds
    parts: list[ChargePart] = []
    for tariff, start, end in spans:
        share = Fraction((end - start) // timedelta(microseconds=1), total_us)
        portion = _scale(consumption, share)
        parts.append(ChargePart(tariff.id, start, end, share, portion, price_tariff(portion, tariff, share=share)))
    return Charge(round_money(sum((p.amount for p in parts), Decimal(0))), tuple(parts))
