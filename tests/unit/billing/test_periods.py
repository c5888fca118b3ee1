"""Periods and seed-000 time text: local rendering, dates like 2019-9-21, day bounds."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from twinbill_billing.domain.periods import (
    Period,
    PeriodError,
    local_day_bounds,
    parse_seed_date,
    render_local,
    to_epoch_ms,
)


def test_render_local_is_naive_iso_in_project_zone() -> None:
    """2019-09-30T16:00Z in Asia/Shanghai renders as 2019-10-01T00:00:00."""
    assert render_local(datetime(2019, 9, 30, 16, tzinfo=UTC), tz="Asia/Shanghai") == "2019-10-01T00:00:00"


@pytest.mark.parametrize(("text", "expected"), [("2019-9-21", date(2019, 9, 21)),
                                                 ("2019-11-01", date(2019, 11, 1))])
def test_parse_seed_date(text: str, expected: date) -> None:
    """Months and days with or without leading zeros."""
    assert parse_seed_date(text) == expected


@pytest.mark.parametrize("text", ["2019/9/21", "2019-13-01", "yesterday", "2019-2-30"])
def test_parse_seed_date_rejects(text: str) -> None:
    """Anything else is an error naming the text."""
    with pytest.raises(PeriodError, match=r"2019|yesterday"):
        parse_seed_date(text)


def test_local_day_bounds_cover_whole_end_day() -> None:
    """[start 00:00 local, the day after end 00:00 local) as UTC."""
    start, end = local_day_bounds(date(2019, 9, 21), date(2019, 11, 21), tz="Asia/Shanghai")
    assert start == datetime(2019, 9, 20, 16, tzinfo=UTC)
    assert end == datetime(2019, 11, 21, 16, tzinfo=UTC)


def test_period_is_ordered() -> None:
    """An empty or reversed period is refused."""
    p = Period(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))
    with pytest.raises(PeriodError):
        Period(p.end, p.start)


def test_epoch_ms_is_exact() -> None:
    """Integer milliseconds, no float rounding."""
    assert to_epoch_ms(datetime(2024, 1, 1, 0, 0, 0, 999000, tzinfo=UTC)) == 1704067200999
