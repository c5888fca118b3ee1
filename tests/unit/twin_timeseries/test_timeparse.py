"""Seed 002's time formats: relative, Unix seconds/milliseconds, absolute in a time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from twinbill_twin.domain.timeparse import parse_time, parse_zone
from twinbill_twin.errors import BadParameter

NOW = 1_700_000_000_123
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def _ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    """Epoch ms of a UTC wall time."""
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("text", "expected"), [
    ("1ms-ago", NOW - 1),
    ("30s-ago", NOW - 30_000),
    ("2m-ago", NOW - 120_000),
    ("2h-ago", NOW - 7_200_000),
    ("1d-ago", NOW - 86_400_000),
    ("2w-ago", NOW - 14 * 86_400_000),
    ("1n-ago", NOW - 30 * 86_400_000),
    ("1y-ago", NOW - 365 * 86_400_000),
    ("99999999999999y-ago", 0),                 # nothing is stored before 1970: from 1970
])
def test_relative_times(text: str, expected: int) -> None:
    assert parse_time(text, now_ms=NOW, tz=SHANGHAI) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("1364410924", 1_364_410_924_000),        # seed: 2013-03-27T19:02:04Z
    ("1534147200", 1_534_147_200_000),        # 10 digits: seconds
    ("1530845483000", 1_530_845_483_000),     # 13 digits: milliseconds
    ("999999999", 999_999_999_000),           # fewer digits: seconds
    ("0", 0),
])
def test_unix_times(text: str, expected: int) -> None:
    assert parse_time(text, now_ms=NOW, tz=SHANGHAI) == expected


@pytest.mark.parametrize(("text", "tz", "expected"), [
    ("2018/08/13", SHANGHAI, 1_534_089_600_000),  # the seed example: local midnight, UTC+8
    ("2018/08/13-08:00:00", SHANGHAI, 1_534_118_400_000),
    ("2018/08/13 08:00:00", SHANGHAI, 1_534_118_400_000),
    ("2018/08/13-08:00", SHANGHAI, 1_534_118_400_000),
    ("2018/08/13 08:00", SHANGHAI, 1_534_118_400_000),
    ("2018/08/13", UTC, 1_534_118_400_000),
    ("2024/03/31 01:59:59", BERLIN, _ms(2024, 3, 31, 0, 59, 59)),   # CET, before the change
    ("2024/03/31 03:00:00", BERLIN, _ms(2024, 3, 31, 1, 0, 0)),     # CEST, after it
    ("2024/10/27 12:00", BERLIN, _ms(2024, 10, 27, 11, 0)),
])
def test_absolute_times(text: str, tz: ZoneInfo, expected: int) -> None:
    assert parse_time(text, now_ms=NOW, tz=tz) == expected


@pytest.mark.parametrize("text", [
    "", "yesterday", "1h", "1x-ago", "-1h-ago", "2018-08-13", "2018/13/01", "2018/02/30",
    "2018/08/13T08:00", "12345678901234", "1.5", "2018/08/13 25:00",
])
def test_bad_times_name_the_parameter(text: str) -> None:
    with pytest.raises(BadParameter) as caught:
        parse_time(text, now_ms=NOW, tz=SHANGHAI, parameter="end")
    assert caught.value.parameter == "end"


def test_unknown_zone_is_a_timezone_error() -> None:
    with pytest.raises(BadParameter) as caught:
        parse_zone("Mars/Olympus")
    assert caught.value.parameter == "timezone"
