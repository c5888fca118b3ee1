"""Downsample specs as OpenTSDB writes them (`1h-sum`, `30m-avg-nan`, `1dc-sum`, `0all-count`)
and their buckets: aligned to the Unix epoch, or to the calendar of a time zone with `c`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from twinbill_common.schemas.telemetry import DEVICE_TIME_MAX_MS
from twinbill_twin.domain.aggregators import DOWNSAMPLERS
from twinbill_twin.domain.timeparse import UNIT_MS, shown
from twinbill_twin.errors import BadParameter

MAX_BUCKETS = 1_000_000
_SPEC = re.compile(r"^(?:(0all)|(\d{1,18})(ms|s|m|h|d|w|n|y)(c?))-([a-z0-9]+)(?:-([a-z]+))?$")


class Fill(Enum):
    """What an empty bucket becomes: left out, NaN, null or 0."""

    NONE = "none"
    NAN = "nan"
    NULL = "null"
    ZERO = "zero"


@dataclass(frozen=True)
class Downsample:
    """A parsed downsample: `every` `unit`s (every == 0 means the whole range), aggregator, fill."""

    every: int
    unit: str
    calendar: bool
    aggregator: str
    fill: Fill

    @property
    def whole_range(self) -> bool:
        """`0all-<agg>`: one bucket from start to end."""
        return self.every == 0

    @property
    def interval_ms(self) -> int:
        """The fixed bucket width of an epoch-aligned downsample."""
        return self.every * UNIT_MS[self.unit]


def parse_downsample(text: str) -> Downsample:
    """Parse `<interval><unit>[c]-<aggregator>[-<fill>]`, naming what is wrong otherwise."""
    match = _SPEC.match(text.strip())
    if match is None:
        raise BadParameter("downsample", f"{shown(text)} is not <interval><unit>[c]-<aggregator>[-<fill>] "
                                         "(e.g. 1h-sum, 30m-avg-nan, 1dc-sum, 0all-count; units "
                                         "ms s m h d w n y)")
    whole, every, unit, calendar, aggregator, fill = match.groups()
    if aggregator not in DOWNSAMPLERS and aggregator.endswith("c") and aggregator[:-1] in DOWNSAMPLERS \
            and not calendar and not whole:
        aggregator, calendar = aggregator[:-1], "c"  # the seed's own `1d-sumc` spelling of `1dc-sum`
    if aggregator not in DOWNSAMPLERS:
        raise BadParameter("downsample", f"unknown aggregator {aggregator!r} (one of "
                                         f"{', '.join(sorted(DOWNSAMPLERS))})")
    try:
        policy = Fill(fill or "none")
    except ValueError:
        raise BadParameter("downsample", f"unknown fill policy {fill!r} (none, nan, null, zero)") from None
    if whole:
        return Downsample(0, "all", False, aggregator, policy)
    if int(every) <= 0:
        raise BadParameter("downsample", "the interval must be positive (or 0all)")
    spec = Downsample(int(every), unit, bool(calendar), aggregator, policy)
    if spec.interval_ms > DEVICE_TIME_MAX_MS:
        raise BadParameter("downsample", f"the interval {every}{unit} is longer than all the time "
                                         "the store holds (1970..2100); use 0all")
    return spec


def epoch_bucket(ts: int, interval_ms: int) -> int:
    """The start of the epoch-aligned bucket holding `ts` (floor, also before 1970)."""
    return ts - ts % interval_ms


def _floor_calendar(moment: datetime, unit: str) -> datetime:
    if unit == "y":
        return moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit == "n":
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if unit in ("d", "w"):
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if unit == "w":  # ISO weeks start on Monday
            day = (day - timedelta(days=day.weekday())).replace(tzinfo=moment.tzinfo)
        return day
    if unit == "h":
        return moment.replace(minute=0, second=0, microsecond=0)
    if unit == "m":
        return moment.replace(second=0, microsecond=0)
    if unit == "s":
        return moment.replace(microsecond=0)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def _step_calendar(moment: datetime, unit: str, every: int) -> datetime:
    """Add `every` calendar units in local wall time (a DST day is 23 or 25 hours long)."""
    if unit == "y":
        return moment.replace(year=moment.year + every)
    if unit == "n":
        months = moment.month - 1 + every
        return moment.replace(year=moment.year + months // 12, month=months % 12 + 1)
    if unit in ("d", "w"):
        days = every * (7 if unit == "w" else 1)
        return (moment.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=moment.tzinfo)
    # sub-day units: fixed lengths in absolute time (a local hour is an hour)
    return _from_ms(_to_ms(moment) + every * UNIT_MS[unit], moment.tzinfo)  # type: ignore[arg-type]  # tzinfo is a ZoneInfo here


def _to_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _from_ms(ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz)


def calendar_boundaries(start_ms: int, end_ms: int, *, every: int, unit: str, tz: ZoneInfo) -> list[int]:
    """Bucket starts of a calendar downsample covering [start, end], plus the end of the last.

    The first bucket starts at the calendar unit holding `start` (local midnight, first of the
    month...), the next ones `every` units later in local wall time, so a day across a DST change
    lasts 23 or 25 hours.
    """
    first = _floor_calendar(_from_ms(start_ms, tz), unit)
    bounds = [_to_ms(first)]
    moment = first
    while bounds[-1] <= end_ms:
        moment = _step_calendar(moment, unit, every)
        # re-resolve the wall time (a nonexistent local midnight moves forward)
        nxt = _to_ms(moment.replace(tzinfo=None).replace(tzinfo=tz)) if unit in "dwny" else _to_ms(moment)
        if nxt <= bounds[-1]:
            raise BadParameter("downsample", "calendar buckets did not advance")
        bounds.append(nxt)
        if len(bounds) > MAX_BUCKETS + 1:
            raise BadParameter("downsample", f"more than {MAX_BUCKETS} buckets; use a wider interval")
    return bounds


def bucket_boundaries(spec: Downsample, start_ms: int, end_ms: int, tz: ZoneInfo) -> list[int] | None:
    """Explicit bucket boundaries for calendar and whole-range downsamples; None for epoch ones."""
    if spec.whole_range:
        return [start_ms, end_ms + 1]
    if spec.calendar:
        return calendar_boundaries(start_ms, end_ms, every=spec.every, unit=spec.unit, tz=tz)
    count = (epoch_bucket(end_ms, spec.interval_ms) - epoch_bucket(start_ms, spec.interval_ms)) \
        // spec.interval_ms + 1
    if count > MAX_BUCKETS:
        raise BadParameter("downsample", f"{count} buckets between start and end; at most "
                                         f"{MAX_BUCKETS} (use a wider interval)")
    return None


def bucket_starts(spec: Downsample, start_ms: int, end_ms: int, tz: ZoneInfo) -> list[int]:
    """Every bucket start a filled series has between start and end."""
    bounds = bucket_boundaries(spec, start_ms, end_ms, tz)
    if bounds is not None:
        return bounds[:-1]
    step = spec.interval_ms
    return list(range(epoch_bucket(start_ms, step), end_ms + 1, step))


def rollup_usable(spec: Downsample, bounds: list[int] | None, rollup_ms: int) -> bool:
    """A rollup of width `rollup_ms` can feed this downsample: each rollup bucket lies in one bucket."""
    if bounds is None:
        return spec.interval_ms % rollup_ms == 0
    if spec.whole_range:
        return True
    return all(bound % rollup_ms == 0 for bound in bounds)
