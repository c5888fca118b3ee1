"""Crontab handling, table-driven: every field form, L, invalid specs, DST days, month ends."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

import pytest

from twinbill_scheduler.domain.crontab import (
    Crontab,
    CrontabInvalid,
    next_fire,
    parse_crontab,
    previous_fire,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
UTC_ZONE = ZoneInfo("UTC")


def tab(month: str = "*", day: str = "*", hour: str = "*", minute: str = "*") -> Crontab:
    """A crontab that must be valid."""
    return parse_crontab({"month": month, "day": day, "hour": hour, "minute": minute})


def fires(crontab: Crontab, start: datetime, count: int, tz: ZoneInfo) -> list[str]:
    """The next `count` fire times after `start`, as local ISO text with offset."""
    out, at = [], start
    for _ in range(count):
        at = next_fire(at, crontab=crontab, tz=tz)
        out.append(at.astimezone(tz).isoformat())
    return out


@pytest.mark.parametrize(("fields", "start", "expected"), [
    # `*` everywhere: every minute
    (dict(), "2024-01-01T00:00", ["2024-01-01T00:01:00+08:00", "2024-01-01T00:02:00+08:00"]),
    # numbers: the seed's example, monthly on the 1st at 01:00
    (dict(day="1", hour="1", minute="0"), "2024-01-15T00:00",
     ["2024-02-01T01:00:00+08:00", "2024-03-01T01:00:00+08:00"]),
    # lists
    (dict(hour="1", minute="0,30"), "2024-01-01T00:00",
     ["2024-01-01T01:00:00+08:00", "2024-01-01T01:30:00+08:00", "2024-01-02T01:00:00+08:00"]),
    # ranges
    (dict(day="1", hour="9-10", minute="0"), "2024-01-01T00:00",
     ["2024-01-01T09:00:00+08:00", "2024-01-01T10:00:00+08:00", "2024-02-01T09:00:00+08:00"]),
    # steps on *, on a range, and from a start
    (dict(minute="*/20"), "2024-01-01T00:00",
     ["2024-01-01T00:20:00+08:00", "2024-01-01T00:40:00+08:00", "2024-01-01T01:00:00+08:00"]),
    (dict(hour="0", minute="10-40/15"), "2024-01-01T00:00",
     ["2024-01-01T00:10:00+08:00", "2024-01-01T00:25:00+08:00", "2024-01-01T00:40:00+08:00"]),
    (dict(month="1/6", day="1", hour="0", minute="0"), "2024-01-01T00:00",
     ["2024-07-01T00:00:00+08:00", "2025-01-01T00:00:00+08:00"]),
    # mixed list of range and step
    (dict(day="1", hour="0", minute="0", month="2-3,11/2"), "2024-01-01T00:00",
     ["2024-02-01T00:00:00+08:00", "2024-03-01T00:00:00+08:00", "2024-11-01T00:00:00+08:00"]),
    # L: last day of each month, through a leap February and a common one
    (dict(day="L", hour="23", minute="0"), "2024-01-31T23:00",
     ["2024-02-29T23:00:00+08:00", "2024-03-31T23:00:00+08:00", "2024-04-30T23:00:00+08:00"]),
    (dict(month="2", day="L", hour="0", minute="0"), "2024-03-01T00:00",
     ["2025-02-28T00:00:00+08:00", "2026-02-28T00:00:00+08:00", "2027-02-28T00:00:00+08:00",
      "2028-02-29T00:00:00+08:00"]),
    # month ends: the 31st only exists in long months, the 30th skips February
    (dict(day="31", hour="0", minute="0"), "2024-01-31T00:00",
     ["2024-03-31T00:00:00+08:00", "2024-05-31T00:00:00+08:00", "2024-07-31T00:00:00+08:00"]),
    (dict(day="30", hour="0", minute="0"), "2024-01-30T00:00",
     ["2024-03-30T00:00:00+08:00", "2024-04-30T00:00:00+08:00"]),
    # leap years: 29 February fires every four years (2100 is not a leap year)
    (dict(month="2", day="29", hour="0", minute="0"), "2024-03-01T00:00",
     ["2028-02-29T00:00:00+08:00", "2032-02-29T00:00:00+08:00"]),
    (dict(month="2", day="29", hour="0", minute="0"), "2096-03-01T00:00",
     ["2104-02-29T00:00:00+08:00"]),
    # numbers given as JSON numbers are accepted as their text
    (dict(day=1, hour=1, minute=0), "2024-01-15T00:00", ["2024-02-01T01:00:00+08:00"]),
])
def test_field_forms(fields: dict[str, object], start: str, expected: list[str]) -> None:
    """Each field form yields exactly the documented fire times (strictly after `start`)."""
    raw: dict[str, object] = {"month": "*", "day": "*", "hour": "*", "minute": "*", **fields}
    crontab = parse_crontab(raw)
    begin = datetime.fromisoformat(start).replace(tzinfo=SHANGHAI)
    assert fires(crontab, begin, len(expected), SHANGHAI) == expected


@pytest.mark.parametrize(("fields", "bad"), [
    (dict(month="13"), {"month": "13 is outside 1-12"}),
    (dict(month="0"), {"month": "0 is outside 1-12"}),
    (dict(day="0"), {"day": "0 is outside 1-31"}),
    (dict(day="32"), {"day": "32 is outside 1-31"}),
    (dict(hour="24"), {"hour": "24 is outside 0-23"}),
    (dict(minute="60"), {"minute": "60 is outside 0-59"}),
    (dict(minute="*/0"), {"minute": "step 0"}),
    (dict(hour="10-2"), {"hour": "runs backwards"}),
    (dict(minute="abc"), {"minute": "is not *"}),
    (dict(minute=""), {"minute": "is not *"}),
    (dict(minute="1,,2"), {"minute": "is not *"}),
    (dict(hour="L"), {"hour": "is not *"}),
    (dict(day="LW"), {"day": "is not *"}),
    (dict(day="15W"), {"day": "is not *"}),
    (dict(month="JAN"), {"month": "is not *"}),
    (dict(minute=True), {"minute": "must be a string"}),
    (dict(minute=None), {"minute": "Missing data"}),
    (dict(second="0"), {"second": "unknown crontab field"}),
    # a day no month in the schedule has
    (dict(month="2", day="31"), {"day": "no month in the schedule has this day"}),
    (dict(month="2", day="30"), {"day": "no month in the schedule has this day"}),
    (dict(month="4,6,9,11", day="31"), {"day": "no month in the schedule has this day"}),
    # every bad field is named at once, including the month/day clash
    (dict(month="2", day="31", hour="99", minute="x"),
     {"day": "no month", "hour": "99 is outside", "minute": "is not *"}),
])
def test_invalid_specs_name_the_field(fields: dict[str, object], bad: dict[str, str]) -> None:
    """A refused crontab names each bad field and says why."""
    raw: dict[str, object] = {"month": "*", "day": "*", "hour": "*", "minute": "*", **fields}
    with pytest.raises(CrontabInvalid) as caught:
        parse_crontab({k: v for k, v in raw.items() if v is not None})
    assert set(caught.value.fields) == set(bad)
    for field, reason in bad.items():
        assert any(reason in text for text in caught.value.fields[field]), caught.value.fields


@pytest.mark.parametrize("fields", [
    dict(month="2", day="29"), dict(month="2", day="L"), dict(month="2,3", day="31"),
    dict(day="L"), dict(day="1,L"), dict(month="*/2", day="31"),
])
def test_valid_month_day_combinations(fields: dict[str, str]) -> None:
    """Combinations some month has are accepted (29 Feb exists in leap years)."""
    assert parse_crontab({"month": "*", "day": "*", "hour": "0", "minute": "0", **fields})


def test_not_an_object() -> None:
    """A crontab that is not an object is refused as a whole."""
    with pytest.raises(CrontabInvalid) as caught:
        parse_crontab("0 1 1 * *")
    assert set(caught.value.fields) == {"crontab"}


@pytest.mark.parametrize(("fields", "tz", "start", "expected_utc"), [
    # New York springs forward 2024-03-10 02:00 -> 03:00: 02:30 does not exist, fires at 03:00
    (dict(hour="2", minute="30"), NEW_YORK, "2024-03-09T12:00",
     ["2024-03-10T07:00:00+00:00", "2024-03-11T06:30:00+00:00"]),
    # Falls back 2024-11-03 02:00 -> 01:00: 01:30 happens twice, fires once
    (dict(hour="1", minute="30"), NEW_YORK, "2024-11-02T12:00",
     ["2024-11-03T05:30:00+00:00", "2024-11-04T06:30:00+00:00"]),
    # an hourly task (hour `*`) across fall-back fires once per real hour, both 01:00s
    # included (cron's rule for wildcard hours): no hour of consumption is skipped or doubled
    (dict(minute="0"), NEW_YORK, "2024-11-03T00:30",
     ["2024-11-03T05:00:00+00:00", "2024-11-03T06:00:00+00:00", "2024-11-03T07:00:00+00:00"]),
    # an hourly task across spring-forward: 02:00 does not exist, nothing between 01:00 and 03:00
    (dict(minute="0"), NEW_YORK, "2024-03-10T00:30",
     ["2024-03-10T06:00:00+00:00", "2024-03-10T07:00:00+00:00"]),
    # Shanghai has no DST: the same wall time every day, 16:00 UTC the day before
    (dict(hour="0", minute="0"), SHANGHAI, "2024-03-09T12:00",
     ["2024-03-09T16:00:00+00:00", "2024-03-10T16:00:00+00:00"]),
])
def test_dst_days(fields: dict[str, str], tz: ZoneInfo, start: str,
                  expected_utc: list[str]) -> None:
    """A missing local time fires at the next valid instant; a repeated one fires once."""
    crontab = tab(**fields)
    at = datetime.fromisoformat(start).replace(tzinfo=tz)
    got = []
    for _ in expected_utc:
        at = next_fire(at, crontab=crontab, tz=tz)
        got.append(at.astimezone(UTC_ZONE).isoformat())
    assert got == expected_utc


@pytest.mark.parametrize(("fields", "tz", "fire"), [
    (dict(day="1", hour="1", minute="0"), SHANGHAI, "2024-03-01T01:00"),
    (dict(day="L", hour="0", minute="0"), SHANGHAI, "2024-03-31T00:00"),
    (dict(hour="1", minute="30"), NEW_YORK, "2024-11-04T01:30"),
    (dict(hour="1", minute="30"), NEW_YORK, "2024-11-03T01:30"),  # the fall-back day itself
    (dict(hour="2", minute="30"), NEW_YORK, "2024-03-11T02:30"),  # after the shifted 03:00
    (dict(hour="2", minute="30"), NEW_YORK, "2024-03-09T02:30"),
    (dict(month="2", day="29", hour="0", minute="0"), SHANGHAI, "2028-02-29T00:00"),
    (dict(minute="*/5"), UTC_ZONE, "2024-01-01T00:00"),
])
def test_previous_fire_is_the_periods_start(fields: dict[str, str], tz: ZoneInfo,
                                             fire: str) -> None:
    """previous_fire inverts next_fire: consecutive fires tile time without gaps or overlaps."""
    crontab = tab(**fields)
    # In UTC: Python never finds an ambiguous local time equal to an instant of another zone.
    end = datetime.fromisoformat(fire).replace(tzinfo=tz).astimezone(UTC)
    start = previous_fire(end, crontab=crontab, tz=tz)
    assert start < end
    assert next_fire(start, crontab=crontab, tz=tz) == end


def test_expression_and_shape() -> None:
    """The cron expression has day of week `*`; the JSON shape keeps the seed's field order."""
    crontab = tab(day="1", hour="1", minute="0")
    assert crontab.expression == "0 1 1 * *"
    assert list(crontab.as_dict()) == ["month", "day", "hour", "minute"]
    assert list(islice(crontab.as_dict().values(), 4)) == ["*", "1", "1", "0"]


@pytest.mark.parametrize(("fields", "tz", "start"), [
    (dict(hour="2", minute="30"), NEW_YORK, "2024-03-01T00:00"),   # through spring-forward
    (dict(hour="1", minute="30"), NEW_YORK, "2024-10-25T00:00"),   # through fall-back
    (dict(minute="0"), NEW_YORK, "2024-11-02T20:00"),              # hourly through fall-back
    (dict(day="L", hour="0", minute="0"), SHANGHAI, "2023-12-01T00:00"),  # month ends, leap Feb
])
def test_consecutive_periods_tile(fields: dict[str, str], tz: ZoneInfo, start: str) -> None:
    """Over DST days and month ends, each fire's period starts exactly at the fire before it."""
    crontab = tab(**fields)
    at = datetime.fromisoformat(start).replace(tzinfo=tz)
    fired = []
    for _ in range(40):
        at = next_fire(at, crontab=crontab, tz=tz)
        fired.append(at)
    for earlier, later in pairwise(fired):
        assert previous_fire(later, crontab=crontab, tz=tz) == earlier
        assert earlier < later
