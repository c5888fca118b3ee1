"""BEMServer analysis arithmetic without a database: completeness on DST days and with an
inferred interval, degree days across a DST change and in months, unit and temperature
conversions, Oikolab answers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from twinbill_twin.bemserver import payloads as p
from twinbill_twin.domain.analysis import completeness, conversion, degree_days, unit_family
from twinbill_twin.domain.weather import WeatherAnswerError, convert_temperature, oikolab_end, read_oikolab

PARIS = ZoneInfo("Europe/Paris")


def test_a_dst_day_expects_92_and_100_quarter_hours() -> None:
    """Day buckets on the spring and autumn changes are 23 and 25 hours: expected 92 and 100."""
    spring = p.buckets(datetime(2026, 3, 29, tzinfo=PARIS), datetime(2026, 3, 30, tzinfo=PARIS), unit="day",
                       width=1, zone=PARIS)
    autumn = p.buckets(datetime(2026, 10, 25, tzinfo=PARIS), datetime(2026, 10, 26, tzinfo=PARIS), unit="day",
                       width=1, zone=PARIS)
    for grid, quarters in ((spring, 92), (autumn, 100)):
        seconds = [(grid.end - grid.starts[0]) / 1000]
        result = completeness([quarters - 2], seconds, 900)
        assert result.expected_count == [quarters]
        assert result.ratio == [pytest.approx((quarters - 2) / quarters)]


def test_an_undefined_interval_is_inferred_from_the_densest_bucket() -> None:
    """1 / max(count / seconds); no value at all leaves interval, ratios and expectations null."""
    result = completeness([2, 4, 0], [3600.0, 3600.0, 3600.0], None)
    assert result.interval == 900 and result.undefined_interval is True
    assert result.ratio == [0.5, 1.0, 0.0] and result.expected_count == [4.0, 4.0, 4.0]
    empty = completeness([0, 0], [60.0, 60.0], None)
    assert empty.interval is None and empty.ratio == [None, None] and empty.avg_ratio is None
    assert empty.total_count == 0 and empty.avg_count == 0


def test_degree_days_across_the_autumn_change_and_per_month() -> None:
    """A 25-hour local day is one day; a month sums its days; a day without values is null."""
    start = datetime(2026, 10, 24, tzinfo=PARIS)
    hourly = []
    moment = start
    while moment < datetime(2026, 10, 27, tzinfo=PARIS):
        local = moment.astimezone(PARIS)
        value = None if local.day == 26 else 10.0 + local.hour / 2
        hourly.append((moment, value))
        moment += timedelta(hours=1)
    days = degree_days(hourly, zone=PARIS, period="day", kind="heating", base=18)
    assert list(days) == [datetime(2026, 10, d, tzinfo=PARIS) for d in (24, 25, 26)]
    assert days[datetime(2026, 10, 24, tzinfo=PARIS)] == pytest.approx(18 - (10 + 21.5) / 2)
    assert days[datetime(2026, 10, 26, tzinfo=PARIS)] is None
    months = degree_days(hourly, zone=PARIS, period="month", kind="heating", base=18)
    assert months == {datetime(2026, 10, 1, tzinfo=PARIS): pytest.approx(2 * (18 - (10 + 21.5) / 2))}
    assert degree_days(hourly, zone=PARIS, period="year", kind="cooling", base=30) == {
        datetime(2026, 1, 1, tzinfo=PARIS): 0.0}


def test_units_convert_within_their_kind_only() -> None:
    """Energies convert among themselves, volumes among themselves, temperatures among °C, K, °F."""
    assert conversion("kWh", "Wh") == 1000 and conversion("MJ", "kWh") == pytest.approx(1 / 3.6)
    assert conversion("L", "m3") == pytest.approx(0.001) and conversion("m3", "kWh") is None
    assert unit_family("m³") == "volume" and unit_family("W") is None
    assert convert_temperature(20, "°C", "K") == pytest.approx(293.15)
    assert convert_temperature(212, "°F", "°C") == pytest.approx(100)
    with pytest.raises(ValueError, match="cannot convert"):
        convert_temperature(1, "kWh", "°C")


def test_oikolab_answers_are_read_by_column_and_bad_ones_refused() -> None:
    """Values by parameter from the column named for it (units stripped); the end is inclusive."""
    inner = {"index": [0, 3600], "columns": ["lat (deg)", "temperature (degC)", "wind_speed (m/s)"],
             "data": [[1, 5.5, 2.0], [1, 6.5, None]]}
    found = read_oikolab({"data": json.dumps(inner)}, ["AIR_TEMPERATURE", "WIND_SPEED"])
    assert found == {"AIR_TEMPERATURE": {0: 5.5, 3_600_000: 6.5}, "WIND_SPEED": {0: 2.0}}
    with pytest.raises(WeatherAnswerError):
        read_oikolab({"data": "not json"}, ["AIR_TEMPERATURE"])
    with pytest.raises(WeatherAnswerError):
        read_oikolab({"data": json.dumps(inner)}, ["RELATIVE_HUMIDITY"])
    at = datetime(2026, 1, 1, 6, tzinfo=PARIS)
    assert oikolab_end(at) == at - timedelta(hours=1)
    assert oikolab_end(at + timedelta(minutes=20)) == at
