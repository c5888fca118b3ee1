"""The pure request validator: seed 003's sample, each documented code, the flags, the time."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.unit.ingest.conftest import FIXTURES, FixedRegistry
from twinbill_common.schemas import MeasurementsAccepted
from twinbill_ingest.domain.codes import Code, Rejection
from twinbill_ingest.domain.encoding import encode_accepted, encode_reply, message_id
from twinbill_ingest.domain.requests import Accepted, validate_request
from twinbill_ingest.domain.topics import Kind, Topic, parse_topic, subscriptions

SEED = (FIXTURES / "seed003_resume_batch_request.json").read_bytes()
BATCH = Topic("gwprod", "gw1", Kind.RESUME_BATCH)
POST = Topic("gwprod", "gw1", Kind.POST)


def run(registry: FixedRegistry, body: dict[str, Any] | bytes, topic: Topic = BATCH) -> Accepted:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return validate_request(topic, payload, registry=registry, received_at=999, max_bytes=4096)


def code(registry: FixedRegistry, body: dict[str, Any] | bytes, topic: Topic = BATCH) -> int:
    with pytest.raises(Rejection) as caught:
        run(registry, body, topic)
    return int(caught.value.code)


def seed(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(SEED)
    body.update(changes)
    return body


def test_seed_sample_is_accepted_with_exact_decimals(registry: FixedRegistry) -> None:
    """All three entries pass, values kept as the device wrote them."""
    accepted = run(registry, SEED)
    assert accepted.accepted == 9 and accepted.dropped == 0
    assert [p.time for p in accepted.points] == [123456, 123567, 123456]
    assert accepted.points[0].measurepoints["temp"] == Decimal("1.02")
    assert accepted.points[2].product_key == "product2"


def test_encoded_body_is_a_measurements_accepted_with_the_device_text(registry: FixedRegistry) -> None:
    """The bus body validates as MeasurementsAccepted and keeps 1.02 as a JSON number."""
    accepted = run(registry, SEED)
    body = encode_accepted(accepted, topic=BATCH, message_id="m1", received_at=999)
    decoded = json.loads(body, parse_float=Decimal)
    MeasurementsAccepted.model_validate(decoded)
    assert b'"temp":1.02,' in body and b'"branchCurr":["1.02","2.02","7.93"]' in body
    assert decoded["points"][0]["measurepoints"]["Power"] == {"value": 1, "quality": 9}


def test_message_id_is_deterministic_per_publisher_id_and_bytes() -> None:
    """Same request -> same id; another id, device or byte -> another id."""
    assert message_id(BATCH, "123", SEED) == message_id(BATCH, "123", SEED)
    assert message_id(BATCH, "124", SEED) != message_id(BATCH, "123", SEED)
    assert message_id(Topic("gwprod", "gw2", Kind.RESUME_BATCH), "123", SEED) != message_id(BATCH, "123", SEED)
    assert message_id(BATCH, "123", SEED + b" ") != message_id(BATCH, "123", SEED)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", Code.PAYLOAD_EMPTY),
        (b"   \n", Code.PAYLOAD_EMPTY),
        (b"x" * 4097, Code.TOO_LARGE),
        # Not valid JSON: seed 003's 1206 "Invalid JSON format".
        (b"{", Code.DATA_FORMAT),
        (b"\xff\xfe", Code.DATA_FORMAT),
        (b'{"id": "1", "method": "thing.measurepoint.resume.batch", "params": [}', Code.DATA_FORMAT),
        (b"[" * 4000, Code.DATA_FORMAT),  # nested too deep to parse
        (
            b'{"method": "thing.measurepoint.resume.batch", "params": [{"measurepoints": {"temp": NaN}}]}',
            Code.DATA_FORMAT,
        ),
        # Valid JSON whose envelope is not the documented request: 1220.
        (b'"text"', Code.PAYLOAD_FORMAT),
        (b"[1, 2]", Code.PAYLOAD_FORMAT),
        (b'{"id": [1], "method": "thing.measurepoint.resume.batch", "params": []}', Code.PAYLOAD_FORMAT),
        (b'{"params": []}', Code.METHOD_MISMATCH),
        (b'{"method": "thing.measurepoint.resume.batch"}', Code.PAYLOAD_FORMAT),
        (b'{"method": "thing.measurepoint.resume.batch", "params": []}', Code.DATA_FORMAT),
        (b'{"method": "thing.measurepoint.resume.batch", "params": {}}', Code.DATA_FORMAT),
        (b'{"method": "thing.measurepoint.resume.batch", "params": [3]}', Code.DATA_FORMAT),
    ],
)
def test_envelope_errors(registry: FixedRegistry, payload: bytes, expected: Code) -> None:
    """Empty, too large, not JSON, wrong method, wrong params shape: each its own code."""
    assert code(registry, payload) == expected


@pytest.mark.parametrize(
    ("identifier", "value"),
    [
        ("humidity", 1),  # unknown identifier
        ("temp", "1.02"),  # string for a float
        ("temp", True),  # bool is not a number
        ("Power", {"value": 1, "volts": 2}),  # unknown struct field
        ("Power", {"value": 1.5, "quality": 9}),  # float for an int field
        ("Power", 3),  # scalar for a struct
        ("branchCurr", ["1", 2]),  # array element of the wrong type
        ("branchCurr", "1,2"),  # not an array
    ],
)
def test_model_errors_are_1204_naming_the_point(registry: FixedRegistry, identifier: str, value: Any) -> None:
    """Each model mismatch refuses the whole request with 1204 and names the point."""
    body = seed(skipInvalidMeasurepoints=False)
    body["params"][1]["measurepoints"][identifier] = value
    with pytest.raises(Rejection) as caught:
        run(registry, body)
    assert caught.value.code == Code.MODEL_INVALID
    assert identifier in caught.value.message and "params[1]" in caught.value.message


@pytest.mark.parametrize(
    ("identifier", "value", "ok"),
    [
        ("temp", {"value": 1.5, "quality": 9}, True),  # EnOS quality form around a scalar
        ("temp", {"value": 1.5, "q": 9}, False),
        ("temp", {"quality": 9}, False),
        ("mode", 2, True),
        ("mode", 3, False),
        ("mode", True, False),
        ("on", True, True),
        ("on", 1, True),
        ("on", 2, False),
        ("at", 1700000000000, True),
        ("at", -1, False),
        ("at", 1.5, False),
        ("label", "x", True),
        ("label", 1, False),
        ("day", "2026-11-21", True),
        ("day", [], False),
        ("count", 7, True),
        ("count", 7.0, False),
        ("count", None, False),
    ],
)
def test_scalar_types(registry: FixedRegistry, identifier: str, value: Any, ok: bool) -> None:
    """Table of data types against values (the gateway's own model)."""
    body = {"id": "1", "method": "thing.measurepoint.post", "params": {"measurepoints": {identifier: value}, "time": 5}}
    if ok:
        assert run(registry, body, POST).accepted == 1
    else:
        assert code(registry, body, POST) == Code.MODEL_INVALID


def test_skip_invalid_drops_invalid_points_and_keeps_the_rest(registry: FixedRegistry) -> None:
    """skipInvalidMeasurepoints=true (the seed's setting): 1204 points are dropped."""
    body = seed()
    body["params"][0]["measurepoints"]["humidity"] = 1
    body["params"][2]["measurepoints"] = {"temp": "hot"}
    accepted = run(registry, body)
    assert accepted.dropped == 2 and accepted.accepted == 6
    assert len(accepted.points) == 2  # the third entry had nothing valid left
    assert accepted.first_dropped is not None and "humidity" in accepted.first_dropped.message


def test_skip_invalid_with_nothing_valid_left_is_1204(registry: FixedRegistry) -> None:
    """A request whose every point is invalid is refused, not silently answered 200."""
    body = seed(params=[{"productKey": "product1", "deviceKey": "device1", "measurepoints": {"nope": 1}, "time": 1}])
    assert code(registry, body) == Code.MODEL_INVALID


def test_offline_sub_devices_need_the_flag_or_a_login(registry: FixedRegistry) -> None:
    """allowOfflineSubDevice=false with an offline sub-device is 1212 for the whole request."""
    body = seed(allowOfflineSubDevice=False)
    with pytest.raises(Rejection) as caught:
        run(registry, body)
    assert caught.value.code == Code.NO_SUB_DEVICE_PERMISSION and "offline" in caught.value.message
    registry.online |= {("product1", "device1"), ("product2", "device2")}
    assert run(registry, body).accepted == 9


def test_sub_device_of_another_gateway_is_1212_even_with_skip(registry: FixedRegistry) -> None:
    """Topology is never skipped: another gateway's sub-device refuses the request."""
    body = seed()
    body["params"][1]["deviceKey"] = "device9"
    assert code(registry, body) == Code.NO_SUB_DEVICE_PERMISSION
    body["params"][1]["deviceKey"] = "unknown"
    assert code(registry, body) == Code.NO_SUB_DEVICE_PERMISSION


def test_first_error_wins(registry: FixedRegistry) -> None:
    """With several problems the first one in the request decides the code."""
    body = seed(skipInvalidMeasurepoints=False)
    body["params"][0]["measurepoints"]["temp"] = "x"  # 1204 in entry 0
    body["params"][1]["deviceKey"] = "device9"  # 1212 in entry 1
    assert code(registry, body) == Code.MODEL_INVALID


def test_missing_keys_mean_the_gateway_and_missing_time_the_receipt(registry: FixedRegistry) -> None:
    """Seed 003: without productKey/deviceKey the entry is the gateway's own; no time = receipt."""
    body = seed(params=[{"measurepoints": {"temp": 2.5}}])
    [point] = run(registry, body).points
    assert (point.product_key, point.device_key, point.time) == ("gwprod", "gw1", 999)
    body = seed(params=[{"productKey": "product1", "measurepoints": {"temp": 2.5}}])
    assert code(registry, body) == Code.DATA_FORMAT


@pytest.mark.parametrize("time", ["123", 1.5, -1, True, 4_102_444_800_000, 99999999999999999999])
def test_bad_time_is_1206(registry: FixedRegistry, time: Any) -> None:
    """time must be epoch milliseconds the twin can store (1970 up to 2100)."""
    body = seed()
    body["params"][0]["time"] = time
    assert code(registry, body) == Code.DATA_FORMAT


def test_the_last_storable_time_is_accepted(registry: FixedRegistry) -> None:
    body = seed()
    body["params"][0]["time"] = 4_102_444_799_999
    assert run(registry, body).accepted > 0


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"temp": 1e400}', "1E+400 is beyond a double's range"),
        (b'{"temp": -1.8e308}', "is beyond a double's range"),
        (b'{"count": 1' + b"0" * 400 + b"}", "is beyond a double's range"),
        (b'{"temp": 0.' + b"0" * 16383 + b"1}", "has more than 16383 decimal places"),
        (b'{"label": "a\\u0000b"}', "contains a NUL character (U+0000)"),
        (b'{"temp": {"value": 1e999, "quality": 0}}', "beyond a double's range"),
        (b'{"temp": 0e2000000000}', "has an exponent beyond a double's range"),
        (b'{"label": "a\\ud800b"}', "is not valid Unicode text (it holds a lone surrogate)"),
    ],
)
def test_values_the_twin_cannot_store_are_1204_naming_why(registry: FixedRegistry, raw: bytes, problem: str) -> None:
    """A 200 means the twin will store the point, so what it could not store is refused here."""
    payload = b'{"id": "1", "method": "thing.measurepoint.post", "params": {"measurepoints": ' + raw + b', "time": 5}}'
    with pytest.raises(Rejection) as caught:
        validate_request(POST, payload, registry=registry, received_at=999, max_bytes=40_000)
    assert caught.value.code == Code.MODEL_INVALID
    assert problem in caught.value.message


