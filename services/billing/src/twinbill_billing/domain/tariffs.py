"""Tariffs as utilities publish them: blocks, seasons, standing charge, accumulation windows, rounding.

Local dates (a window's reset date, a season's months) are read in the tariff's `timezone`, which
the API fills with the project's time zone when the tariff is created. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

AccumulationPeriod = Literal["billing_period", "month", "quarter", "year"]
RoundingRule = Literal["total", "line"]
RoundingMode = Literal["half_up", "half_even", "down", "up"]
MONTHS_PER_WINDOW = {"month": 1, "quarter": 3, "year": 12}


class TariffError(ValueError):
    """No tariff (or no unambiguous tariff) prices this period: the device fails with this reason."""


@dataclass(frozen=True)
class Block:
    """A graduated block: consumption up to `up_to` (cumulative; None = no limit) at `price` per unit."""

    up_to: Decimal | None
    price: Decimal


@dataclass(frozen=True)
class Season:
    """Prices for the months `from_month`..`to_month` (inclusive; 10..5 wraps over the new year)."""

    name: str
    from_month: int
    to_month: int
    unit_price: Decimal | None = None
    blocks: tuple[Block, ...] = ()

    @property
    def months(self) -> frozenset[int]:
        """The calendar months (1-12) this season covers."""
        if self.from_month <= self.to_month:
            return frozenset(range(self.from_month, self.to_month + 1))
        return frozenset(range(self.from_month, 13)) | frozenset(range(1, self.to_month + 1))


@dataclass(frozen=True)
class Rates:
    """What prices consumption at one instant: the season's (or the tariff's own) price or blocks."""

    season: str | None
    unit_price: Decimal | None
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Tariff:
    """A tariff in force over [effective_from, effective_to) (effective_to None = open-ended).

    `accumulation_period` says over what the blocks fill up: the billing period (blocks start
    empty every bill, scaled by time when the period is split) or a calendar window (month,
    quarter, year) starting on `reset_month`/`reset_day` local time, whose consumption carries
    from bill to bill. `standing_charge` is due once per billing period (pro rata by time when the
    tariff covers only part of it). `rounding` is `total` (round the sum once) or `line` (round
    each block line and charge, then add), in `rounding_mode`.
    """

    id: str
    kind: Literal["flat", "tiered"]
    effective_from: datetime
    effective_to: datetime | None = None
    unit_price: Decimal | None = None
    blocks: tuple[Block, ...] = ()
    water_meter_kind: str | None = None
    name: str = ""
    accumulation_period: AccumulationPeriod = "billing_period"
    reset_month: int | None = None
    reset_day: int | None = None
    timezone: str = "UTC"
    standing_charge: Decimal = Decimal(0)
    seasons: tuple[Season, ...] = ()
    rounding: RoundingRule = "total"
    rounding_mode: RoundingMode = "half_up"

    @property
    def zone(self) -> ZoneInfo:
        """The zone its local dates are read in."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise TariffError(f"tariff {self.id} has an unknown time zone {self.timezone!r}") from err

    def season_at(self, at: datetime) -> Season | None:
        """The season in force at `at` (its local month), or None for a tariff without seasons."""
        if not self.seasons:
            return None
        month = at.astimezone(self.zone).month
        for season in self.seasons:
            if month in season.months:
                return season
        raise TariffError(f"tariff {self.id} has no season for month {month}")

    def rates_at(self, at: datetime) -> Rates:
        """The prices in force at `at`."""
        season = self.season_at(at)
        if season is None:
            return Rates(None, self.unit_price, self.blocks)
        return Rates(season.name, season.unit_price, season.blocks)

    def snapshot(self) -> dict[str, Any]:
        """The tariff as a bill records it: JSON- and BSON-safe (decimals and instants as text)."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "unit_price": _text(self.unit_price),
            "blocks": [_block(b) for b in self.blocks],
            "water_meter_kind": self.water_meter_kind,
            "effective_from": utc_iso(self.effective_from),
            "effective_to": None if self.effective_to is None else utc_iso(self.effective_to),
            "accumulation_period": self.accumulation_period,
            "reset_month": self.reset_month,
            "reset_day": self.reset_day,
            "timezone": self.timezone,
            "standing_charge": _text(self.standing_charge),
            "seasons": [
                {
                    "name": s.name,
                    "from_month": s.from_month,
                    "to_month": s.to_month,
                    "unit_price": _text(s.unit_price),
                    "blocks": [_block(b) for b in s.blocks],
                }
                for s in self.seasons
            ],
            "rounding": self.rounding,
            "rounding_mode": self.rounding_mode,
        }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _block(block: Block) -> dict[str, str | None]:
    return {"up_to": _text(block.up_to), "price": format(block.price, "f")}


def utc_iso(instant: datetime) -> str:
    """An instant as UTC ISO-8601 text (what bills and snapshots store)."""
    if instant.fold:  # see _utc_iso
        return instant.astimezone(UTC).isoformat()
    return _utc_iso(instant)


@lru_cache(maxsize=4096)
def _utc_iso(instant: datetime) -> str:
    """Memoized: a job's bills repeat a few instants (the period's bounds, the tariffs' dates),
    and `astimezone` is most of the cost. The text depends on the instant alone, and aware
    datetimes that compare equal are the same instant, except two wall times of one zone that
    differ only in `fold` (a DST repeat hour): only fold 0 is cached, so a hit is always right."""
    return instant.astimezone(UTC).isoformat()



def _local_month_start(tariff: Tariff, index: int, day: int = 1) -> datetime:
    """Day `day` of month `index` (year * 12 + month - 1) at local midnight, as a UTC instant."""
    year, month = divmod(index, 12)
    return datetime(year, month + 1, day, tzinfo=tariff.zone).astimezone(UTC)


def accumulation_window(tariff: Tariff, at: datetime) -> tuple[datetime, datetime] | None:
    """The [start, end) window (UTC instants) whose consumption fills `tariff`'s blocks at `at`.

    None when the blocks reset every billing period. A month window starts on `reset_day` of each
    month; a quarter on `reset_day` of `reset_month` and every third month from it; a year on
    `reset_day` of `reset_month` (1 January for a calendar year, 1 July for a water year).
    """
    if tariff.accumulation_period == "billing_period":
        return None
    step = MONTHS_PER_WINDOW[tariff.accumulation_period]
    if tariff.reset_day is None or (step > 1 and tariff.reset_month is None):
        raise TariffError(f"tariff {tariff.id} accumulates per {tariff.accumulation_period} without a reset date")
    anchor = 0 if step == 1 else (tariff.reset_month or 1) - 1
    local = at.astimezone(tariff.zone)
    index = local.year * 12 + local.month - 1
    index -= (index - anchor) % step
    start = _local_month_start(tariff, index, tariff.reset_day)
    if start > at:
        index -= step
        start = _local_month_start(tariff, index, tariff.reset_day)
    return start, _local_month_start(tariff, index + step, tariff.reset_day)


def window_resets(tariff: Tariff, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every window reset strictly inside (start, end)."""
    window = accumulation_window(tariff, start)
    while window is not None and window[1] < end:
        yield window[1]
        window = accumulation_window(tariff, window[1])


def season_changes(tariff: Tariff, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every local month start strictly inside (start, end) where the season changes."""
    if not tariff.seasons:
        return
    local = start.astimezone(tariff.zone)
    index = local.year * 12 + local.month  # the month after start's
    current = tariff.season_at(start)
    while (boundary := _local_month_start(tariff, index)) < end:
        season = tariff.season_at(boundary)
        if season != current:
            yield boundary
            current = season
        index += 1


def pick_tariffs(tariffs: Sequence[Tariff], *, water_meter_kind: str | None) -> list[Tariff]:
    """The tariffs for a device's water-meter kind: its own kind's if any, else the kind-less ones."""
    own = [t for t in tariffs if water_meter_kind is not None and t.water_meter_kind == water_meter_kind]
    return own or [t for t in tariffs if t.water_meter_kind is None]
