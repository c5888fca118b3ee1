"""How a measurepoint value becomes stored samples: a number stays an exact decimal (with a
double beside it for aggregation), an array becomes one series per element, a struct keeps its
value and quality, strings and booleans are kept as text."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from twinbill_common.schemas.telemetry import (
    DEVICE_TIME_MAX_MS,
    DEVICE_TIME_MIN_MS,
    MAX_DECIMAL_PLACES,
    MAX_EXPONENT,
    array_problem,
    number_problem,
    text_problem,
    time_problem,
)
from twinbill_twin.errors import TwinError

SCALAR = -1  # the idx of a scalar series; array elements are 0, 1, ...
# The range the store keeps partitions for (the ingest gateway refuses times outside it).
MIN_TS = DEVICE_TIME_MIN_MS
MAX_TS = DEVICE_TIME_MAX_MS


class UnstorableValue(TwinError):
    """A value that can never be stored (null, not finite, a time out of range)."""


@dataclass(frozen=True, slots=True)
class SampleValue:
    """One series' value at one instant: exactly one of (num and dbl) or txt is set."""

    idx: int
    num: Decimal | None
    dbl: float | None
    txt: str | None
    quality: str | None = None


def _number(value: Decimal | int | float, where: str) -> tuple[Decimal, float]:
    exact = value if isinstance(value, Decimal) else Decimal(str(value))
    problem = number_problem(exact)
    if problem is not None:
        raise UnstorableValue(f"{where}: {problem}")
    return exact, float(exact)


def fast_number(value: Any) -> tuple[Decimal, float] | None:
    """The (exact, double) of a plain finite decimal or integer; None for anything else (the
    common case of the write path, checked without building objects)."""
    kind = type(value)
    if kind is Decimal or kind is int:
        try:
            approx = float(value)
        except OverflowError:
            return None
        if math.isfinite(approx) and (kind is int or (
                value.is_finite() and -MAX_DECIMAL_PLACES <= value.as_tuple().exponent <= MAX_EXPONENT)):
            return (value if kind is Decimal else Decimal(value)), approx
    return None


def _scalar(value: Any, *, idx: int, where: str, quality: str | None = None) -> SampleValue:
    if value is None:
        raise UnstorableValue(f"{where}: null is not a value")
    if isinstance(value, bool):
        return SampleValue(idx, None, None, "true" if value else "false", quality)
    if isinstance(value, Decimal | int | float):
        exact, approx = _number(value, where)
        return SampleValue(idx, exact, approx, None, quality)
    text = value if isinstance(value, str) else value_text(value)
    problem = text_problem(text)
    if problem is not None:
        raise UnstorableValue(f"{where}: {problem}")
    return SampleValue(idx, None, None, text, quality)


def sample_values(value: Any, *, where: str) -> list[SampleValue]:
    """The samples one measurepoint value makes (one per array element; one for anything else)."""
    if isinstance(value, list):
        if problem := array_problem(value):
            raise UnstorableValue(f"{where}: {problem}")
        return [_scalar(item, idx=i, where=f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        if "value" in value:
            quality = value.get("quality")
            return [_scalar(value["value"], idx=SCALAR, where=f"{where}.value",
                            quality=None if quality is None else value_text(quality))]
        return [SampleValue(SCALAR, None, None, value_text(value))]
    return [_scalar(value, idx=SCALAR, where=where)]


def value_text(value: Any) -> str:
    """The attribute's current value as text: decimals keep their exact digits, JSON otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{_json(v)}"
                              for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=False)


def _json(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    return value_text(value)


def check_time(ts: int, *, where: str) -> int:
    """A device time (epoch ms) inside the range the store keeps partitions for."""
    problem = time_problem(ts)
    if problem is not None:
        raise UnstorableValue(f"{where}: {problem}")
    return ts