@pytest.mark.parametrize(("value", "problem"), [
    ([], "an empty array holds no value"),
    (["1"] * 32_768, "an array holds at most 32767 elements, got 32768"),
    (["1", None], "branchCurr[1]: expected string, got null"),
])
def test_arrays_hold_values(registry: FixedRegistry, value: Any, problem: str) -> None:
    body = seed(skipInvalidMeasurepoints=False)
    body["params"][1]["measurepoints"]["branchCurr"] = value
    with pytest.raises(Rejection) as caught:
        validate_request(BATCH, json.dumps(body).encode(), registry=registry, received_at=999,
                         max_bytes=400_000)
    assert caught.value.code == Code.MODEL_INVALID
    assert problem in caught.value.message


def test_method_must_match_the_topic(registry: FixedRegistry) -> None:
    """The seed's resume.batch body on the post topic is 1260, and the reply keeps its id."""
    with pytest.raises(Rejection) as caught:
        run(registry, SEED, POST)
    assert caught.value.code == Code.METHOD_MISMATCH and caught.value.request_id == "123"
    assert caught.value.points == 9


def test_unknown_publisher_is_1212(registry: FixedRegistry) -> None:
    """A topic of a device the registry does not know."""
    body = {"method": "thing.measurepoint.post", "params": {"measurepoints": {"temp": 1}}}
    assert code(registry, body, Topic("gwprod", "ghost", Kind.POST)) == Code.NO_SUB_DEVICE_PERMISSION


