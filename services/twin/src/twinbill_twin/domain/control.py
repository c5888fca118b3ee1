"""Reverse control (seed 002 设备反控): expectvalue strings checked and typed for the device."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any


class BadExpectValue(ValueError):
    """An expectvalue that does not fit the attribute's datatype."""


def typed_expectvalue(text: str, *, datatype: str) -> Any:
    """The value the device receives for an expectvalue string of an attribute's datatype."""
    if datatype == "Number":
        try:
            number = Decimal(text.strip())
        except InvalidOperation:
            raise BadExpectValue(f"{text!r} is not a number") from None
        if not number.is_finite():
            raise BadExpectValue(f"{text!r} is not a finite number")
        return number
    if datatype == "Boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise BadExpectValue(f"{text!r} is not a boolean (true/false/1/0)")
    if datatype in ("Json Object", "Json Array"):
        try:
            parsed = json.loads(text, parse_float=Decimal)
        except ValueError:
            raise BadExpectValue(f"{text!r} is not JSON") from None
        expected = dict if datatype == "Json Object" else list
        if not isinstance(parsed, expected):
            raise BadExpectValue(f"{text!r} is not a {datatype}")
        return parsed
    return text
