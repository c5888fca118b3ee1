"""Encode what goes out: replies, and MeasurementsAccepted bodies with the device's exact numbers.

The twin decodes telemetry with `parse_float=Decimal`, so a number must travel as the text the
device sent. The payload was parsed with `parse_float=Decimal`; `str(Decimal)` gives that text
back (the same digits; an exponent is written in Python's canonical form, e.g. 1E+5), and this
encoder writes it as a JSON number, never as a string or a binary float. msgspec writes the body
(`decimal_format="number"` is `str(Decimal)` as a JSON number); the encoder in Python below is
kept for what msgspec cannot write (text holding a lone surrogate, in a request id) and as the
reference the tests compare it with.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from twinbill_ingest.domain.requests import Accepted, PointSet
from twinbill_ingest.domain.topics import Topic

_string = json.encoder.encode_basestring  # the C string encoder
_ENCODER = msgspec.json.Encoder(decimal_format="number")
# json.dumps(body, ensure_ascii=False, default=str) builds this encoder for every call.
_REPLY = json.JSONEncoder(ensure_ascii=False, default=str)


class _Body(msgspec.Struct):
    """MeasurementsAccepted (twinbill_common.schemas.telemetry) in its field order."""

    schema_version: int
    message_id: str
    produced_at: str
    product_key: str
    device_key: str
    request_id: str | None
    method: str
    received_at: int
    points: list[PointSet]


def message_id(topic: Topic, request_id: str | None, payload: bytes) -> str:
    """Deterministic id of a request: a device's retry (same id, same bytes) gets the same id."""
    digest = hashlib.sha256()
    digest.update(f"{topic.product_key}\x00{topic.device_key}\x00{request_id or ''}\x00".encode())
    digest.update(payload)
    return digest.hexdigest()[:32]


def encode_value(value: Any, out: list[str]) -> None:
    """Append the JSON text of `value`, with Decimals written as JSON numbers."""
    kind = type(value)
    if kind is Decimal or kind is int:  # exact types first: bool is an int subclass
        out.append(str(value))
    elif kind is str:
        out.append(_string(value))
    elif kind is msgspec.Raw:  # a reading as the device wrote it (domain.fastpath)
        out.append(bytes(value).decode())
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif isinstance(value, dict):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(_string(key))
            out.append(":")
            encode_value(item, out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            encode_value(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__}")


def encode_accepted(
    accepted: Accepted, *, topic: Topic, message_id: str, received_at: int, produced_at: datetime | None = None
) -> bytes:
    """The MeasurementsAccepted JSON body (twinbill_common.schemas.telemetry) for one request."""
    produced = (produced_at or datetime.fromtimestamp(received_at / 1000, tz=UTC)).isoformat()
    body = _Body(1, message_id, produced, topic.product_key, topic.device_key, accepted.envelope.request_id,
                 accepted.envelope.method, received_at, accepted.points)
    try:
        return _ENCODER.encode(body)
    except (UnicodeEncodeError, TypeError):
        return encode_accepted_text(accepted, topic=topic, message_id=message_id, produced=produced,
                                    received_at=received_at)


def encode_accepted_text(
    accepted: Accepted, *, topic: Topic, message_id: str, produced: str, received_at: int
) -> bytes:
    """The same body written in Python: what msgspec refuses to write (a lone surrogate in a
    request id; the text then fails to encode here too, as it always did)."""
    out: list[str] = [
        '{"schema_version":1,"message_id":',
        _string(message_id),
        ',"produced_at":',
        _string(produced),
        ',"product_key":',
        _string(topic.product_key),
        ',"device_key":',
        _string(topic.device_key),
        ',"request_id":',
        "null" if accepted.envelope.request_id is None else _string(accepted.envelope.request_id),
        ',"method":',
        _string(accepted.envelope.method),
        ',"received_at":',
        str(received_at),
        ',"points":[',
    ]
    for index, point in enumerate(accepted.points):
        if index:
            out.append(",")
        out += [
            '{"product_key":',
            _string(point.product_key),
            ',"device_key":',
            _string(point.device_key),
            ',"time":',
            str(point.time),
            ',"measurepoints":',
        ]
        encode_value(point.measurepoints, out)
        out.append("}")
    out.append("]}")
    return "".join(out).encode()


def encode_reply(request_id: str | None, code: int, *, message: str | None = None, data: Any = None) -> bytes:
    """A reply as EnOS writes it: {"id", "code", "data"} plus "message" on an error."""
    body: dict[str, Any] = {"id": request_id, "code": code, "data": {} if data is None else data}
    if message is not None:
        body["message"] = message
    # A request id can hold a lone surrogate (`"\\ud800"` in the JSON): written back as that
    # escape, so the device still gets its answer.
    return _REPLY.encode(body).encode("utf-8", "backslashreplace")
