"""The gateway's fast path (domain.fastpath.accept_plain) takes only requests validate_request
accepts whole, and its bus body carries the same values: the device hears the same code and words
whichever path decided, and the twin stores the same numbers."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.ingest.conftest import FixedRegistry
from tests.unit.ingest.test_fast_path import IDENTIFIERS, VALUES
from twinbill_common.schemas import DeviceRecord, ProductModel
from twinbill_ingest.domain.codes import Rejection
from twinbill_ingest.domain.encoding import encode_accepted, encode_accepted_text
from twinbill_ingest.domain.fastpath import accept_plain
from twinbill_ingest.domain.requests import Accepted, validate_request
from twinbill_ingest.domain.topics import Kind, Topic
from twinbill_ingest.store import RegistryCache, StaticRegistrySource

BATCH = Topic("gwprod", "gw1", Kind.POST_BATCH)
POST = Topic("gwprod", "gw1", Kind.POST)
EXAMPLES = settings(max_examples=600, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
MISSING = object()  # a field left out of the JSON


def body_of(accepted: Accepted, topic: Topic) -> Any:
    """The bus body as the twin parses it (Decimal numbers)."""
    return json.loads(encode_accepted(accepted, topic=topic, message_id="m", received_at=9), parse_float=Decimal)


def decide_both(topic: Topic, payload: bytes, registry: FixedRegistry, max_bytes: int = 40_000) -> Accepted | None:
    """Run both paths; fail unless the fast one took nothing the reference refuses and carries
    what the reference would publish. The fast path's answer (None: not taken)."""
    fast = accept_plain(topic, payload, registry=registry, received_at=9, max_bytes=max_bytes)
    try:
        reference = validate_request(topic, payload, registry=registry, received_at=9, max_bytes=max_bytes)
    except Rejection as err:
        assert fast is None, (payload, err.code, err.message)
        return None
    if fast is None:
        return None
    assert reference.dropped == 0, payload  # something dropped is for the reference path alone
    assert (fast.accepted, fast.dropped) == (reference.accepted, reference.dropped)
    assert (fast.envelope.request_id, fast.envelope.method) == (reference.envelope.request_id,
                                                               reference.envelope.method)
    assert body_of(fast, topic) == body_of(reference, topic), payload
    return fast


def json_field(name: str, value: Any) -> str:
    return "" if value is MISSING else f'"{name}": {value}, '


# Each field of a generated batch: mostly one of its valid forms, else something odd.
VALID_KEYS = st.sampled_from([(MISSING, MISSING), ('"product1"', '"device1"'), ('"product2"', '"device2"'),
                              ('"gwprod"', '"gw1"')])
ODD_KEYS = st.sampled_from([('"product1"', '"device9"'), ('"product1"', MISSING), ('""', '"device1"'),
                            ("null", "null"), ("5", '"device1"'), ('"nope"', '"device1"')])
VALID_TIMES = st.sampled_from([MISSING, "5", "0", "4102444799999"])
ODD_TIMES = st.sampled_from(["-1", "null", "1.0", "true", '"5"', "4102444800000", "1e3"])
TIMES = VALID_TIMES | ODD_TIMES
VALID_IDS = st.sampled_from([MISSING, '"1"', "17", '"\\u00e9"'])
ODD_IDS = st.sampled_from(["true", "null", "1.5", '"\\ud800"', "[]"])
ODD_METHODS = st.sampled_from(['"thing.measurepoint.post"', "null", MISSING])
VALID_FLAGS = st.sampled_from([MISSING, "true", "false"])
ODD_FLAGS = st.sampled_from(["1", "null"])
ODD_EXTRA = st.sampled_from(['"x"', "1e999", "[[[]]]", '"\\u0000"', '{"a": [1, 2.5]}'])
VALID_READINGS = st.tuples(st.just("temp"), st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str)
                           | st.integers(-(10**6), 10**6).map(str))
ODD_READINGS = st.tuples(IDENTIFIERS | st.sampled_from(["Power", "branchCurr"]), VALUES)


