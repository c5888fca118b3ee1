"""Measurepoint values -> stored samples: exact decimals, arrays per element, struct quality."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from twinbill_twin.domain.samples import (
    SCALAR,
    SampleValue,
    UnstorableValue,
    check_time,
    fast_number,
    sample_values,
    value_text,
)


@pytest.mark.parametrize(("value", "expected"), [
    (Decimal("12.30"), [SampleValue(SCALAR, Decimal("12.30"), 12.3, None)]),
    (7, [SampleValue(SCALAR, Decimal(7), 7.0, None)]),
    (True, [SampleValue(SCALAR, None, None, "true")]),
    ("open", [SampleValue(SCALAR, None, None, "open")]),
    ([Decimal("1.5"), 2], [SampleValue(0, Decimal("1.5"), 1.5, None),
                           SampleValue(1, Decimal(2), 2.0, None)]),
    ({"value": Decimal("3.25"), "quality": 0},
     [SampleValue(SCALAR, Decimal("3.25"), 3.25, None, "0")]),
    ({"a": 1}, [SampleValue(SCALAR, None, None, '{"a":1}')]),
])
def test_sample_values(value: object, expected: list[SampleValue]) -> None:
    assert sample_values(value, where="mp") == expected


@pytest.mark.parametrize("value", [None, [], float("nan"), float("inf"), [1, None],
                                   {"value": None}, 10**400, Decimal("1e400"), "a\x00b",
                                   ["x", "\x00"], Decimal("1e-16384")])
def test_unstorable_values_say_where(value: object) -> None:
    with pytest.raises(UnstorableValue, match="mp"):
        sample_values(value, where="mp")


def test_current_value_text_keeps_decimal_digits() -> None:
    assert value_text(Decimal("1234.500")) == "1234.500"
    assert value_text([Decimal("1.10"), "x", True, None]) == '[1.10,"x",true,null]'
    text = value_text({"value": Decimal("2.50"), "quality": 1})
    assert text == '{"value":2.50,"quality":1}' and json.loads(text) == {"value": 2.5, "quality": 1}


def test_time_range() -> None:
    assert check_time(1_534_147_200_000, where="t") == 1_534_147_200_000
    for bad in (-1, 4_102_444_800_000):
        with pytest.raises(UnstorableValue):
            check_time(bad, where="t")


@pytest.mark.parametrize(("value", "expected"), [
    (Decimal("1.25"), (Decimal("1.25"), 1.25)), (3, (Decimal(3), 3.0)), (True, None), ("1", None),
    (1.5, None), (10**400, None), (Decimal("1e400"), None), ([1], None),
    (Decimal("1e-16384"), None), (Decimal("1e-16383"), (Decimal("1e-16383"), 0.0)),
])
def test_fast_number_takes_only_plain_finite_numbers(value: object, expected: object) -> None:
    assert fast_number(value) == expected
