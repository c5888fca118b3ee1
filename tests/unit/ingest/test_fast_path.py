"""The fast path of issue 16 decides and writes exactly what the reference path does: msgspec's
parse with its standard-library fallback, the compiled per-model checks against check_point,
and msgspec's bus body against the one written in Python."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.ingest.conftest import FixedRegistry
from twinbill_ingest.domain.codes import Rejection
from twinbill_ingest.domain.encoding import encode_accepted, encode_accepted_text
from twinbill_ingest.domain.requests import validate_request
from twinbill_ingest.domain.thingmodel import check_point
from twinbill_ingest.domain.topics import Kind, Topic

POST = Topic("gwprod", "gw1", Kind.POST)
EXAMPLES = settings(max_examples=800, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
# Number texts as devices write them, including the ones at the storable limits.
NUMBER_TEXTS = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["1e400", "-1.8e308", "1.7e308", "1E-400", "0e2000000000", "1" + "0" * 400, "-0.0",
                     "1.0E5", "0.0000001", "9" * 299 + ".5", "9" * 301 + ".5", "12.20", "1e308", "1e-16384"]),
)
TEXTS = st.text(max_size=6).map(json.dumps) | st.sampled_from(['"a\\u0000b"', '"\\ud800"', '"\\u00e9"'])
VALUES = NUMBER_TEXTS | TEXTS | st.sampled_from(["true", "false", "null", "[]", "[1.5]", '{"value": 1.5}'])
IDENTIFIERS = st.sampled_from(["temp", "count", "label", "on", "mode", "at", "day", "humidity"])


def reference(registry: FixedRegistry, identifier: str, text: str) -> str | None:
    """What the gateway answered before issue 16: the value parsed by the standard library with
    Decimal numbers and checked by check_point; None for accepted, else the 1204 message."""
    value = json.loads(text, parse_float=Decimal)
    try:
        check_point(identifier, value, model=registry.models["gwprod"])
    except Rejection as err:
        return err.detail
    return None


@EXAMPLES
@given(identifier=IDENTIFIERS, text=VALUES)
def test_compiled_checks_decide_as_check_point(registry: FixedRegistry, identifier: str, text: str) -> None:
    """Every value of every simple type: accepted or refused as before, with the same words."""
    payload = ('{"id": "1", "method": "thing.measurepoint.post", "params": {"measurepoints": {"'
               + identifier + '": ' + text + '}, "time": 5}}').encode()
    expected = reference(registry, identifier, text)
    try:
        accepted = validate_request(POST, payload, registry=registry, received_at=9, max_bytes=40_000)
    except Rejection as err:
        assert expected is not None, (identifier, text, err.message)
        assert err.message.endswith(f"params (gwprod/gw1): {expected}")
        return
    assert expected is None, (identifier, text, expected)
    [point] = accepted.points
    assert point.measurepoints[identifier] == json.loads(text, parse_float=Decimal)


@EXAMPLES
@given(values=st.lists(st.tuples(IDENTIFIERS, VALUES), min_size=1, max_size=6),
       request_id=st.text(max_size=8))
def test_bus_body_is_the_reference_text(registry: FixedRegistry, values: list[tuple[str, str]],
                                        request_id: str) -> None:
    """msgspec's body parses to what the Python encoder writes, number text included."""
    points = ", ".join(f'"{identifier}": {text}' for identifier, text in values)
    payload = (f'{{"id": {json.dumps(request_id)}, "method": "thing.measurepoint.post", '
               f'"skipInvalidMeasurepoints": true, "params": {{"measurepoints": {{{points}}}, "time": 5}}}}').encode()
    try:
        accepted = validate_request(POST, payload, registry=registry, received_at=9, max_bytes=40_000)
    except Rejection:
        return
    body = encode_accepted(accepted, topic=POST, message_id="m", received_at=9)
    text = encode_accepted_text(accepted, topic=POST, message_id="m", received_at=9,
                                produced="1970-01-01T00:00:00.009000+00:00")
    assert json.loads(body, parse_float=Decimal) == json.loads(text, parse_float=Decimal)
    for value in accepted.points[0].measurepoints.values():
        if isinstance(value, Decimal):
            assert f":{value}".encode() in body  # the device's digits, as a JSON number


def test_a_payload_msgspec_refuses_is_decided_by_the_standard_library(registry: FixedRegistry) -> None:
    """A lone surrogate escape and a UTF-8 byte order mark: msgspec refuses both, the standard
    library reads them, and the answer is what it always was."""
    lone = b'{"id": "1", "method": "thing.measurepoint.post", "params": {"measurepoints": {"label": "\\ud800"}}}'
    try:
        validate_request(POST, lone, registry=registry, received_at=9, max_bytes=4096)
    except Rejection as err:
        assert "lone surrogate" in err.message
    else:
        raise AssertionError("a lone surrogate was accepted")
    bom = b'\xef\xbb\xbf{"id": "1", "method": "thing.measurepoint.post", "params": {"measurepoints": {"temp": 1.5}}}'
    [point] = validate_request(POST, bom, registry=registry, received_at=9, max_bytes=4096).points
    assert point.measurepoints == {"temp": Decimal("1.5")}


def test_values_of_a_long_payload_are_checked_in_full(registry: FixedRegistry) -> None:
    """Past 16,000 bytes a number may carry more than 16,383 decimal places without an exponent
    outside +-300: such a payload checks every number with number_problem."""
    long_number = "0." + "0" * 16_390 + "1"
    payload = ('{"id": "1", "method": "thing.measurepoint.post", "params": {"measurepoints": {"temp": '
               + long_number + '}, "time": 5}}').encode()
    try:
        validate_request(POST, payload, registry=registry, received_at=9, max_bytes=40_000)
    except Rejection as err:
        assert "decimal places" in err.message
    else:
        raise AssertionError("16,391 decimal places were accepted")
