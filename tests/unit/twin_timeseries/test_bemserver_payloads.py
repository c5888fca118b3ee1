"""BEMServer data formats (issue 12): the fast timestamp formatter writes exactly what
datetime writes, across DST, half-hour zones and milliseconds; CSV and JSON uploads are read
whole or refused naming the line."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twinbill_twin.bemserver.payloads import (
    PayloadError,
    TimeFormatter,
    buckets,
    csv_points,
    csv_time,
    grid_texts,
    json_points,
    json_time,
    read_csv_points,
    read_json_points,
    starts_pattern,
)

ZONES = [ZoneInfo(name) for name in ("UTC", "Europe/Paris", "Asia/Kolkata", "Asia/Kathmandu",
                                     "America/St_Johns", "Australia/Lord_Howe", "Africa/Monrovia")]


@given(st.integers(0, 4_102_444_800_000), st.sampled_from(ZONES))
def test_fast_formatter_matches_datetime(ts: int, zone: ZoneInfo) -> None:
    assert TimeFormatter(zone, csv=False)(ts) == json_time(ts, zone)
    assert TimeFormatter(zone, csv=True)(ts) == csv_time(ts, zone)


def test_formats_are_bemservers() -> None:
    paris = ZoneInfo("Europe/Paris")
    ts = int(datetime(2026, 7, 1, 12, 0, 5, 250_000, tzinfo=UTC).timestamp() * 1000)
    assert json_time(ts, paris) == "2026-07-01T14:00:05.250000+02:00"
    assert csv_time(ts, paris) == "2026-07-01T14:00:05+0200"


def test_csv_is_read_whole_or_refused_naming_the_line() -> None:
    points = read_csv_points("Datetime,a,b\n2026-01-01T00:00:00+00:00,1,\n2026-01-01T01:00:00Z,,2.5\n")
    assert points == {"a": {1_767_225_600_000: Decimal(1)}, "b": {1_767_229_200_000: Decimal("2.5")}}
    for text, where in (("Datetime,a\n2026-01-01T00:00:00Z,1\nnot-a-time,2\n", "line 3"),
                        ("Datetime,a\n2026-01-01T00:00:00Z,1e999\n", "line 2"),
                        ("Datetime,a\n2026-01-01T00:00:00Z,nan\n", "line 2"),
                        ("Datetime,a\n2026-01-01T00:00:00Z,1,2\n", "line 2"),
                        ("Time,a\n", "Datetime"), ("Datetime,a,\n", "trailing comma"), ("", "Missing")):
        with pytest.raises(PayloadError, match=where):
            read_csv_points(text)


def test_json_names_the_series_and_timestamp() -> None:
    with pytest.raises(PayloadError) as caught:
        read_json_points({"7": {"2026-01-01T00:00:00Z": True}})
    assert caught.value.where == ("7", "2026-01-01T00:00:00Z")
    assert read_json_points({"7": {"2026-01-01T00:00:00Z": None}}) == {"7": {}}


def test_buckets_follow_the_zone_calendar_across_dst() -> None:
    paris = ZoneInfo("Europe/Paris")
    days = buckets(datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC), unit="day",
                   width=1, zone=paris)
    starts = [datetime.fromtimestamp(s / 1000, paris).isoformat() for s in days.starts]
    assert starts == ["2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"]
    assert days.starts[2] - days.starts[1] == 23 * 3_600_000
    weeks = buckets(datetime(2026, 1, 7, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC), unit="week", width=1,
                    zone=ZoneInfo("UTC"))
    assert datetime.fromtimestamp(weeks.starts[0] / 1000, UTC).isoformat() == "2026-01-05T00:00:00+00:00"
    quarter = buckets(datetime(2026, 1, 1, 0, 7, tzinfo=UTC), datetime(2026, 1, 1, 0, 31, tzinfo=UTC),
                      unit="minute", width=15, zone=ZoneInfo("UTC"))
    assert [(s // 60_000) % 60 for s in quarter.starts] == [0, 15, 30]


@given(st.lists(st.tuples(st.integers(0, 4_102_444_800_000), st.floats(allow_nan=False, allow_infinity=False)),
                max_size=50).map(sorted), st.sampled_from(ZONES))
def test_point_lines_match_the_plain_formatting(rows: list[tuple[int, float]], zone: ZoneInfo) -> None:
    assert json_points(rows, TimeFormatter(zone, csv=False)) == [f'"{json_time(t, zone)}":{v!r}' for t, v in rows]
    assert csv_points(rows, TimeFormatter(zone, csv=True)) == [f"{csv_time(t, zone)},{v!r}\n" for t, v in rows]


@pytest.mark.parametrize("tz", [*ZONES, ZoneInfo("Europe/Amsterdam")])
@pytest.mark.parametrize("csv", [False, True])
def test_time_texts_of_bucket_grids_are_json_and_csv_time_exactly(tz: ZoneInfo, csv: bool) -> None:
    """The grid formatters (download_aggregate's keys) write what json_time / csv_time write,
    across DST changes (Paris, Lord Howe's half hour), odd offsets and pre-1972 seconds offsets."""
    for start in (1_774_738_800_000 - 86_400_000, 1_792_000_000_000, -1_000_000_000_000):
        for step in (1_000, 10_000, 60_000, 90_000, 3_600_000, 7_200_000, 1_234, 1_800):
            starts = list(range(start, start + 2 * 86_400_000, step))[:6_000]
            want = [csv_time(t, tz) if csv else json_time(t, tz) for t in starts]
            got_pattern = starts_pattern(starts, TimeFormatter(tz, csv=csv), before="<", after=">", slot="%s|")
            assert got_pattern == "".join(f"<{text}>%s|" for text in want), (start, step)
            got = grid_texts(start, len(starts), step, TimeFormatter(tz, csv=csv), before="<", after=">")
            assert got == [f"<{text}>" for text in want], (start, step)
