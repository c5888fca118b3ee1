"""The `dps` text written in one format (api.dps.dps_text) is the text json.dumps writes of the
dict the slow path builds, value for value: the usual doubles, and every value the format cannot
write the same way (non-finite, -0, integral doubles near 2**53 and with exponent 15, tiny and
huge magnitudes, text, fill markers), which fall back."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from twinbill_twin.api.dps import EncodedJson, answer_response, dps, dps_from_texts, dps_text
from twinbill_twin.store.series import Texts

EDGES = [0.0, -0.0, 1.0, -1.0, 0.1 + 0.2, 14556.392000000003, 1e15, 1.5e15, 9.5e15, 2.0**53, 2.0**53 + 2,
         -(2.0**53), 1e16, 1.2345678901234567e16, 1e-5, 1.5e-7, -1e-20, 1e300, 5e-324, 123456789012345.6,
         1234567890123456.7, 0.5, 100.0, 1e22, math.nan, math.inf, -math.inf]


def slow(times: list[int], values: list[Any], *, millis: bool, computed: bool) -> str:
    return json.dumps(dps(times, values, millis=millis, computed=computed), ensure_ascii=False)


def check(values: list[Any], *, millis: bool = False) -> None:
    times = [1_793_145_600_000 + 10_000 * i + (7 if millis else 0) for i in range(len(values))]
    for computed in (False, True):
        assert dps_text(times, values, millis=millis, computed=computed) == \
            slow(times, values, millis=millis, computed=computed), (values, computed)


def test_each_edge_value_alone_and_among_ordinary_ones() -> None:
    for value in EDGES:
        check([value])
        check([12.5, value, 3.0])
        check([12.5, 3.0, value], millis=True)


def test_text_values_and_fill_markers_fall_back() -> None:
    check([1.0, "on", 2.5])
    check([1.0, None, 2.5])
    check([None])
    check(["open", "closed"])
    check([3, 4.0])  # an integer among doubles


def test_keys_before_1970_and_with_milliseconds() -> None:
    times = [-86_400_000, -1_500, 0, 123_456]
    for millis in (False, True):
        assert dps_text(times, [1.0, 2.5, 3.0, 4.25], millis=millis, computed=True) == \
            slow(times, [1.0, 2.5, 3.0, 4.25], millis=millis, computed=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=40),
       st.booleans())
def test_any_doubles(values: list[float], millis: bool) -> None:
    check(values, millis=millis)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.decimals(min_value=-10**9, max_value=10**9, places=3, allow_nan=False), min_size=1, max_size=40))
def test_meter_like_sums(values: list[Any]) -> None:
    doubles = [float(v) for v in values]
    check([sum(doubles[: i + 1]) / (i + 1) for i in range(len(doubles))])  # averages: 15-digit rounding


def test_the_answer_splices_each_encoded_text_where_json_dumps_would_write_it() -> None:
    times, values = [1_000, 2_000], [1.5, 2.0]
    text = dps_text(times, values, millis=False, computed=False)
    body = {"code": 200, "data": {"name": "水表 \"1\"", "value": [
        {"metric": "m", "dps": EncodedJson(text, 2)}, {"metric": "n", "dps": EncodedJson("{}", 0)}]}}
    expected = {"code": 200, "data": {"name": "水表 \"1\"", "value": [
        {"metric": "m", "dps": {"1": 1.5, "2": 2}}, {"metric": "n", "dps": {}}]}}
    response = answer_response(body)
    assert response.text == json.dumps(expected, ensure_ascii=False)
    assert response.content_type == "application/json"
    assert len(EncodedJson(text, 2)) == 2


def test_keys_one_step_apart_are_written_by_joins_across_their_digit_blocks() -> None:
    """dps_from_texts writes the keys of buckets one step apart from four-digit texts joined per
    block of keys sharing their upper digits: every step and start, across block edges, gives
    the keys json.dumps writes (and uneven or early times the one-by-one way)."""
    for step in (1, 7, 10, 60, 3600, 86_400):
        for start in (10_000, 19_999, 99_993, 1_793_145_600, 1_793_149_980):
            times = [(start + step * i) * 1000 for i in range(700)]
            values = [float(i % 97) / 4 for i in range(700)]
            texts = [repr(v).removesuffix(".0") for v in values]
            got = dps_from_texts(times, Texts(texts, joined=",".join(texts)), millis=False, computed=False)
            assert got == slow(times, values, millis=False, computed=False), (step, start)
    for times in ([1000, 3000, 4000], [-60_000, 0, 60_000], [9_998_000, 9_999_000, 10_000_000]):
        got = dps_from_texts(times, Texts(["1", "2.5", "3"], joined="1,2.5,3"), millis=False, computed=False)
        assert got == slow(times, [1.0, 2.5, 3.0], millis=False, computed=False), times
