"""Query integers and pages parse one way, with one set of messages, in every service."""

from __future__ import annotations

import pytest

from twinbill_common.paging import (
    MISSING,
    NOT_AN_INTEGER,
    Errors,
    PageWindow,
    out_of_range,
    parse_int,
    query_choice,
    query_int,
    query_page,
)


@pytest.mark.parametrize(("raw", "expected"), [("7", 7), (" 12 ", 12), ("+3", 3), ("2147483647", 2**31 - 1)])
def test_integers_are_ascii_digits(raw: str, expected: int) -> None:
    """Blanks around the digits are ignored; a sign is allowed."""
    assert parse_int(raw) == expected


@pytest.mark.parametrize(("raw", "message"), [
    ("abc", NOT_AN_INTEGER), ("1.5", NOT_AN_INTEGER), ("²", NOT_AN_INTEGER), ("٣", NOT_AN_INTEGER),
    ("1_000", NOT_AN_INTEGER), ("1\x00", NOT_AN_INTEGER), ("", NOT_AN_INTEGER),
    ("0", out_of_range(1, 2**31 - 1)), ("-1", out_of_range(1, 2**31 - 1)),
    ("2147483648", out_of_range(1, 2**31 - 1)), ("9" * 5000, out_of_range(1, 2**31 - 1)),
])
def test_bad_integers_say_why(raw: str, message: str) -> None:
    """Not digits: "Not a valid integer."; digits outside the range: "Must be between ..."."""
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.") + "$"):
        parse_int(raw)


def test_query_collects_every_problem() -> None:
    """Absent or blank takes the default; required and absent is named; every bad one is listed."""
    errors: Errors = {}
    query = {"page": "0", "page_size": "x", "device_type": " "}
    assert query_int(query, "device_type", errors=errors, default=4) == 4
    assert query_int(query, "project_id", required=True, errors=errors) is None
    window = query_page(query, default_size=10, max_size=100, errors=errors)
    assert window == PageWindow(page=1, page_size=10)
    assert errors == {"project_id": [MISSING], "page": [out_of_range(1, 2**31 - 1)],
                      "page_size": [NOT_AN_INTEGER]}


def test_page_window_offset() -> None:
    """Page 3 of 20 starts after 40 rows."""
    assert query_page({"page": "3", "page_size": "20"}, default_size=10, max_size=100,
                      errors={}).offset == 40


def test_choices_name_the_allowed_codes() -> None:
    """A code outside the list names the list; absent is missing when required; digits only."""
    errors: Errors = {}
    query = {"device_type": "3", "wm_type": " 1 ", "kind": "x"}
    assert query_choice(query, "device_type", errors=errors, choices={0, 1, 2}) is None
    assert query_choice(query, "wm_type", errors=errors, choices={0, 1}) == 1
    assert query_choice(query, "kind", errors=errors, choices={0}) is None
    assert query_choice(query, "absent", errors=errors, choices={0}) is None
    assert query_choice(query, "optional", errors=errors, choices={0}, required=False) is None
    assert errors == {"device_type": ["Must be one of: 0, 1, 2."], "kind": [NOT_AN_INTEGER],
                      "absent": [MISSING]}
