"""The gateway's fast path: accept a measurepoint request in which everything is valid, without
building a Python value for each reading.

`accept_plain` decodes the request with msgspec into typed structs whose measurepoint values stay
`msgspec.Raw`, the device's own JSON text, which the bus body then carries as it came. Readings
of the usual types are checked on that text: a float/double or int reading is a plain JSON
number (no exponent, at most 200 digits each side of the point: always finite, storable and
exact), a string reading is decoded and checked as validation does; every other reading is
decoded and goes through check_point. The twin parses the raw text to the same value (and the
same Decimal digits) as the text validate_request's body would carry.

Whatever it cannot accept whole (a bad field, a point that would be rejected or dropped, an
unregistered or offline device, a shape or encoding it does not know) it answers None, and the
caller decides the request with validate_request, which says what is wrong: the fast path never
rejects, so every rejection keeps its code and its words.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

import msgspec

from twinbill_common.schemas.telemetry import DEVICE_TIME_MAX_MS, DEVICE_TIME_MIN_MS, text_problem
from twinbill_ingest.domain.codes import Rejection
from twinbill_ingest.domain.requests import Accepted, Envelope, PointSet, RegistryView, authorise
from twinbill_ingest.domain.thingmodel import INTEGER, NUMBER, TEXT, CompiledModel, check_point, compile_kinds
from twinbill_ingest.domain.topics import METHODS, Topic

UNSET = msgspec.UNSET
# All the readings of one kind in a request, joined with commas, are checked by one match.
_NUMBERS = re.compile(rb"(?:-?[0-9]{1,200}(?:\.[0-9]{1,200})?,)*")
_INTEGERS = re.compile(rb"(?:-?[0-9]{1,200},)*")


# msgspec checks these while it decodes: a value outside them is for validate_request to decide.
Key = Annotated[str, msgspec.Meta(min_length=1)]
DeviceTime = Annotated[int, msgspec.Meta(ge=DEVICE_TIME_MIN_MS, lt=DEVICE_TIME_MAX_MS)]
Readings = Annotated[dict[str, msgspec.Raw], msgspec.Meta(min_length=1)]


# None of these structs can be part of a reference cycle, so the cyclic collector skips them
# (gc=False): a request makes a hundred of them and lives a few hundred milliseconds.
class _Entry(msgspec.Struct, gc=False):
    """One device's readings at one instant; the fields are named as seed 003 spells them."""

    measurepoints: Readings
    productKey: Key | msgspec.UnsetType = UNSET
    deviceKey: Key | msgspec.UnsetType = UNSET
    time: DeviceTime | msgspec.UnsetType = UNSET


class _Batch(msgspec.Struct, gc=False):
    """A post/batch or resume/batch request."""

    method: str
    params: list[_Entry]
    id: str | int | msgspec.UnsetType = UNSET
    version: str | msgspec.UnsetType = UNSET
    allowOfflineSubDevice: bool = False
    skipInvalidMeasurepoints: bool = False


class _Single(msgspec.Struct, gc=False):
    """A post or resume request (one entry, the publisher's own)."""

    method: str
    params: _Entry
    id: str | int | msgspec.UnsetType = UNSET
    version: str | msgspec.UnsetType = UNSET
    allowOfflineSubDevice: bool = False
    skipInvalidMeasurepoints: bool = False


Compiled = tuple[CompiledModel, dict[str, int]]
# What each publisher may report for: (publisher's keys, allowOfflineSubDevice) -> device -> its
# model and compiled checks. The caller keeps it across requests and empties it whenever the
# registry or a sub-device session changes (store.RegistryCache.grants).
Grants = dict[tuple[str, str, bool], dict[tuple[str, str], Compiled]]

_BATCH = msgspec.json.Decoder(_Batch)
_SINGLE = msgspec.json.Decoder(_Single)
_TEXT = msgspec.json.Decoder(str)
_VALUE = msgspec.json.Decoder(float_hook=Decimal)  # as validate_request parses a payload
_UNDECODABLE = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


