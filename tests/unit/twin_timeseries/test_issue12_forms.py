"""Seed-002 forms settled by issue 12: a zero-length `start`, the seed's `1d-sumc` spelling,
and millisecond `dps` keys that read back as milliseconds."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from twinbill_twin.api.dps import key as _key
from twinbill_twin.api.dps import number as _number
from twinbill_twin.api.stream_query import parse_query
from twinbill_twin.domain.downsample import parse_downsample
from twinbill_twin.domain.timeparse import parse_time
from twinbill_twin.errors import BadParameter

NOW = 1_700_000_000_000
UTC = ZoneInfo("UTC")


@pytest.mark.parametrize("text", ["0h-ago", "0s-ago", "0ms-ago", "000d-ago"])
def test_zero_length_start_is_refused_naming_start(text: str) -> None:
    with pytest.raises(BadParameter) as caught:
        parse_time(text, now_ms=NOW, tz=UTC, parameter="start")
    assert caught.value.parameter == "start"


def test_zero_ago_end_is_now() -> None:
    assert parse_time("0s-ago", now_ms=NOW, tz=UTC, parameter="end") == NOW


def test_equal_start_and_end_is_a_zero_length_range_named_end() -> None:
    with pytest.raises(BadParameter) as caught:
        parse_query({"start": "1h-ago", "end": "1h-ago"}, now_ms=NOW, default_zone="UTC")
    assert caught.value.parameter == "end"


@pytest.mark.parametrize(("seed_form", "canonical"), [("1d-sumc", "1dc-sum"), ("1n-avgc-nan", "1nc-avg-nan"),
                                                      ("2hc-max", "2hc-max")])
def test_seed_calendar_spelling_is_the_canonical_one(seed_form: str, canonical: str) -> None:
    assert parse_downsample(seed_form) == parse_downsample(canonical)


def test_doubled_calendar_marker_is_refused() -> None:
    with pytest.raises(BadParameter):
        parse_downsample("1dc-sumc")


@pytest.mark.parametrize("ts", [0, 123_456, 1_530_845_483_001])
def test_millisecond_keys_read_back_as_the_same_time(ts: int) -> None:
    key = _key(ts, millis=True)
    assert len(key) == 13
    assert parse_time(key, now_ms=NOW, tz=UTC) == ts


def test_second_keys_read_back_as_seconds() -> None:
    assert parse_time(_key(123_000, millis=False), now_ms=NOW, tz=UTC) == 123_000


def test_non_finite_values_are_json_strings() -> None:
    assert [_number(float("nan")), _number(float("inf")), _number(-float("inf")), _number(2.0)] == \
        ["NaN", "Infinity", "-Infinity", 2]
