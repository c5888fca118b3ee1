"""Reverse control (EnOS "Set Measurement Points"): the twin's desired values typed for the device
by the product's thing model, the downstream request, and the device's set_reply.

The twin (`SetMeasurepoints`) sends Number values as exact decimal strings ("12.20"), Booleans as
JSON true/false and Json types as parsed JSON whose decimals are strings too. The device gets the
thing model's type: a JSON number with the same digits for int/float/double, true/false for bool,
and so on. A value that cannot be made to fit is a permanent error naming the identifier.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from twinbill_common.schemas import DataType
from twinbill_ingest.domain.encoding import encode_value
from twinbill_ingest.domain.thingmodel import CompiledModel

SET_METHOD = "thing.service.measurepoint.set"
PROTOCOL_VERSION = "1.0"


class BadCommand(ValueError):
    """A command value that does not fit the device's thing model (never deliverable)."""


def set_topic(product_key: str, device_key: str) -> str:
    """The downstream topic of a device (a sub-device's own topic, as EnOS does)."""
    return f"/sys/{product_key}/{device_key}/thing/service/measurepoint/set"


SET_REPLY_FILTER = "/sys/+/+/thing/service/measurepoint/set_reply"


def device_params(values: Mapping[str, Any], model: CompiledModel) -> dict[str, Any]:
    """The `params` of the set request: every value typed by the model; BadCommand otherwise."""
    if not values:
        raise BadCommand("no values to set")
    params: dict[str, Any] = {}
    for identifier, value in values.items():
        data_type = model.get(identifier)
        if data_type is None:
            raise BadCommand(f"unknown measurepoint identifier {identifier!r}")
        params[identifier] = typed_value(value, data_type, path=identifier)
    return params


def typed_value(value: Any, data_type: DataType, *, path: str) -> Any:
    """`value` as the device expects a `data_type` value (Decimal for numbers, kept exact)."""
    kind = data_type.type
    if value is None:
        raise BadCommand(f"{path}: null is not a {kind}")
    if kind in ("int", "timestamp"):
        number = _number(value, path=path, kind=kind)
        if number != number.to_integral_value() or (kind == "timestamp" and number < 0):
            raise BadCommand(f"{path}: {value!r} is not a{' non-negative' if kind == 'timestamp' else 'n'} integer")
        return int(number)
    if kind in ("float", "double"):
        return _number(value, path=path, kind=kind)
    if kind == "bool":
        return _boolean(value, path=path)
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise BadCommand(f"{path}: expected string, got {type(value).__name__}")
        return str(value)
    if kind == "enum":
        return _enum(value, data_type, path=path)
    if kind == "date":
        if isinstance(value, str):
            return value
        return typed_value(value, DataType(type="timestamp"), path=path)
    if kind == "array":
        items = _json_container(value, list, path=path)
        if data_type.item is None:
            return items
        return [typed_value(item, data_type.item, path=f"{path}[{i}]") for i, item in enumerate(items)]
    fields = data_type.fields or {}
    struct = _json_container(value, dict, path=path)
    typed: dict[str, Any] = {}
    for name, field_value in struct.items():
        field_type = fields.get(name)
        if field_type is None:
            raise BadCommand(f"{path}: unknown struct field {name!r}")
        typed[name] = typed_value(field_value, field_type, path=f"{path}.{name}")
    return typed


def _number(value: Any, *, path: str, kind: str) -> Decimal:
    if isinstance(value, bool):
        raise BadCommand(f"{path}: expected {kind}, got a boolean")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise BadCommand(f"{path}: {value!r} is not a number") from None
    elif isinstance(value, float):
        number = Decimal(repr(value))
    else:
        raise BadCommand(f"{path}: expected {kind}, got {type(value).__name__}")
    if not number.is_finite():
        raise BadCommand(f"{path}: {value!r} is not a finite number")
    return number


def _boolean(value: Any, *, path: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int | Decimal) else None
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise BadCommand(f"{path}: {value!r} is not a boolean (true/false/1/0)")


def _enum(value: Any, data_type: DataType, *, path: str) -> Any:
    allowed = data_type.values
    if allowed is None:
        return value
    for candidate in allowed:
        if isinstance(candidate, bool) or isinstance(value, bool):
            continue
        if candidate == value or str(candidate) == str(value).strip():
            return Decimal(str(candidate)) if isinstance(candidate, float) else candidate
    raise BadCommand(f"{path}: {value!r} is not one of {allowed}")


def _json_container(value: Any, expected: type, *, path: str) -> Any:
    if isinstance(value, str):  # a Json attribute may still be text
        try:
            value = json.loads(value, parse_float=Decimal)
        except ValueError:
            raise BadCommand(f"{path}: {value[:40]!r} is not JSON") from None
    if not isinstance(value, expected):
        raise BadCommand(f"{path}: expected {'array' if expected is list else 'struct'}, got {type(value).__name__}")
    return value


def encode_set(request_id: str, params: Mapping[str, Any]) -> bytes:
    """The EnOS set request: {"id", "version": "1.0", "params", "method"}, numbers exact."""
    out: list[str] = []
    encode_value({"id": request_id, "version": PROTOCOL_VERSION, "params": dict(params), "method": SET_METHOD}, out)
    return "".join(out).encode()


@dataclass(frozen=True)
class SetReply:
    """A device's answer on `.../measurepoint/set_reply`."""

    product_key: str
    device_key: str
    request_id: str | None
    code: int | None
    message: str | None


def parse_set_reply(topic: str, payload: bytes) -> SetReply | None:
    """Read a set_reply (None if the topic is not one); a malformed body keeps code None."""
    parts = topic.split("/")
    if len(parts) != 8 or parts[:2] != ["", "sys"] or parts[4:] != ["thing", "service", "measurepoint", "set_reply"]:
        return None
    request_id: str | None = None
    code: int | None = None
    message: str | None = None
    try:
        body = json.loads(payload)
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw_id = body.get("id")
        request_id = str(raw_id) if isinstance(raw_id, str | int) and not isinstance(raw_id, bool) else None
        raw_code = body.get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        raw_message = body.get("message")
        message = raw_message if isinstance(raw_message, str) else None
    return SetReply(parts[2], parts[3], request_id, code, message)


Stamp = tuple[int, int]  # (produced_at in epoch microseconds, version): the order of commands


def stamp(produced_at: datetime, version: int) -> Stamp:
    """The order of a command among the device's commands.

    The twin's `version` is the highest of the set attributes' own counters, so it orders two
    commands only when they set the same identifiers: {setpoint, limit} may be v5 and a later
    {limit} v2. `produced_at` is taken after the twin's UPDATE holds the attributes' row locks,
    so of two commands sharing an identifier the later one always has the later time; the
    version breaks a tie.
    """
    return (int(produced_at.timestamp() * 1_000_000), version)


@dataclass(frozen=True)
class Pending:
    """One command waiting for its device: its order and the identifiers it sets."""

    order: Stamp
    identifiers: frozenset[str]


def live_params(params: Mapping[str, Any], *, order: Stamp, delivered: Mapping[str, Stamp]) -> dict[str, Any]:
    """The params still worth sending: identifiers a later command already reached are dropped
    (a command sent again, e.g. after a redelivery, keeps them)."""
    return {ident: value for ident, value in params.items() if ident not in delivered or delivered[ident] <= order}


def supersedes(newer: Pending, older: Pending) -> bool:
    """A later command replaces an earlier pending one when it sets all of its identifiers."""
    return newer.order > older.order and older.identifiers <= newer.identifiers
