"""Downsample specs and their buckets: epoch-aligned, calendar-aligned across DST, whole range."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from twinbill_twin.domain.downsample import (
    Fill,
    bucket_boundaries,
    bucket_starts,
    calendar_boundaries,
    epoch_bucket,
    parse_downsample,
    rollup_usable,
)
from twinbill_twin.errors import BadParameter

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KABUL = ZoneInfo("Asia/Kabul")
UTC_ZONE = ZoneInfo("UTC")
HOUR = 3_600_000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.mark.parametrize(("text", "every", "unit", "calendar", "aggregator", "fill"), [
    ("1h-sum", 1, "h", False, "sum", Fill.NONE),
    ("30m-avg-nan", 30, "m", False, "avg", Fill.NAN),
    ("24h-max-zero", 24, "h", False, "max", Fill.ZERO),
    ("1dc-sum", 1, "d", True, "sum", Fill.NONE),
    ("10m-count", 10, "m", False, "count", Fill.NONE),
    ("15m-count-null", 15, "m", False, "count", Fill.NULL),
    ("500ms-p95", 500, "ms", False, "p95", Fill.NONE),
    ("1w-ep99r7", 1, "w", False, "ep99r7", Fill.NONE),
    ("1nc-last", 1, "n", True, "last", Fill.NONE),
    ("1y-first-none", 1, "y", False, "first", Fill.NONE),
    ("0all-count", 0, "all", False, "count", Fill.NONE),
])
def test_parse_downsample(text: str, every: int, unit: str, calendar: bool, aggregator: str,
                          fill: Fill) -> None:
    spec = parse_downsample(text)
    assert (spec.every, spec.unit, spec.calendar, spec.aggregator, spec.fill) == \
        (every, unit, calendar, aggregator, fill)


@pytest.mark.parametrize("text", [
    "", "1h", "h-sum", "1h-bogus", "1h-sum-maybe", "1q-sum", "0h-sum", "1h-none", "-1h-sum",
    "1hc", "1h_sum",
])
def test_bad_downsample_is_named(text: str) -> None:
    with pytest.raises(BadParameter) as caught:
        parse_downsample(text)
    assert caught.value.parameter == "downsample"


@pytest.mark.parametrize(("ts", "interval", "expected"), [
    (1_534_147_259_999, 60_000, 1_534_147_200_000),
    (1_534_147_260_000, 60_000, 1_534_147_260_000),
    (1_534_147_200_000, 600_000, 1_534_147_200_000),
    (1_534_147_799_000, 600_000, 1_534_147_200_000),
    (86_400_000 * 3 + 5, 7 * 86_400_000, 0),            # epoch weeks start on Thursday
    (1_700_000_000_000, 86_400_000, 1_699_920_000_000),  # epoch days are UTC days
])
def test_epoch_buckets(ts: int, interval: int, expected: int) -> None:
    assert epoch_bucket(ts, interval) == expected
    assert expected % interval == 0 and expected <= ts < expected + interval


def _local_midnights(first: date, last: date, tz: ZoneInfo) -> list[int]:
    """Reference: each date's local midnight, built from the calendar date (not by stepping)."""
    days = (last - first).days
    return [_ms(datetime.combine(first + timedelta(days=i), time(0), tzinfo=tz))
            for i in range(days + 1)]


@pytest.mark.parametrize(("tz", "first", "last", "short", "long"), [
    (BERLIN, date(2024, 3, 28), date(2024, 4, 3), date(2024, 3, 31), None),
    (BERLIN, date(2024, 10, 24), date(2024, 10, 30), None, date(2024, 10, 27)),
    (NEW_YORK, date(2024, 3, 8), date(2024, 3, 12), date(2024, 3, 10), None),
    (NEW_YORK, date(2024, 11, 1), date(2024, 11, 5), None, date(2024, 11, 3)),
])
def test_calendar_days_across_dst(tz: ZoneInfo, first: date, last: date, short: date | None,
                                  long: date | None) -> None:
    start = _ms(datetime.combine(first, time(13, 30), tzinfo=tz))
    end = _ms(datetime.combine(last, time(9), tzinfo=tz))
    bounds = calendar_boundaries(start, end, every=1, unit="d", tz=tz)
    assert bounds == _local_midnights(first, last + timedelta(days=1), tz)
    lengths = {datetime.fromtimestamp(b / 1000, tz).date(): (n - b) // HOUR
               for b, n in itertools.pairwise(bounds)}
    for day, hours in lengths.items():
        expected = 23 if day == short else 25 if day == long else 24
        assert hours == expected, day


def test_calendar_months_weeks_and_years() -> None:
    start = _ms(datetime(2024, 1, 15, 12, tzinfo=BERLIN))
    end = _ms(datetime(2024, 4, 2, tzinfo=BERLIN))
    months = calendar_boundaries(start, end, every=1, unit="n", tz=BERLIN)
    assert months == [_ms(datetime(2024, m, 1, tzinfo=BERLIN)) for m in (1, 2, 3, 4, 5)]
    weeks = calendar_boundaries(start, _ms(datetime(2024, 1, 29, tzinfo=BERLIN)),
                                every=1, unit="w", tz=BERLIN)
    assert [datetime.fromtimestamp(b / 1000, BERLIN).weekday() for b in weeks] == [0, 0, 0, 0]
    assert weeks[0] == _ms(datetime(2024, 1, 15, tzinfo=BERLIN))
    years = calendar_boundaries(start, end, every=1, unit="y", tz=BERLIN)
    assert years == [_ms(datetime(2024, 1, 1, tzinfo=BERLIN)), _ms(datetime(2025, 1, 1, tzinfo=BERLIN))]


def test_calendar_hours_follow_a_half_hour_zone() -> None:
    """1hc in Asia/Kabul (UTC+4:30) starts buckets at local full hours, i.e. :30 UTC."""
    start = _ms(datetime(2024, 5, 1, 10, 10, tzinfo=UTC))
    bounds = calendar_boundaries(start, start + 2 * HOUR, every=1, unit="h", tz=KABUL)
    assert bounds[0] == _ms(datetime(2024, 5, 1, 9, 30, tzinfo=UTC))
    assert all(b - a == HOUR for a, b in itertools.pairwise(bounds))
    spec = parse_downsample("1hc-sum")
    assert not rollup_usable(spec, bounds, HOUR)
    assert rollup_usable(spec, bounds, 60_000)


def test_whole_range_and_epoch_starts() -> None:
    spec = parse_downsample("0all-count")
    assert bucket_boundaries(spec, 1000, 5000, UTC_ZONE) == [1000, 5001]
    assert bucket_starts(spec, 1000, 5000, UTC_ZONE) == [1000]
    ten = parse_downsample("10m-count")
    assert bucket_boundaries(ten, 0, 3_600_000, UTC_ZONE) is None
    assert bucket_starts(ten, 30_000, 1_800_000, UTC_ZONE) == [0, 600_000, 1_200_000, 1_800_000]
    assert rollup_usable(ten, None, 60_000) and not rollup_usable(ten, None, HOUR)
    assert rollup_usable(parse_downsample("2h-avg"), None, HOUR)
    assert not rollup_usable(parse_downsample("90s-avg"), None, 60_000)


def test_too_many_buckets_is_refused() -> None:
    with pytest.raises(BadParameter):
        bucket_boundaries(parse_downsample("1ms-sum"), 0, 10**10, UTC_ZONE)
