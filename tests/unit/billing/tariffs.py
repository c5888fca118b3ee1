"""Tariffs and periods the tariff-rule tests share: Beijing's published residential blocks
(annual, billed monthly; years reset on 1 January, Asia/Shanghai time) and flat tariffs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from twinbill_billing.domain.periods import Period
from twinbill_billing.domain.pricing import Block, Tariff

D = Decimal
SH = ZoneInfo("Asia/Shanghai")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
WATER_BLOCKS = (Block(D("180"), D("5")), Block(D("260"), D("7")), Block(None, D("9")))
POWER_BLOCKS = (Block(D("2880"), D("0.4883")), Block(D("4800"), D("0.5383")), Block(None, D("0.7883")))


def local(year: int, month: int, day: int = 1) -> datetime:
    """Midnight local time in Beijing."""
    return datetime(year, month, day, tzinfo=SH)


def month_period(year: int, month: int) -> Period:
    """A calendar month, Beijing time."""
    after = local(year + month // 12, month % 12 + 1)
    return Period(local(year, month), after)


def annual(blocks: tuple[Block, ...] = WATER_BLOCKS, *, tid: str = "bj", rounding: str = "total",
           reset_month: int = 1, since: datetime = EPOCH, until: datetime | None = None,
           standing: str = "0") -> Tariff:
    """A tiered tariff whose blocks fill up over a year resetting on `reset_month`-01, Beijing time."""
    return Tariff(id=tid, kind="tiered", blocks=blocks, effective_from=since, effective_to=until,
                  accumulation_period="year", reset_month=reset_month, reset_day=1,
                  timezone="Asia/Shanghai", rounding=rounding,  # type: ignore[arg-type]
                  standing_charge=D(standing))


def flat(price: str, *, tid: str = "f", since: datetime = EPOCH, until: datetime | None = None,
         standing: str = "0", rounding: str = "total") -> Tariff:
    """A flat tariff (billing-period blocks), Beijing time."""
    return Tariff(id=tid, kind="flat", unit_price=D(price), effective_from=since, effective_to=until,
                  timezone="Asia/Shanghai", standing_charge=D(standing),
                  rounding=rounding)  # type: ignore[arg-type]


def year_to_date(earlier: list[dict[str, Any]], window: tuple[datetime, datetime] | None) -> Decimal:
    """What the ledger does: add the consumption earlier bills credited to this window."""
    if window is None:
        return D(0)
    start, end = (w.isoformat() for w in window)
    return sum((D(use["consumption"]) for doc in earlier for use in doc["accumulation"]
                if use["window_start"] == start and use["window_end"] == end), D(0))
