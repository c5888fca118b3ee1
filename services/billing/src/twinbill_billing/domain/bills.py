"""The decision for one device and period: a bill draft, or skipped / failed / exception with a reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import (
    Charge,
    Tariff,
    TariffError,
    pick_tariffs,
    price_consumption,
)
from twinbill_billing.domain.usage import BackwardsReading, Usage, compute_usage


@dataclass(frozen=True)
class Reading:
    """A register value at an instant; `source` says where an opening reading came from."""

    value: Decimal
    time: datetime
    source: Literal["previous_bill", "period_start_reading", "reading"] = "reading"


@dataclass(frozen=True)
class Meter:
    """What billing needs of a device (from the registry at billing time)."""

    device_id: int
    water_meter_kind: str | None
    multiplier: Decimal
    register_max: Decimal | None


@dataclass(frozen=True)
class BillDraft:
    """Everything a bill states, before it is stored."""

    opening: Reading
    closing: Reading
    usage: Usage
    charge: Charge


@dataclass(frozen=True)
class NotBilled:
    """Why a device got no bill: skipped (no data), failed (no price), exception (backwards reading)."""

    outcome: Literal["skipped", "failed", "exception"]
    reason: str


def decide_bill(
    meter: Meter,
    *,
    period: Period,
    opening: Reading | None,
    closing: Reading | None,
    tariffs: Sequence[Tariff],
    accumulated_before: Decimal = Decimal(0),
) -> BillDraft | NotBilled:
    """Bill one meter for one period, or say why not. Never invents a reading or a negative bill.

    `accumulated_before`: the meter's consumption already billed in the tariff's accumulation
    window holding the period start (annual blocks priced monthly); see price_consumption.
    """
    if closing is None:
        return NotBilled("skipped", "no reading at or before the period end")
    if not period.contains(closing.time):
        return NotBilled("skipped", f"no reading in the period; the last one is at {closing.time.isoformat()}")
    if opening is None:
        return NotBilled(
            "skipped",
            "no opening reading: no previous bill and no reading at or before the period start",
        )
    try:
        usage = compute_usage(
            opening.value,
            closing.value,
            multiplier=meter.multiplier,
            register_max=meter.register_max,
        )
    except BackwardsReading as err:
        return NotBilled("exception", str(err))
    try:
        charge = price_consumption(
            usage.consumption,
            period=period,
            tariffs=pick_tariffs(tariffs, water_meter_kind=meter.water_meter_kind),
            accumulated_before=accumulated_before,
        )
    except TariffError as err:
        return NotBilled("failed", f"no price: {err}")
    return BillDraft(opening, closing, usage, charge)


def canonical(value: Decimal) -> str:
    """A decimal's canonical text for storage: no exponent, trailing zeros kept as measured."""
    return format(value, "f")
