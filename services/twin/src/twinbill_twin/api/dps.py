"""A Stream query's `dps` written as JSON text, and answers that carry such text.

A week of 10 s buckets is 60,480 `dps` entries: a dict of them, each value rounded through
`float(f"{v:.15g}")`, then `json.dumps` of the whole answer cost about 150 ms of CPU. `dps_text`
writes the same text with one `%`-format over the columns (C loops), and falls back to the dict
for the few values whose text the format cannot match (non-finite values, -0, integral doubles
at or past 2**53 or with a 15-digit exponent, the extremes of the double range, text values,
fill markers). `answer_response`
splices such texts into the envelope that `json.dumps` writes around them."""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from twinbill_common.http import dumps
from twinbill_twin.domain.floattext import rounded_texts
from twinbill_twin.store.series import Texts

_INTEGRAL = 2.0**53


@dataclass(frozen=True, slots=True)
class EncodedJson:
    """JSON text written ahead (a series' `dps` object) and the number of entries it holds."""

    text: str
    count: int

    def __len__(self) -> int:
        return self.count


def answer_response(body: Any) -> web.Response:
    """`body` as JSON, as twinbill_common.http.json_response writes it, with each EncodedJson
    inside written as its text. Each is first written as a random token string, then the
    envelope's text is cut at the tokens: no data can hold a token chosen after it was read."""
    token = secrets.token_hex(16)
    parts: list[str] = []

    def mark(value: Any) -> Any:
        if isinstance(value, EncodedJson):
            parts.append(value.text)
            return f"{token}{len(parts) - 1}"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    rest = dumps(mark(body))
    chunks: list[str] = []
    for index, part in enumerate(parts):  # json.dumps writes them in the order mark met them
        before, _, rest = rest.partition(f'"{token}{index}"')
        chunks += [before, part]
    chunks.append(rest)
    return web.Response(text="".join(chunks), content_type="application/json")


def dps_text(times: list[int], values: list[Any], *, millis: bool, computed: bool) -> str:
    """`dps` of one output series as the JSON text `json.dumps(dps(...))` writes (the same
    separators as the envelope's); keys as `key`, values as `computed_number` / `number`."""
    if not times:
        return "{}"
    fast = _fast_text(_keys(times, millis=millis), values, millis=millis, computed=computed)
    if fast is not None:
        return fast
    return json.dumps(dps(times, values, millis=millis, computed=computed), ensure_ascii=False)


def dps_from_texts(times: list[int], texts: Texts, *, millis: bool, computed: bool) -> str:
    """dps_text of values PostgreSQL wrote as text (store.series.Texts, shortest exact, written
    in C at a fraction of Python's cost): a picked value's text is what dps writes (integral
    ones without a point in both). A computed value is written to 15 significant digits: a
    shortest text of at most 15 characters has at most 15 digits and is then the `%.15g` text
    itself (the double lies within half a unit in its last binary place of that decimal, closer
    than half a 15-digit step, and both switch to an exponent at the same magnitudes); only
    longer ones (about 6% of a week's minute averages) are formatted from the double, unless the
    store already rounded them (Texts.rounded: the doubles of those `%.15g` texts, whose shortest
    texts have the same digits and notation at any length). The pairs then go into one format
    (keys one step apart: _key_pattern). Texts that would differ (NaN, infinities, -0,
    exponents: from 1e15 and below 1e-29) are read back and written by dps_text."""
    if not times:
        return "{}"
    written: list[str] = texts
    joined = texts.joined
    if texts.rounded and not computed:  # cannot be: only computed values are asked for rounded
        raise ValueError("values rounded to 15 digits where every digit was to be written")
    if computed and not texts.rounded:
        written = rounded_texts(texts)
        if written is not texts:
            joined = ",".join(written)
    if "N" in joined or "I" in joined or "e+" in joined or "e-3" in joined or "-0" in written:
        # from the shortest texts, which read back exactly
        return dps_text(times, [float(text) for text in texts], millis=millis, computed=computed)
    keys = _keys(times, millis=millis)
    if isinstance(keys, range) and keys.start >= 10_000:  # buckets one step apart: their keys' texts by joins
        return "{" + (_key_pattern(keys) % tuple(written))[:-2] + "}"
    inter: list[Any] = [None] * (2 * len(keys))
    inter[0::2] = keys
    inter[1::2] = written
    key = '"%013d": ' if millis else '"%d": '
    return "{" + ((key + "%s, ") * len(keys) % tuple(inter))[:-2] + "}"


_SUFFIXES = [f"{low:04d}" for low in range(10_000)]


