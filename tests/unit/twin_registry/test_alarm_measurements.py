"""The alarm consumer's and the telemetry consumer's decoders (handlers/measurements.py) accept
exactly the bodies the schema accepts, with the same values (Decimal where JSON has a fraction;
the telemetry form keeps each value's JSON text, read by `value_of`), and refuse the others as
PermanentError, whichever of their two paths decides."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from twinbill_common.consumers import decode_body
from twinbill_common.errors import PermanentError
from twinbill_common.schemas import MeasurementsAccepted
from twinbill_twin.handlers.measurements import decode_measurements, decode_telemetry, from_model, value_of

POINT = '{"product_key":"pk","device_key":"m1","time":1764518400000,"measurepoints":{"total":12.50,"n":3}}'


def body(**fields: str) -> bytes:
    """A MeasurementsAccepted body as the ingest gateway writes it, with fields replaced (raw JSON
    text) or removed (an empty string)."""
    parts = {"schema_version": "1", "message_id": '"m-1"', "produced_at": '"2026-12-06T00:00:00Z"',
             "product_key": '"pk"', "device_key": '"gw"', "request_id": '"1"',
             "method": '"thing.measurepoint.post.batch"', "received_at": "1764518400123",
             "points": f"[{POINT}]"}
    parts.update(fields)
    return ("{" + ",".join(f'"{k}":{v}' for k, v in parts.items() if v != "") + "}").encode()


CASES: list[tuple[str, bytes]] = [
    ("as published", body()),
    ("no request id", body(request_id="")),
    ("request id null", body(request_id="null")),
    ("no message id or produced_at", body(message_id="", produced_at="")),
    ("many points, every JSON value", body(points="[" + ",".join(
        f'{{"product_key":"pk","device_key":"m{n}","time":{n},"measurepoints":{{"a":1.0,"b":-0.0,"c":1e400,'
        f'"d":123456789012345678901234567890,"e":true,"f":null,"g":"x","h":[1.5],"i":{{"j":2.25}}}}}}'
        for n in range(5)) + "]")),
    ("no points", body(points="[]")),
    ("an unknown field", body(colour='"red"')),
    ("an unknown point field", body(points='[{"product_key":"pk","device_key":"m","time":1,"x":1,'
                                          '"measurepoints":{}}]')),
    ("time as text", body(points='[{"product_key":"pk","device_key":"m","time":"17","measurepoints":{}}]')),
    ("time with a fraction", body(points='[{"product_key":"pk","device_key":"m","time":17.0,"measurepoints":{}}]')),
    ("time as a bool", body(points='[{"product_key":"pk","device_key":"m","time":true,"measurepoints":{}}]')),
    ("received_at as text", body(received_at='"1764518400123"')),
    ("schema_version as a float", body(schema_version="1.0")),
    ("naive produced_at", body(produced_at='"2026-12-06T00:00:00"')),
    ("produced_at null", body(produced_at="null")),
    ("produced_at as epoch seconds", body(produced_at="1764979200")),
    ("produced_at not a time", body(produced_at='"soon"')),
    ("an empty message id", body(message_id='""')),
    ("a long message id", body(message_id='"' + "x" * 129 + '"')),
    ("a message id of 128", body(message_id='"' + "x" * 128 + '"')),
    ("method missing", body(method="")),
    ("a NaN value", body(points='[{"product_key":"pk","device_key":"m","time":1,"measurepoints":{"v":NaN}}]')),
    ("a byte order mark", b"\xef\xbb\xbf" + body()),
    ("a duplicate key", body(received_at="1, \"received_at\": 2")),
    ("not JSON", b"{"),
    ("not an object", b"[]"),
]


def reference(raw: bytes) -> dict[str, Any] | str:
    try:
        message = decode_body(MeasurementsAccepted, raw, exact_decimals=True)
    except PermanentError:
        return "refused"
    return compact(from_model(message))


def compact(decoded: Any) -> dict[str, Any]:
    """What the consumers read of a decoded message (types included; a value kept as JSON text
    as `value_of` reads it)."""
    def read(value: Any) -> Any:
        return value_of(value) if isinstance(value, msgspec.Raw) else value
    return {"publisher": (decoded.product_key, decoded.device_key), "received_at": decoded.received_at,
            "points": [(p.product_key, p.device_key, p.time, [(k, type(read(v)).__name__, repr(read(v)))
                                                              for k, v in p.measurepoints.items()])
                       for p in decoded.points]}


@pytest.mark.parametrize("decode", [decode_measurements, decode_telemetry], ids=["alarms", "telemetry"])
@pytest.mark.parametrize(("name", "raw"), CASES, ids=[name for name, _ in CASES])
def test_the_decoder_accepts_and_reads_what_the_schema_does(name: str, raw: bytes, decode: Any) -> None:
    expected = reference(raw)
    try:
        got: dict[str, Any] | str = compact(decode(raw))
    except PermanentError:
        got = "refused"
    assert got == expected


def test_the_telemetry_form_keeps_each_value_as_its_json_text() -> None:
    """The telemetry consumer stores a plain number from these bytes: they are the device's digits."""
    decoded = decode_telemetry(body())
    values = decoded.points[0].measurepoints
    assert {k: bytes(v) for k, v in values.items()} == {"total": b"12.50", "n": b"3"}


def test_the_table_has_both_outcomes_and_exact_decimals() -> None:
    """The table above holds refused and accepted bodies, and fractions decode as Decimal."""
    outcomes = {name: reference(raw) for name, raw in CASES}
    assert sum(outcome == "refused" for outcome in outcomes.values()) >= 10
    assert sum(outcome != "refused" for outcome in outcomes.values()) >= 5
    decoded = decode_measurements(body())
    assert decoded.points[0].measurepoints == {"total": Decimal("12.50"), "n": 3}
    assert str(decoded.points[0].measurepoints["total"]) == "12.50"
    assert json.loads(body())["received_at"] == decoded.received_at
