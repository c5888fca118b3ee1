"""Doubles written by PostgreSQL (`array_to_string` of a float8 array: its float8out is C and
about ten times cheaper than CPython's repr) turned into the texts twinbill's answers have
always held, so a long answer is put together from text without a Python float per value.

With `extra_float_digits` 1 (create_pool sets it) PostgreSQL writes the shortest text that
reads back as the same double, as repr does, and with the same digits and notation except:
integral values (`100` and `-0`, repr `100.0` and `-0.0`), values from 1e15 up (exponent
notation from 1e15, repr from 1e16; integral doubles past 2**53 with every digit), NaN and the
infinities (`NaN`, `Infinity`). tests/integration/twin_timeseries/test_float_text.py holds
this against PostgreSQL on a few hundred thousand doubles. (With `extra_float_digits` 0
PostgreSQL writes `%.15g`, seed 002's computed values, through printf: no cheaper than Python.)"""

from __future__ import annotations

from collections.abc import Callable
from itertools import compress


def split_values(text: str, count: int) -> list[str] | None:
    """The `count` comma-separated texts of `text`, or None when it holds another number of
    them (`array_to_string` leaves NULLs out: the caller then reads the values another way)."""
    parts = text.split(",") if count else []
    return parts if len(parts) == count else None


def repr_texts(parts: list[str], *, joined: str, write: Callable[[float], str] = float.__repr__) -> list[str]:
    """PostgreSQL's shortest texts of doubles (`parts`, from `joined` by split_values) as `write`
    writes the same doubles; `write` is repr, or a function that writes repr for every finite
    double (only NaN, the infinities and values from 1e15 up go through it)."""
    if "e+" in joined or "N" in joined or "I" in joined:
        # 1e15 and up, NaN, infinities: through the double (the shortest text reads back exactly)
        return [write(float(text)) for text in parts]
    if joined.count(".") != len(parts):  # some part has no point: an integral value or "1e-05"
        return [text if "." in text or "e" in text else text + ".0" for text in parts]
    return parts


NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def postgres_text(value: float) -> str:
    """A double written as PostgreSQL writes it (shortest exact), so Python-computed values (a
    query's partial first and last buckets) join the texts PostgreSQL wrote. Where the two
    differ (from 1e15 on PostgreSQL writes an exponent) this text still reads back as the same
    double, and api.dps writes it the same."""
    text = float.__repr__(value)
    if text in NON_FINITE:
        return NON_FINITE[text]
    if text.endswith(".0") and abs(value) < 2.0**53:
        # repr's integral "100.0" is PostgreSQL's "100"; past 2**53 dps writes the double's
        # repr, which this text then is
        return text[:-2]
    return text


def rounded_texts(parts: list[str]) -> list[str]:
    """PostgreSQL's shortest texts of doubles as the shortest texts of those doubles rounded to 15
    significant digits (float(f"{v:.15g}")), which are the `%.15g` texts: a text of at most 15
    characters has at most 15 digits, so its double is already that (the same text); only the
    longer ones (about 6% of a week's minute averages), found by C loops, are formatted."""
    longer = list(compress(range(len(parts)), map((15).__lt__, map(len, parts))))
    if not longer:
        return parts
    written = list(parts)
    for index in longer:
        written[index] = f"{float(parts[index]):.15g}"
    return written