def _key_pattern(keys: range) -> str:
    """`"<key>": %s, ` for each key (all of them 10,000 or more), written without an int-to-text
    per key: within a block of keys sharing their digits above the last four, one C join of a
    slice of the four-digit texts with those digits in the separator (a week of minutes is 61
    blocks; half the cost of formatting each key)."""
    parts = []
    key, last, step = keys.start, keys[-1], keys.step
    while key <= last:
        high, low = divmod(key, 10_000)
        block_last = min(last, key + (9_999 - low) // step * step)
        prefix = str(high)
        lows = _SUFFIXES[low:low + (block_last - key) + 1:step]
        parts.append('"' + prefix + ('": %s, "' + prefix).join(lows) + '": %s, ')
        key = block_last + step
    return "".join(parts)


def _keys(times: list[int], *, millis: bool) -> Sequence[int]:
    """The numbers the keys write: the times in ms, or in seconds (ts // 1000). Times one step
    apart (buckets, the usual answer) give a range, which the format's slice assignment turns
    into ints in C; the check builds the range's list and compares in C too (a third of the
    divisions' cost)."""
    if millis:
        return times
    first, last = times[0], times[-1]
    step = times[1] - first if len(times) > 1 else 1000
    if step > 0 and step % 1000 == 0 and first % 1000 == 0 and last - first == (len(times) - 1) * step \
            and times == list(range(first, last + 1, step)):
        return range(first // 1000, last // 1000 + 1, step // 1000)
    return list(map((1000).__rfloordiv__, times))  # ts // 1000


def _fast_text(keys: Sequence[int], values: list[Any], *, millis: bool, computed: bool) -> str | None:
    """The dps text by one format of all pairs, or None where a value's text would differ from
    what `dps` makes of it (the caller then writes it the slow way).

    Computed values: `%.15g` is the text of float(f"{v:.15g}") (a decimal of 15 significant
    digits round-trips through a normal double, so repr gives back those digits, trailing zeros
    dropped, and repr and %g choose the same notation except for exponents 15), and an integral
    one is written without a point by both. Picked values: `%r` is repr; an integral double
    below 2**53 becomes an integer ("5.0" -> "5": a repr that ends in ".0" is always integral)."""
    inter: list[Any] = [None] * (2 * len(keys))
    inter[0::2] = keys
    inter[1::2] = values
    key = '"%013d": ' if millis else '"%d": '
    try:
        if computed:
            text = (key + "%.15g, ") * len(keys) % tuple(inter)
            # nan, inf; 1e15..1e16 (repr: no exponent); -0; values that 15 digits round past the
            # largest double; below 1e-29 (subnormals hold fewer than 15 digits)
            if "n" in text or "e+15" in text or " -0," in text or "e+308" in text or "e-3" in text:
                return None
        else:
            low, high = min(values), max(values)  # TypeError: text among numbers, a null fill
            if not -_INTEGRAL < low <= high < _INTEGRAL:
                return None
            text = ((key + "%r, ") * len(keys) % tuple(inter)).replace('.0, "', ', "')
            # nan, inf, None; text (its repr holds a '); -0.0
            if "n" in text or "'" in text or " -0," in text or " -0.0," in text:
                return None
    except TypeError:  # a null fill, or text, where numbers were expected
        return None
    text = text[:-2]
    if text.endswith(".0") and not computed:
        text = text[:-2]
    return "{" + text + "}"


def dps(times: list[int], values: list[Any], *, millis: bool, computed: bool) -> dict[str, Any]:
    """The `dps` of one output series: keys as key, values as computed_number / number (the
    same results; a finite double is handled inline, the rest by those functions)."""
    keys = [f"{ts:013d}" for ts in times] if millis else [str(ts // 1000) for ts in times]
    written: list[Any] = []
    append = written.append
    for value in values:
        if type(value) is float and value - value == 0.0:  # finite (inf - inf and nan - nan are nan)
            if computed:
                value = float(f"{value:.15g}")
            append(int(value) if value.is_integer() and -_INTEGRAL < value < _INTEGRAL else value)
        else:
            append(computed_number(value) if computed else number(value))
    return dict(zip(keys, written, strict=True))


def key(ts: int, millis: bool) -> str:
    # Millisecond keys are always 13 digits (zero-padded): `start`/`end` read 10 digits or fewer
    # as seconds, so an unpadded early key ("123456") would read back as seconds.
    return f"{ts:013d}" if millis else str(ts // 1000)


def computed_number(value: Any) -> Any:
    """A computed double to the 15 significant digits a double holds exactly (then as number)."""
    if isinstance(value, float) and math.isfinite(value):
        value = float(f"{value:.15g}")
    return number(value)


def number(value: Any) -> Any:
    """Integral doubles are written as integers (the seed's `19`), NaN as "NaN", text stays text."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, float) and not math.isfinite(value):
        # as OpenTSDB's serializer writes them: strings, so strict JSON parsers read the answer
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value
