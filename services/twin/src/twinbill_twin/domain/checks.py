"""What the BEMServer check services compute, apart from where they read and write
(twinbill_twin.checks): the period a run covers (the last whole one, or a task's offsets), a
task's threshold parameter, a series' Interval and Min/Max properties as BEMServer reads them, and
the line an event gives each series."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

Service = Literal["check_missing", "check_outliers", "cleanup", "weather", "weather_forecast"]
SERVICES: tuple[Service, ...] = ("check_missing", "check_outliers", "cleanup", "weather", "weather_forecast")
Period = Literal["hour", "day"]


def last_period(now: datetime, zone: ZoneInfo, period: Period) -> tuple[datetime, datetime]:
    """The whole period before the one `now` is in: yesterday in the zone (a DST day is 23 or
    25 hours), or the last whole hour. bemserver-core: floor, then one period before."""
    if period == "hour":
        end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return end - timedelta(hours=1), end
    local = now.astimezone(zone)
    end = datetime(local.year, local.month, local.day, tzinfo=zone)
    start = (end.replace(tzinfo=None) - timedelta(days=1)).replace(tzinfo=zone)
    return start, end


# bemserver-core 0.21-0.22's tasks (bemserver-api 0.26-0.27's /tasks/ and /tasks_by_campaigns/):
# name -> (the services it runs, its default parameters)
TASKS: dict[str, tuple[tuple[Service, ...], dict[str, Any]]] = {
    "CheckMissingData": (("check_missing",), {"min_completeness_ratio": 0.9}),
    "CheckOutliers": (("check_outliers",), {"min_correctness_ratio": 0.9}),
    "Cleanup": (("cleanup",), {}),
    "DownloadWeatherData": (("weather", "weather_forecast"), {"sites": [], "forecast": False}),
}
UNITS = ("second", "minute", "hour", "day", "week", "month", "year")


def _shift(moment: datetime, unit: str, count: int) -> datetime:
    """`moment` moved by `count` units: fixed units in elapsed time, days and up on the wall clock."""
    if unit in ("second", "minute", "hour"):
        return (moment.astimezone(UTC) + timedelta(**{f"{unit}s": count})).astimezone(moment.tzinfo)
    wall = moment.replace(tzinfo=None)
    if unit in ("day", "week"):
        wall += timedelta(days=count * (7 if unit == "week" else 1))
    else:
        months = wall.year * 12 + wall.month - 1 + count * (12 if unit == "year" else 1)
        wall = wall.replace(year=months // 12, month=months % 12 + 1)
    return wall.replace(tzinfo=moment.tzinfo)


def task_period(now: datetime, zone: ZoneInfo, unit: str, start_offset: int,
                end_offset: int) -> tuple[datetime, datetime]:
    """A task's interval from the time it runs: bemserver-core's `now + offset x unit`, from `now`
    floored to the unit in the campaign's zone (so a repeated run covers the same interval and
    its events are written once; core does not floor)."""
    local = now.astimezone(zone)
    if unit == "second":
        base = local.replace(microsecond=0)
    elif unit == "minute":
        base = local.replace(second=0, microsecond=0)
    elif unit == "hour":
        base = (now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)).astimezone(zone)
    else:
        day = datetime(local.year, local.month, local.day, tzinfo=zone)
        if unit == "week":
            day = _shift(day, "day", -day.weekday())
        elif unit == "month":
            day = day.replace(day=1)
        elif unit == "year":
            day = day.replace(month=1, day=1)
        base = day
    return _shift(base, unit, start_offset), _shift(base, unit, end_offset)


@dataclass(frozen=True)
class SeriesFigures:
    """What a check found for one series in the period."""

    id: int
    name: str
    scope_id: int
    count: int
    expected: float | None = None     # missing-data check
    ratio: float | None = None        # completeness, or the share of values inside min/max
    flagged: bool = False


def task_ratio(parameters: Any, service: Service) -> float | None:
    """A task's threshold parameter (min_completeness_ratio, min_correctness_ratio), if usable."""
    if isinstance(parameters, str):
        try:
            parameters = json.loads(parameters)
        except ValueError:
            return None
    if not isinstance(parameters, dict):
        return None
    value = parameters.get("min_completeness_ratio" if service == "check_missing" else "min_correctness_ratio")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def interval_seconds(value: str | None) -> int | None:
    """The "Interval" property as BEMServer reads it (int of its value, seconds); unusable: None."""
    if value is None:
        return None
    try:
        number = int(float(value))
    except ValueError:
        return None
    return number if number > 0 else None


def bound(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def describe(service: Service, figures: SeriesFigures) -> str:
    if service == "check_missing":
        expected = "unknown" if figures.expected is None else f"{figures.expected:g}"
        ratio = "none" if figures.ratio is None else f"{figures.ratio:.4f}"
        return f"{figures.name}: {figures.count} values, {expected} expected, ratio {ratio}"
    ratio = "none" if figures.ratio is None else f"{figures.ratio:.4f}"
    return f"{figures.name}: {figures.count} values, share inside Min/Max {ratio}"
