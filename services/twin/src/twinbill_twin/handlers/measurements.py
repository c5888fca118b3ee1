"""MeasurementsAccepted as the alarm rules and the telemetry consumer read it: decoded by msgspec
straight into compact structs, once per message (the pydantic model and its per-point models cost
about 10 us a point of the alarm consumer's 19, docs/architecture.md, "Alarm rules: speed"). The
telemetry consumer's form keeps each measurepoint value as its JSON text (`msgspec.Raw`): a
plain number is stored from its own digits, without a Decimal (issue 16).

The fast path accepts only what the schema accepts: the same fields (unknown ones refused), JSON
integers where the schema has `int`, `produced_at` checked by pydantic's own AwareDatetime, and
JSON numbers with a fraction as Decimal, as the reference decoder (`decode_body` with
exact_decimals) gives them. What msgspec refuses (a number where the schema's lax mode would
coerce it, `NaN`, a byte order mark, ...) is decided by that reference decoder, so a body is
dead-lettered by exactly the rules it was before.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

import msgspec
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from twinbill_common.consumers import decode_body
from twinbill_common.schemas import MeasurementsAccepted


class PointSet(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """One device's measurepoints at one instant (DevicePoints)."""

    product_key: str
    device_key: str
    time: int
    measurepoints: dict[str, Any]


class Measurements(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """What the alarm rules read of one MeasurementsAccepted (its other fields are checked only)."""

    product_key: str
    device_key: str
    method: str
    received_at: int
    points: list[PointSet]
    schema_version: int = 1
    message_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] = "-"
    produced_at: Any = msgspec.UNSET  # checked by pydantic's AwareDatetime when present
    request_id: str | None = None


class RawPointSet(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A PointSet whose measurepoint values are their JSON text (msgspec checked it is JSON)."""

    product_key: str
    device_key: str
    time: int
    measurepoints: dict[str, msgspec.Raw]


class RawMeasurements(Measurements, forbid_unknown_fields=True, gc=False):
    """Measurements with each measurepoint value's JSON text (the telemetry consumer's form)."""

    points: list[RawPointSet]  # type: ignore[assignment]  # the same field, values left as JSON text


_DECODER = msgspec.json.Decoder(Measurements, float_hook=Decimal)
_RAW_DECODER = msgspec.json.Decoder(RawMeasurements)
_VALUE_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_AWARE = TypeAdapter(AwareDatetime)


def decode_measurements(body: bytes) -> Measurements:
    """A MeasurementsAccepted body as Measurements, or PermanentError (twinbill_common.errors) as
    the schema words it."""
    return _decode(_DECODER, body)


def decode_telemetry(body: bytes) -> Measurements:
    """A MeasurementsAccepted body as RawMeasurements (values as JSON text: `value_of` reads one),
    or as Measurements where the reference decoder decides (values then decoded), or
    PermanentError: the same bodies accepted and refused as by `decode_measurements`."""
    return _decode(_RAW_DECODER, body)


def value_of(raw: msgspec.Raw) -> Any:
    """A measurepoint value's JSON text as the reference decoder gives it (Decimal for a number
    with a fraction or an exponent, int for an integer)."""
    return _VALUE_DECODER.decode(raw)


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Measurements:
    try:
        decoded: Measurements = decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return _reference(body)
    if decoded.produced_at is not msgspec.UNSET:
        try:
            _AWARE.validate_python(decoded.produced_at)
        except ValidationError:
            return _reference(body)  # words the error as the schema does
    return decoded


def _reference(body: bytes) -> Measurements:
    message = decode_body(MeasurementsAccepted, body, exact_decimals=True)  # PermanentError if invalid
    return from_model(message)


def from_model(message: MeasurementsAccepted) -> Measurements:
    """The compact form of a decoded MeasurementsAccepted."""
    return Measurements(
        product_key=message.product_key, device_key=message.device_key, method=message.method,
        received_at=message.received_at, schema_version=message.schema_version, message_id=message.message_id,
        produced_at=message.produced_at, request_id=message.request_id,
        points=[PointSet(p.product_key, p.device_key, p.time, p.measurepoints) for p in message.points])