def test_topics_and_replies() -> None:
    """Request topics parse to kinds; replies append _reply; shared filters keep the double slash."""
    topic = parse_topic("/sys/pk/dk/thing/measurepoint/resume/batch")
    assert topic == Topic("pk", "dk", Kind.RESUME_BATCH)
    assert topic.reply == "/sys/pk/dk/thing/measurepoint/resume/batch_reply"
    assert parse_topic("/sys/pk/dk/thing/measurepoint/post_reply") is None
    assert parse_topic("/ext/session/pk/dk/combine/login/batch") == Topic("pk", "dk", Kind.LOGIN_BATCH)
    assert parse_topic("sys/pk/dk/thing/measurepoint/post") is None
    assert "$share/ingest//sys/+/+/thing/measurepoint/post/batch" in subscriptions("ingest")
    assert all(not f.endswith("#") for f in subscriptions("ingest"))


def test_a_reply_is_sent_even_for_an_id_that_is_not_valid_unicode() -> None:
    """A request id with a lone surrogate (`"\\ud800"` in the JSON) comes back as that escape."""
    reply = encode_reply("a\ud800", 1204, message="x")
    assert json.loads(reply)["id"] == "a\ud800"


def test_reply_shape() -> None:
    """{"id", "code", "data"} and a message on errors."""
    assert json.loads(encode_reply("123", 200)) == {"id": "123", "code": 200, "data": {}}
    assert json.loads(encode_reply(None, 1220, message="payload format error: x")) == {
        "id": None,
        "code": 1220,
        "data": {},
        "message": "payload format error: x",
    }