def mostly(draw: st.DrawFn, valid: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    """A valid form nine times in ten, so that whole requests are valid often enough."""
    return draw(valid) if draw(st.integers(0, 9)) else draw(odd)


@st.composite
def batch_payloads(draw: st.DrawFn) -> bytes:
    """post/batch requests near the valid shape: each field valid, odd or missing."""
    entries = []
    for _ in range(draw(st.integers(0, 3))):
        product_key, device_key = mostly(draw, VALID_KEYS, ODD_KEYS)
        count = mostly(draw, st.integers(1, 3), st.just(0))
        points = [mostly(draw, VALID_READINGS, ODD_READINGS) for _ in range(count)]
        readings = "{" + ", ".join(f'"{identifier}": {text}' for identifier, text in points) + "}"
        entries.append("{" + json_field("productKey", product_key) + json_field("deviceKey", device_key)
                       + json_field("time", mostly(draw, VALID_TIMES, ODD_TIMES))
                       + json_field("extra", mostly(draw, st.just(MISSING), ODD_EXTRA))
                       + f'"measurepoints": {readings}}}')
    params = mostly(draw, st.just("[" + ", ".join(entries) + "]"), st.sampled_from([MISSING, "{}", "[1]"]))
    fields = (json_field("id", mostly(draw, VALID_IDS, ODD_IDS))
              + json_field("version", mostly(draw, st.sampled_from([MISSING, '"1.0"']), st.just("1")))
              + json_field("method", mostly(draw, st.just('"thing.measurepoint.post.batch"'), ODD_METHODS))
              + json_field("allowOfflineSubDevice", mostly(draw, VALID_FLAGS, ODD_FLAGS))
              + json_field("skipInvalidMeasurepoints", mostly(draw, VALID_FLAGS, ODD_FLAGS))
              + json_field("extra", mostly(draw, st.just(MISSING), ODD_EXTRA))
              + json_field("params", params))
    return ("{" + fields.rstrip(", ") + "}").encode()


@EXAMPLES
@given(payload=batch_payloads(), online=st.booleans())
def test_fast_path_takes_only_what_validation_accepts(registry: FixedRegistry, payload: bytes,
                                                      online: bool) -> None:
    """Any batch near the valid shape: refused by validate_request -> not taken by the fast path
    (so its code and words are validate_request's); taken -> the same points on the bus."""
    if online:
        registry.online |= {("product1", "device1"), ("product2", "device2")}
    decide_both(BATCH, payload, registry)


@EXAMPLES
@given(identifier=IDENTIFIERS, text=VALUES, time=TIMES)
def test_fast_path_single_post_values(registry: FixedRegistry, identifier: str, text: str, time: Any) -> None:
    """A post (one entry, the publisher's own) with any value of any type: as validate_request."""
    payload = ('{"id": "1", "method": "thing.measurepoint.post", "params": {' + json_field("time", time)
               + '"measurepoints": {"' + identifier + '": ' + text + "}}}").encode()
    decide_both(POST, payload, registry)


def test_the_usual_requests_take_the_fast_path(registry: FixedRegistry) -> None:
    """Meter readings of the simulator's shape, ints and strings included, are taken whole and
    the bus carries each reading's text as the device wrote it."""
    registry.online |= {("product1", "device1"), ("product2", "device2")}
    readings = '{"temp": 12.250, "count": -7, "label": "caf\\u00e9 \\"1\\"", "on": true, "mode": 2}'
    payload = ('{"id": "42", "version": "1.0", "method": "thing.measurepoint.post.batch", "params": ['
               '{"productKey": "product1", "deviceKey": "device1", "measurepoints": {"temp": 1.50}, "time": 5},'
               '{"productKey": "product2", "deviceKey": "device2", "measurepoints": {"temp": 0.0000001}},'
               f'{{"measurepoints": {readings}, "time": 6}}]}}').encode()
    fast = decide_both(BATCH, payload, registry)
    assert fast is not None
    body = encode_accepted(fast, topic=BATCH, message_id="m", received_at=9).decode()
    assert '"measurepoints":{"temp":1.50}' in body and '"temp":0.0000001' in body
    assert [(p.product_key, p.device_key, p.time) for p in fast.points] == [
        ("product1", "device1", 5), ("product2", "device2", 9), ("gwprod", "gw1", 6)]
    text = encode_accepted_text(fast, topic=BATCH, message_id="m", received_at=9,
                                produced="1970-01-01T00:00:00.009000+00:00")
    assert json.loads(text, parse_float=Decimal) == body_of(fast, BATCH)


def test_not_utf8_is_left_to_validation(registry: FixedRegistry) -> None:
    """msgspec skips unknown fields without checking their UTF-8: such a payload is still 1206."""
    payload = b'{"id": "1", "x": "\xff", "method": "thing.measurepoint.post", "params": {"measurepoints": {"temp": 1}}}'
    assert accept_plain(POST, payload, registry=registry, received_at=9, max_bytes=40_000) is None
    assert decide_both(POST, payload, registry) is None


def test_a_logout_ends_what_the_grants_remember() -> None:
    """A sub-device authorised once is remembered for its gateway only until a session or the
    registry changes: after its logout the next batch is for validate_request (1212)."""
    product = ProductModel.model_validate({"product_key": "meter", "name": "meter", "measurepoints": [
        {"identifier": "total", "name": "total", "data_type": {"type": "double"}}]})
    devices = [DeviceRecord.model_validate(d) for d in (
        {"id": 1, "product_key": "meter", "device_key": "gw", "name": "gw", "project_id": 1},
        {"id": 2, "product_key": "meter", "device_key": "m1", "name": "m1", "project_id": 1,
         "gateway_product_key": "meter", "gateway_device_key": "gw"})]
    cache = RegistryCache()
    asyncio.run(cache.load(StaticRegistrySource([product], devices)))
    cache.set_online(("meter", "m1"), gateway=("meter", "gw"))
    topic = Topic("meter", "gw", Kind.POST_BATCH)
    payload = (b'{"method": "thing.measurepoint.post.batch", "params": [{"productKey": "meter", "deviceKey": "m1",'
               b' "measurepoints": {"total": 3.5}}]}')

    def fast() -> Accepted | None:
        return accept_plain(topic, payload, registry=cache, received_at=9, max_bytes=40_000, grants=cache.grants)

    assert fast() is not None and fast() is not None
    cache.set_offline(("meter", "m1"))
    assert fast() is None
    cache.set_online(("meter", "m1"), gateway=("meter", "gw"))
    assert fast() is not None

