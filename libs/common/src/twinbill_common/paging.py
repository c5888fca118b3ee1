"""Query-string integers and list pages, parsed one way with one set of messages everywhere.

Every service reads ids, limits and page numbers from a query string through `query_int` and
`query_page`: surrounding blanks are ignored, only ASCII digits (with an optional sign) make an
integer, and an error names the parameter with one of the messages below, collected so that one
answer lists every bad parameter. The surfaces' page arithmetic (flask-smorest's X-Pagination,
seed 002's pageTotal) is here too. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, overload

INT32_MAX = 2**31 - 1  # PostgreSQL `integer`; seed 002 gives `page` 4 bytes
INT64_MAX = 2**63 - 1  # PostgreSQL `bigint`

MISSING = "Missing data for required field."
NOT_AN_INTEGER = "Not a valid integer."

_INTEGER = re.compile(r"[+-]?[0-9]+")
_MAX_DIGITS = 40  # longer digit strings are out of every range; never handed to int()

Errors = dict[str, list[str]]


def out_of_range(minimum: int, maximum: int) -> str:
    """The message for an integer outside [minimum, maximum]."""
    return f"Must be between {minimum} and {maximum}."


def parse_int(raw: str, *, minimum: int = 1, maximum: int = INT32_MAX) -> int:
    """One integer from text; ValueError whose text is the message for the caller to show."""
    text = raw.strip()
    if not _INTEGER.fullmatch(text):
        raise ValueError(NOT_AN_INTEGER)
    if len(text) > _MAX_DIGITS:
        raise ValueError(out_of_range(minimum, maximum))
    number = int(text)
    if not minimum <= number <= maximum:
        raise ValueError(out_of_range(minimum, maximum))
    return number


@overload
def query_int(query: Mapping[str, str], name: str, *, errors: Errors, default: int,
              required: bool = False, minimum: int = 1, maximum: int = INT32_MAX) -> int: ...
@overload
def query_int(query: Mapping[str, str], name: str, *, errors: Errors, default: None = None,
              required: bool = False, minimum: int = 1, maximum: int = INT32_MAX) -> int | None: ...
def query_int(query: Mapping[str, str], name: str, *, errors: Errors, default: int | None = None,
              required: bool = False, minimum: int = 1, maximum: int = INT32_MAX) -> int | None:
    """Parameter `name` as an integer, `default` when absent or blank; a problem goes to `errors`."""
    raw = query.get(name)
    if raw is None or not raw.strip():
        if required:
            errors.setdefault(name, []).append(MISSING)
        return default
    try:
        return parse_int(raw, minimum=minimum, maximum=maximum)
    except ValueError as err:
        errors.setdefault(name, []).append(str(err))
        return default


def query_choice(query: Mapping[str, str], name: str, *, errors: Errors, choices: Collection[int],
                 required: bool = True) -> int | None:
    """Parameter `name` as one of the integer codes `choices` ("Must be one of: 0, 1, 2.")."""
    raw = query.get(name)
    if raw is None or not raw.strip():
        if required:
            errors.setdefault(name, []).append(MISSING)
        return None
    try:
        number = parse_int(raw, minimum=-INT64_MAX, maximum=INT64_MAX)
    except ValueError as err:
        errors.setdefault(name, []).append(str(err))
        return None
    if number not in choices:
        errors.setdefault(name, []).append(one_of(sorted(choices)))
        return None
    return number


def one_of(choices: Collection[object]) -> str:
    """The message for a value outside a fixed list."""
    return "Must be one of: " + ", ".join(str(choice) for choice in choices) + "."


@dataclass(frozen=True)
class PageWindow:
    """Which rows a page holds: `page` from 1, `page_size` rows each."""

    page: int
    page_size: int

    @property
    def offset(self) -> int:
        """Rows before this page."""
        return (self.page - 1) * self.page_size


def query_page(query: Mapping[str, str], *, errors: Errors, default_size: int, max_size: int,
               page: str = "page", page_size: str = "page_size") -> PageWindow:
    """The page a list query asks for (`page` from 1, `page_size` from 1 to `max_size`)."""
    number = query_int(query, page, errors=errors, default=1)
    size = query_int(query, page_size, errors=errors, default=default_size, maximum=max_size)
    return PageWindow(page=number, page_size=size)


def page_total(total: int, size: int) -> int:
    """Number of pages holding `total` rows of `size` each (0 when there are none)."""
    return (total + size - 1) // size if size > 0 else 0


def smorest_pagination(*, total: int, page: int, page_size: int) -> dict[str, Any]:
    """The X-Pagination header content as flask-smorest writes it."""
    pages = page_total(total, page_size)
    header: dict[str, Any] = {"total": total, "total_pages": pages}
    if pages:
        header.update(first_page=1, last_page=pages, page=page)
        if page > 1:
            header["previous_page"] = page - 1
        if page < pages:
            header["next_page"] = page + 1
    return header
