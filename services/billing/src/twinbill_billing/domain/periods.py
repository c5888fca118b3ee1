"""Billing periods and the seed-000 rendering of instants and dates in a project's time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twinbill_common.times import seed000_time


class PeriodError(ValueError):
    """A period or date that cannot be used."""


@dataclass(frozen=True)
class Period:
    """The half-open billing period (start, end]: a reading at `end` belongs to it, one at `start` does not."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise PeriodError("period bounds must be timezone-aware")
        if self.end <= self.start:
            raise PeriodError(f"period end {self.end.isoformat()} is not after its start {self.start.isoformat()}")

    @property
    def microseconds(self) -> int:
        """Length in microseconds: an exact integer, so pro-rata shares are exact fractions."""
        return (self.end - self.start) // timedelta(microseconds=1)


def zone(name: str) -> ZoneInfo:
    """An IANA time zone, or PeriodError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise PeriodError(f"unknown time zone {name!r}") from err


def render_local(instant: datetime, *, tz: str) -> str:
    """Seed 000's time text: naive ISO-8601 local time to the second, e.g. 2019-10-01T00:00:00."""
    return seed000_time(instant, zone(tz))


def from_epoch_ms(value: int) -> datetime:
    """An epoch-millisecond instant as an aware UTC datetime."""
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def to_epoch_ms(instant: datetime) -> int:
    """An aware datetime as epoch milliseconds (exact: integer arithmetic)."""
    delta = instant - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(milliseconds=1)


_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


def parse_seed_date(text: str) -> date:
    """A seed-000 date: `2019-9-21` (month and day with or without a leading zero)."""
    match = _DATE.match(text.strip())
    if match is None:
        raise PeriodError(f"{text!r} is not a date like 2019-9-21")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as err:
        raise PeriodError(f"{text!r} is not a valid date: {err}") from err


def local_day_bounds(first: date, last: date, *, tz: str) -> tuple[datetime, datetime]:
    """[start of `first`, start of the day after `last`) in the zone, as UTC instants."""
    if last < first:
        raise PeriodError(f"end_date {last.isoformat()} is before start_date {first.isoformat()}")
    info = zone(tz)
    start = datetime(first.year, first.month, first.day, tzinfo=info)
    after = last + timedelta(days=1)
    end = datetime(after.year, after.month, after.day, tzinfo=info)
    return start.astimezone(UTC), end.astimezone(UTC)
