"""BEMServer's analysis arithmetic (bemserver-core 0.22), pure: completeness per bucket, energy
unit conversion, and heating/cooling degree days from hourly air temperatures."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# Energy units in Wh, volumes in m3: what the breakdown converts between (BEMServer uses pint;
# twinbill knows the units its meters and BEMServer's energy series use).
ENERGY_WH = {"Wh": 1.0, "kWh": 1e3, "MWh": 1e6, "GWh": 1e9, "TWh": 1e12, "J": 1 / 3600, "kJ": 1 / 3.6,
             "MJ": 1e3 / 3.6, "GJ": 1e6 / 3.6, "TJ": 1e9 / 3.6}
VOLUME_M3 = {"m3": 1.0, "m³": 1.0, "m**3": 1.0, "m^3": 1.0, "L": 1e-3, "l": 1e-3, "dm3": 1e-3, "kL": 1.0}


def unit_family(unit: str) -> str | None:
    """'energy', 'volume' or None (a unit the breakdown cannot convert)."""
    if unit in ENERGY_WH:
        return "energy"
    if unit in VOLUME_M3:
        return "volume"
    return None


def conversion(source: str, target: str) -> float | None:
    """The factor from `source` to `target` units, None when they are not of one kind."""
    if source in ENERGY_WH and target in ENERGY_WH:
        return ENERGY_WH[source] / ENERGY_WH[target]
    if source in VOLUME_M3 and target in VOLUME_M3:
        return VOLUME_M3[source] / VOLUME_M3[target]
    return None


@dataclass(frozen=True)
class Completeness:
    """One series' completeness, BEMServer's fields."""

    count: list[int]
    ratio: list[float | None]
    total_count: int
    avg_count: float | None
    avg_ratio: float | None
    interval: float | None
    undefined_interval: bool
    expected_count: list[float | None]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def completeness(counts: Sequence[int], seconds: Sequence[float], interval: int | None) -> Completeness:
    """Expected counts (bucket seconds / interval) and ratios (count / bucket seconds x interval).

    Without a defined interval it is inferred as BEMServer does, from the highest rate of any
    bucket (1 / max(count / seconds)); no value at all leaves it undefined (None)."""
    rates = [c / s for c, s in zip(counts, seconds, strict=True)]
    used: float | None = interval  # defined: an int as BEMServer reads it; inferred: a float
    if used is None:
        top = max(rates, default=0.0)
        used = 1 / top if top else None
    if used is None:
        ratio: list[float | None] = [None] * len(counts)
        expected: list[float | None] = [None] * len(counts)
        avg_ratio = None
    else:
        ratio = [r * used for r in rates]
        expected = [s / used for s in seconds]
        avg_ratio = _mean([r * used for r in rates])
    return Completeness(list(counts), ratio, sum(counts), _mean([float(c) for c in counts]), avg_ratio, used,
                        interval is None, expected)


def degree_days(hourly: Sequence[tuple[datetime, float | None]], *, zone: ZoneInfo, period: str, kind: str,
                base: float) -> dict[datetime, float | None]:
    """BEMServer's compute_dd over hourly average temperatures (local hour starts in `zone`):
    each day's (min + max) / 2 of its hourly values; heating max(base - avg, 0), cooling
    max(avg - base, 0); summed per day, month (first day) or year (1 January). A day without
    values is missing; a period whose every day is missing is None."""
    days: dict[datetime, list[float]] = {}
    order: list[datetime] = []
    for moment, value in hourly:
        local = moment.astimezone(zone)
        day = datetime(local.year, local.month, local.day, tzinfo=zone)
        if day not in days:
            days[day] = []
            order.append(day)
        if value is not None and not math.isnan(value):
            days[day].append(value)
    result: dict[datetime, float | None] = {}
    for day in _calendar(order):
        values = days.get(day, [])
        label = _label(day, period)
        if label not in result:
            result[label] = None
        if not values:
            continue
        average = (min(values) + max(values)) / 2
        amount = max(base - average, 0.0) if kind == "heating" else max(average - base, 0.0)
        current = result[label]
        result[label] = amount if current is None else current + amount
    return result


def _calendar(days: list[datetime]) -> list[datetime]:
    """Every local day from the first to the last (pandas' resample fills the days between)."""
    if not days:
        return []
    out = [days[0]]
    while out[-1] < days[-1]:
        step = out[-1].replace(tzinfo=None) + timedelta(days=1)
        out.append(step.replace(tzinfo=days[0].tzinfo))
    return out


def _label(day: datetime, period: str) -> datetime:
    if period == "month":
        return day.replace(day=1)
    if period == "year":
        return day.replace(month=1, day=1)
    return day
