"""Parse and validate one measurepoint request: envelope, topology, online state, thing model.

`validate_request` is the whole decision for a request, pure and synchronous: given the topic,
the raw payload, a view of the registry and the time of receipt, it returns the points to
publish or raises `Rejection` with the first EnOS code that applies (seed 003: "the first return
code that occurs will be returned").

Cost: this runs for every point the platform takes in, so the usual shapes are decided inline.
The payload is parsed by msgspec (about 3x faster than the standard library with the same
Decimal numbers); whatever msgspec refuses is parsed again by the standard library, so a payload
that is not valid JSON gets exactly the reply it always got. Each thing model's identifiers
carry a compiled fast check (thingmodel.Model.kinds); anything unusual goes through check_point,
which says what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn, Protocol

import msgspec

from twinbill_common.schemas.telemetry import DEVICE_TIME_MAX_MS, DEVICE_TIME_MIN_MS, text_problem, time_problem
from twinbill_ingest.domain.codes import Code, Rejection
from twinbill_ingest.domain.thingmodel import (
    INT_LIMIT,
    INTEGER,
    NUMBER,
    TEXT,
    CompiledModel,
    check_point,
    compile_kinds,
)
from twinbill_ingest.domain.topics import METHODS, Topic

# JSON numbers with a fraction or an exponent become Decimal: the device's digits are kept.
_DECODER = msgspec.json.Decoder(float_hook=Decimal)
# A Decimal parsed from a payload shorter than this has fewer digits, so when its adjusted
# exponent is within +-300 it is a finite double with fewer than 16,383 decimal places
# (twinbill_common.schemas.telemetry.number_problem); longer payloads check every number in full.
_PLAIN_PAYLOAD_BYTES = 16_000
_PLAIN_ADJUSTED = 300


class DeviceInfo(Protocol):
    """What validation needs to know of a registered device."""

    @property
    def product_key(self) -> str: ...
    @property
    def gateway_product_key(self) -> str | None: ...
    @property
    def gateway_device_key(self) -> str | None: ...


class RegistryView(Protocol):
    """The registry as validation sees it (the gateway's cache implements it)."""

    def device(self, product_key: str, device_key: str) -> DeviceInfo | None: ...
    def model(self, product_key: str) -> CompiledModel | None: ...
    def is_online(self, product_key: str, device_key: str) -> bool: ...


@dataclass
class Envelope:
    """The common request fields once their shapes are checked."""

    request_id: str | None
    method: str
    params: Any
    allow_offline: bool = False
    skip_invalid: bool = False


class PointSet(msgspec.Struct, gc=False):
    """The accepted measurepoints of one device at one instant (a msgspec Struct: the bus body
    encodes it as it is, twinbill_common.schemas.telemetry.DevicePoints). Not tracked by the
    cyclic garbage collector: it holds no object that could refer back to it."""

    product_key: str
    device_key: str
    time: int
    measurepoints: dict[str, Any]


@dataclass
class Accepted:
    """A request that passed: what to publish, and how many points were dropped as invalid."""

    envelope: Envelope
    points: list[PointSet]
    accepted: int
    dropped: int = 0
    first_dropped: Rejection | None = field(default=None)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def decode_payload(payload: bytes, *, max_bytes: int, unparsable: Code = Code.DATA_FORMAT) -> dict[str, Any]:
    """The payload as a JSON object with exact decimals, or Rejection 1251 (empty) / 1008 (too
    large) / `unparsable` (not valid JSON: seed 003's 1206 "Invalid JSON format" for measurepoint
    requests; the session topics pass 1220) / 1220 (valid JSON but not an object)."""
    if not payload or not payload.strip():
        raise Rejection(Code.PAYLOAD_EMPTY, "the payload has no content")
    if len(payload) > max_bytes:
        raise Rejection(Code.TOO_LARGE, f"{len(payload)} bytes, the limit is {max_bytes}")
    try:
        body = _DECODER.decode(payload)
    except (msgspec.DecodeError, RecursionError):
        # The standard library decides (and words) what msgspec refused: text it reads that
        # msgspec does not (a lone surrogate escape, UTF-16, a byte order mark) stays accepted,
        # and the reply to a broken payload keeps its message.
        try:
            body = json.loads(payload, parse_float=Decimal, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise Rejection(unparsable, f"not valid JSON: {err}") from None
    if not isinstance(body, dict):
        raise Rejection(Code.PAYLOAD_FORMAT, f"the payload is a JSON {type(body).__name__}, not an object")
    return body


def request_id_of(body: dict[str, Any]) -> str | None:
    """The request id as the reply echoes it (a string), or None if absent or not a scalar."""
    value = body.get("id")
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def parse_envelope(body: dict[str, Any], *, topic: Topic) -> Envelope:
    """Check id, version, method and the flags; 1220 for a bad field, 1260 for a wrong method."""
    if "id" in body and request_id_of(body) is None:
        raise Rejection(Code.PAYLOAD_FORMAT, "id must be a string or an integer")
    if "version" in body and not isinstance(body["version"], str):
        raise Rejection(Code.PAYLOAD_FORMAT, 'version must be a string such as "1.0"')
    expected = METHODS[topic.kind]
    method = body.get("method")
    if method != expected:
        got = "no method" if method is None else f"method {method!r}"
        raise Rejection(Code.METHOD_MISMATCH, f"{got} on topic {topic.request}, expected {expected!r}")
    flags = {}
    for name in ("allowOfflineSubDevice", "skipInvalidMeasurepoints"):
        value = body.get(name, False)
        if not isinstance(value, bool):
            raise Rejection(Code.PAYLOAD_FORMAT, f"{name} must be true or false")
        flags[name] = value
    if "params" not in body:
        raise Rejection(Code.PAYLOAD_FORMAT, "params is missing")
    return Envelope(
        request_id_of(body),
        expected,
        body["params"],
        allow_offline=flags["allowOfflineSubDevice"],
        skip_invalid=flags["skipInvalidMeasurepoints"],
    )


def validate_request(
    topic: Topic, payload: bytes, *, registry: RegistryView, received_at: int, max_bytes: int
) -> Accepted:
    """Decide one measurepoint request: the points to publish, or Rejection with the first code."""
    body = decode_payload(payload, max_bytes=max_bytes)
    try:
        return _validate_body(body, topic=topic, registry=registry, received_at=received_at,
                              plain=len(payload) < _PLAIN_PAYLOAD_BYTES)
    except Rejection as err:
        err.request_id = request_id_of(body)
        err.points = count_points(body.get("params"))
        raise


def count_points(params: Any) -> int:
    """How many measurepoint values a request's params carry (0 where the shape is wrong)."""
    entries = params if isinstance(params, list) else [params]
    total = 0
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("measurepoints"), dict):
            total += len(entry["measurepoints"])
    return total


def _validate_body(
    body: dict[str, Any], *, topic: Topic, registry: RegistryView, received_at: int, plain: bool
) -> Accepted:
    envelope = parse_envelope(body, topic=topic)
    entries = _entries(envelope.params, topic=topic)
    publisher = registry.device(topic.product_key, topic.device_key)
    if publisher is None:
        raise Rejection(
            Code.NO_SUB_DEVICE_PERMISSION, f"device {topic.product_key}/{topic.device_key} is not registered"
        )
    accepted = Accepted(envelope, [], 0)
    batch = topic.kind.is_batch
    # A batch names the same devices many times: each is authorised once, with its model and
    # the model's compiled checks.
    models: dict[tuple[str, str], tuple[CompiledModel, dict[str, int]]] = {}
    own = (topic.product_key, topic.device_key)
    skip_invalid = envelope.skip_invalid
    for index, entry in enumerate(entries):
        # The common shapes are checked inline (this loop runs for every point of every request);
        # anything unusual goes through the helpers, which name the entry in their error.
        product_key, device_key = entry.get("productKey"), entry.get("deviceKey")
        if not batch:
            product_key, device_key = own
        elif type(product_key) is not str or type(device_key) is not str or not product_key or not device_key:
            product_key, device_key = _entry_device(entry, topic=topic, where=_where(index, batch))
        compiled = models.get((product_key, device_key))
        if compiled is None:
            model = authorise(
                product_key, device_key, topic=topic, registry=registry, allow_offline=envelope.allow_offline
            )
            kinds = getattr(model, "kinds", None)  # thingmodel.Model; a plain mapping is compiled here
            compiled = models[(product_key, device_key)] = (model, kinds if kinds is not None else compile_kinds(model))
        model, kinds = compiled
        time = entry.get("time")
        if type(time) is not int or not DEVICE_TIME_MIN_MS <= time < DEVICE_TIME_MAX_MS:
            time = _entry_time(entry, where=_where(index, batch), received_at=received_at)
        points = entry.get("measurepoints")
        if type(points) is not dict or not points:
            points = _entry_points(entry, where=_where(index, batch))
        dropped: list[str] | None = None
        for identifier, value in points.items():
            # The compiled fast checks pass exactly what check_point passes for these types.
            kind = kinds.get(identifier)
            value_type = type(value)
            if kind == NUMBER:
                if value_type is Decimal:
                    if plain and -_PLAIN_ADJUSTED < value.adjusted() < _PLAIN_ADJUSTED:
                        continue
                elif value_type is int and -INT_LIMIT < value < INT_LIMIT:
                    continue
            elif kind == INTEGER:
                if value_type is int and -INT_LIMIT < value < INT_LIMIT:
                    continue
            elif kind == TEXT and value_type is str and text_problem(value) is None:
                continue
            try:
                check_point(identifier, value, model=model)
            except Rejection as err:
                located = Rejection(err.code, f"{_where(index, batch)} ({product_key}/{device_key}): {err.detail}")
                if not skip_invalid:
                    raise located from None
                accepted.dropped += 1
                accepted.first_dropped = accepted.first_dropped or located
                dropped = [*(dropped or ()), identifier]
        kept = points if dropped is None else {key: value for key, value in points.items() if key not in dropped}
        if kept:
            accepted.points.append(PointSet(product_key, device_key, time, kept))
            accepted.accepted += len(kept)
    if not accepted.points and accepted.first_dropped is not None:
        raise accepted.first_dropped  # nothing valid left: the device must hear why
    return accepted


def _where(index: int, batch: bool) -> str:
    return f"params[{index}]" if batch else "params"


def _entries(params: Any, *, topic: Topic) -> list[dict[str, Any]]:
    if topic.kind.is_batch:
        if not isinstance(params, list) or not params:
            raise Rejection(Code.DATA_FORMAT, "params must be a non-empty array of device entries")
        for index, entry in enumerate(params):
            if not isinstance(entry, dict):
                raise Rejection(Code.DATA_FORMAT, f"params[{index}] must be an object")
        return params
    if not isinstance(params, dict):
        raise Rejection(Code.DATA_FORMAT, "params must be an object with measurepoints and time")
    return [params]


def _entry_device(entry: dict[str, Any], *, topic: Topic, where: str) -> tuple[str, str]:
    if not topic.kind.is_batch:
        return topic.product_key, topic.device_key
    product_key = entry.get("productKey")
    device_key = entry.get("deviceKey")
    if product_key is None and device_key is None:
        return topic.product_key, topic.device_key  # seed 003: the gateway's own keys
    if not isinstance(product_key, str) or not isinstance(device_key, str) or not product_key or not device_key:
        raise Rejection(Code.DATA_FORMAT, f"{where}: productKey and deviceKey must both be non-empty strings")
    return product_key, device_key


def authorise(
    product_key: str, device_key: str, *, topic: Topic, registry: RegistryView, allow_offline: bool
) -> CompiledModel:
    """The device's thing model, or 1212 if the publisher may not report for it."""
    device = registry.device(product_key, device_key)
    if device is None:
        raise Rejection(Code.NO_SUB_DEVICE_PERMISSION, f"device {product_key}/{device_key} is not registered")
    own = (product_key, device_key) == (topic.product_key, topic.device_key)
    if not own:
        gateway = (device.gateway_product_key, device.gateway_device_key)
        if gateway != (topic.product_key, topic.device_key):
            raise Rejection(
                Code.NO_SUB_DEVICE_PERMISSION,
                f"{product_key}/{device_key} is not a sub-device of gateway {topic.product_key}/{topic.device_key}",
            )
        if not allow_offline and not registry.is_online(product_key, device_key):
            raise Rejection(
                Code.NO_SUB_DEVICE_PERMISSION,
                f"sub-device {product_key}/{device_key} is offline (log it in first, or set allowOfflineSubDevice)",
            )
    model = registry.model(device.product_key)
    if model is None:
        raise Rejection(Code.MODEL_INVALID, f"product {device.product_key} has no thing model")
    return model


def _entry_time(entry: dict[str, Any], *, where: str, received_at: int) -> int:
    time = entry.get("time")
    if time is None:
        return received_at  # a missing time is the time of receipt
    if isinstance(time, bool) or not isinstance(time, int) or time < 0:
        raise Rejection(Code.DATA_FORMAT, f"{where}.time must be epoch milliseconds (a non-negative integer)")
    problem = time_problem(time)
    if problem is not None:
        raise Rejection(Code.DATA_FORMAT, f"{where}.{problem}")
    return time


def _entry_points(entry: dict[str, Any], *, where: str) -> dict[str, Any]:
    points = entry.get("measurepoints")
    if not isinstance(points, dict):
        got = "missing" if points is None else f"a {type(points).__name__}"
        raise Rejection(Code.DATA_FORMAT, f"{where}.measurepoints must be an object, it is {got}")
    if not points:
        raise Rejection(Code.DATA_FORMAT, f"{where}.measurepoints is empty")
    return points