def accept_plain(topic: Topic, payload: bytes, *, registry: RegistryView, received_at: int,
                 max_bytes: int, grants: Grants | None = None) -> Accepted | None:
    """The request's points with their raw JSON values if all of it is valid, else None (then
    validate_request decides it). With `grants`, a device authorised for a publisher once is
    not looked up again (a batch names the same meters request after request)."""
    if len(payload) > max_bytes or not (payload.isascii() or _is_utf8(payload)):
        # msgspec skips the JSON of unknown fields and raw values without checking their UTF-8;
        # validate_request refuses a payload that is not UTF-8.
        return None
    batch = topic.kind.is_batch
    try:
        request: _Batch | _Single = (_BATCH if batch else _SINGLE).decode(payload)
    except (msgspec.ValidationError, *_UNDECODABLE):
        return None
    if request.method != METHODS[topic.kind]:
        return None
    entries = request.params if isinstance(request, _Batch) else [request.params]
    if not entries or registry.device(topic.product_key, topic.device_key) is None:
        return None
    own = (topic.product_key, topic.device_key)
    allow_offline = request.allowOfflineSubDevice
    scope = (topic.product_key, topic.device_key, allow_offline)
    kinds_of = grants.setdefault(scope, {}) if grants is not None else {}
    points: list[PointSet] = []
    numbers: list[msgspec.Raw] = []
    integers: list[msgspec.Raw] = []
    accepted = 0
    # The loop runs for every entry of every request: names bound once, the rest checked by msgspec.
    known = kinds_of.get
    append = points.append
    unset = UNSET
    for entry in entries:
        product_key, device_key = entry.productKey, entry.deviceKey
        if not batch or (product_key is unset and device_key is unset):
            product_key, device_key = own  # seed 003: a batch entry without keys is the gateway's own
        elif product_key is unset or device_key is unset:
            return None
        compiled = known((product_key, device_key))
        if compiled is None:
            compiled = _compiled(product_key, device_key, topic=topic,
                                 registry=registry, allow_offline=allow_offline)
            if compiled is None:
                return None
            kinds_of[(product_key, device_key)] = compiled
        model, kinds = compiled
        time = entry.time
        values = entry.measurepoints
        for identifier, raw in values.items():
            kind = kinds.get(identifier)
            if kind == NUMBER:
                numbers.append(raw)
            elif kind == INTEGER:
                integers.append(raw)
            elif not _plain_other(identifier, raw, kind=kind, model=model):
                return None
        append(PointSet(product_key, device_key, received_at if time is unset else time, values))
        accepted += len(values)
    if not _all_match(_NUMBERS, numbers) or not _all_match(_INTEGERS, integers):
        return None
    request_id = request.id if request.id is UNSET or isinstance(request.id, str) else str(request.id)
    envelope = Envelope(None if request_id is UNSET else request_id, request.method, entries,
                        allow_offline=allow_offline, skip_invalid=request.skipInvalidMeasurepoints)
    return Accepted(envelope, points, accepted)


def _compiled(product_key: str, device_key: str, *, topic: Topic, registry: RegistryView,
              allow_offline: bool) -> Compiled | None:
    """The device's model and its compiled checks, or None if validate_request would refuse it."""
    try:
        model = authorise(product_key, device_key, topic=topic, registry=registry, allow_offline=allow_offline)
    except Rejection:
        return None
    kinds = getattr(model, "kinds", None)  # thingmodel.Model; a plain mapping is compiled here
    return model, kinds if kinds is not None else compile_kinds(model)


def _all_match(pattern: re.Pattern[bytes], values: list[msgspec.Raw]) -> bool:
    if not values:
        return True
    joined = b",".join(values)
    return pattern.fullmatch(joined + b",") is not None


def _plain_other(identifier: str, raw: msgspec.Raw, *, kind: int | None, model: CompiledModel) -> bool:
    """Whether a reading that is not a plain number passes, as validate_request decides it."""
    try:
        if kind == TEXT:
            return text_problem(_TEXT.decode(raw)) is None  # a string; anything else: None
        check_point(identifier, _VALUE.decode(raw), model=model)
    except (msgspec.ValidationError, Rejection, *_UNDECODABLE):
        return False
    return True


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode()
    except UnicodeDecodeError:
        return False
    return True
