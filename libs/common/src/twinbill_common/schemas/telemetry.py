"""Measurements the ingest gateway accepted: one message per device request, routing key
`mp.{productKey}.{deviceKey}` of the device that published it."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from twinbill_common.schemas.base import Message

# What the twin can store. The ingest gateway refuses anything else at the edge (1204/1206), so
# a device never gets a 200 for a point the twin would then have to dead-letter.
DEVICE_TIME_MIN_MS = 0  # 1970-01-01T00:00:00Z
DEVICE_TIME_MAX_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z, exclusive: later is a broken clock
MAX_DECIMAL_PLACES = 16_383  # PostgreSQL numeric
MAX_EXPONENT = 308  # beyond it only a zero (0E+999999) is still a finite double; numeric overflows
MAX_ARRAY_ITEMS = 32_767  # an array element's index is a smallint


def number_problem(value: Decimal | int) -> str | None:
    """Why a number cannot be stored, or None: it must be finite, within a double's range (the
    twin keeps a double beside the exact decimal for aggregation) and have at most 16,383
    decimal places."""
    if isinstance(value, Decimal) and not value.is_finite():
        return f"{value} is not a finite number"
    try:
        approx = float(value)
    except OverflowError:
        approx = math.inf
    if not math.isfinite(approx):
        return f"{value} is beyond a double's range"
    if isinstance(value, int):
        return None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMAL_PLACES:
        return f"{value} has more than {MAX_DECIMAL_PLACES} decimal places"
    if isinstance(exponent, int) and exponent > MAX_EXPONENT:
        return f"{value} has an exponent beyond a double's range"
    return None


def text_problem(value: str) -> str | None:
    """Why a text cannot be stored, or None: PostgreSQL text holds no NUL character, and
    UTF-8 has no lone surrogates (JSON can spell one, `"\\ud800"`)."""
    if "\x00" in value:
        return "contains a NUL character (U+0000)"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds a lone surrogate)"
    return None


def array_problem(items: list[Any]) -> str | None:
    """Why an array cannot be stored, or None: it holds 1 to 32,767 elements."""
    if not items:
        return "an empty array holds no value"
    if len(items) > MAX_ARRAY_ITEMS:
        return f"an array holds at most {MAX_ARRAY_ITEMS} elements, got {len(items)}"
    return None


def time_problem(ms: int) -> str | None:
    """Why a device time (epoch milliseconds) cannot be stored, or None."""
    if DEVICE_TIME_MIN_MS <= ms < DEVICE_TIME_MAX_MS:
        return None
    return f"time {ms} is outside 1970..2100 (epoch milliseconds)"


class DevicePoints(BaseModel):
    """The validated measurepoints of one device at one instant (epoch milliseconds, UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_key: str
    device_key: str
    time: int = Field(description="epoch milliseconds")
    measurepoints: dict[str, Any]


class MeasurementsAccepted(Message):
    """Points from one MQTT request, accepted after validation against the thing model.

    `message_id` is derived from (publisher, request id, payload) by the gateway, so a device's
    retry of the same request carries the same id and downstream stores it once.
    """

    product_key: str = Field(description="the publishing device or gateway")
    device_key: str
    request_id: str | None = None
    method: str
    received_at: int = Field(description="epoch milliseconds when the gateway received the request")
    points: list[DevicePoints]
