"""Property-based bad input for the pure validator: thousands of malformed payloads, each either
accepted (when it happens to be valid) or refused with one of the documented codes, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.ingest.conftest import FIXTURES, FixedRegistry
from twinbill_ingest.domain.codes import Code, Rejection
from twinbill_ingest.domain.encoding import encode_accepted
from twinbill_ingest.domain.requests import validate_request
from twinbill_ingest.domain.topics import Kind, Topic
from twinbill_twin.domain.samples import check_time, sample_values

DOCUMENTED = {
    Code.MODEL_INVALID,
    Code.DATA_FORMAT,
    Code.NO_SUB_DEVICE_PERMISSION,
    Code.PAYLOAD_FORMAT,
    Code.PAYLOAD_EMPTY,
    Code.METHOD_MISMATCH,
    Code.TOO_LARGE,
}
SEED: dict[str, Any] = json.loads((FIXTURES / "seed003_resume_batch_request.json").read_text())
TOPICS = st.sampled_from(
    [Topic("gwprod", "gw1", kind) for kind in (Kind.POST, Kind.POST_BATCH, Kind.RESUME, Kind.RESUME_BATCH)]
)
# The registry fixture is only read, so sharing it between examples is safe.
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from([4_102_444_800_000, 10**400, "\x00", []]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


def syntax_code(payload: bytes, max_bytes: int) -> Code | None:
    """The code a payload must get before its content is looked at, or None if it parses as an
    object: 1251 empty, 1008 too large, 1206 not valid JSON (seed 003: "Invalid JSON format"),
    1220 valid JSON that is not an object."""
    if not payload.strip():
        return Code.PAYLOAD_EMPTY
    if len(payload) > max_bytes:
        return Code.TOO_LARGE
    try:
        body = json.loads(payload, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return Code.DATA_FORMAT
    return None if isinstance(body, dict) else Code.PAYLOAD_FORMAT


def _refuse(name: str) -> None:
    raise ValueError(name)


def check(topic: Topic, payload: bytes, registry: FixedRegistry) -> None:
    """The validator's whole contract for any input."""
    expected = syntax_code(payload, 8192)
    try:
        accepted = validate_request(topic, payload, registry=registry, received_at=1, max_bytes=8192)
    except Rejection as err:
        assert err.code in DOCUMENTED
        assert err.message.strip()
        if expected is not None:
            assert err.code == expected, (payload, err.message)
        return
    assert expected is None, payload
    assert accepted.accepted > 0
    for points in accepted.points:  # a 200 promises storage: the twin must be able to store it
        check_time(points.time, where="time")
        for identifier, value in points.measurepoints.items():
            sample_values(value, where=identifier)
    body = encode_accepted(accepted, topic=topic, message_id="m", received_at=1)
    json.loads(body)  # what is published is always valid JSON


@FUZZ
@given(topic=TOPICS, payload=st.binary(max_size=300))
def test_random_bytes(registry: FixedRegistry, topic: Topic, payload: bytes) -> None:
    """Arbitrary bytes."""
    check(topic, payload, registry)


@settings(FUZZ, max_examples=600)  # generating nested JSON is the slow part
@given(topic=TOPICS, body=json_values)
def test_random_json(registry: FixedRegistry, topic: Topic, body: Any) -> None:
    """Arbitrary JSON documents."""
    check(topic, json.dumps(body).encode(), registry)


def _mutate(body: Any, path: list[int], replacement: Any) -> Any:
    """Replace one node of the seed request chosen by `path`."""
    if not path or not isinstance(body, dict | list) or not body:
        return replacement
    keys = list(body.keys()) if isinstance(body, dict) else list(range(len(body)))
    key = keys[path[0] % len(keys)]
    copy = dict(body) if isinstance(body, dict) else list(body)
    copy[key] = _mutate(copy[key], path[1:], replacement)
    return copy


@FUZZ
@given(
    topic=TOPICS,
    path=st.lists(st.integers(0, 20), max_size=5),
    replacement=json_values,
    allow=st.booleans(),
    skip=st.booleans(),
)
def test_mutated_seed_requests(
    registry: FixedRegistry, topic: Topic, path: list[int], replacement: Any, allow: bool, skip: bool
) -> None:
    """The seed request with one node replaced by anything, under every flag combination."""
    body = _mutate({**SEED, "allowOfflineSubDevice": allow, "skipInvalidMeasurepoints": skip}, path, replacement)
    check(topic, json.dumps(body).encode(), registry)


@FUZZ
@given(topic=TOPICS, cut=st.integers(0, 2000))
def test_truncated_seed_requests(registry: FixedRegistry, topic: Topic, cut: int) -> None:
    """The seed request cut short anywhere."""
    raw = (FIXTURES / "seed003_resume_batch_request.json").read_bytes()
    check(topic, raw[: cut % (len(raw) + 1)], registry)
