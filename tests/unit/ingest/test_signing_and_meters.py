"""Sub-device login signatures and the simulator's meters."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twinbill_ingest.domain.codes import Code, Rejection
from twinbill_ingest.domain.signing import parse_login, parse_login_batch, sign, sign_matches
from twinbill_ingest.domain.topics import Kind, Topic
from twinbill_ingest.sessions import SessionHandler
from twinbill_ingest.store import RegistryCache
from twinbill_simulator.meters import Meter, profile
from twinbill_simulator.signing import sign_sha256

PARAMS = {
    "productKey": "theSubProductKey",
    "deviceKey": "theSubDeviceKey",
    "clientId": "theSubDeviceId",
    "timestamp": "1524448722000",
}


def test_sha256_sign_is_the_documented_concatenation() -> None:
    """sorted name+value pairs, then the secret; upper-case hex."""
    content = "clientIdtheSubDeviceIddeviceKeytheSubDeviceKeyproductKeytheSubProductKeytimestamp1524448722000secret"
    assert sign(PARAMS, secret="secret", method="sha256") == hashlib.sha256(content.encode()).hexdigest().upper()
    assert sign_sha256(PARAMS, secret="secret") == sign(PARAMS, secret="secret", method="sha256")


def test_sign_leaves_out_sign_method_and_clean_session() -> None:
    """Adding sign, signMethod or cleanSession does not change the signature."""
    extra = {**PARAMS, "signMethod": "sha256", "cleanSession": "true", "sign": "x"}
    assert sign(extra, secret="s", method="sha256") == sign(PARAMS, secret="s", method="sha256")


@pytest.mark.parametrize("method", ["sha256", "hmacsha256", "hmacSha1", "hmacmd5"])
def test_each_method_verifies_and_rejects_a_wrong_secret(method: str) -> None:
    """Lower-case hex is accepted too; a wrong secret is not."""
    signature = sign(PARAMS, secret="right", method=method)
    assert sign_matches(PARAMS, secret="right", method=method, signature=signature.lower())
    assert not sign_matches(PARAMS, secret="wrong", method=method, signature=signature)


def test_unknown_sign_method_and_bad_params_are_1220() -> None:
    """A login that cannot be checked is a payload format error."""
    with pytest.raises(Rejection) as caught:
        sign(PARAMS, secret="s", method="md4")
    assert caught.value.code == Code.PAYLOAD_FORMAT
    with pytest.raises(Rejection):
        parse_login({"productKey": "p"})
    with pytest.raises(Rejection):
        parse_login_batch({"clientId": "c", "timestamp": "1", "signMethod": "sha256", "subDevices": []})


@pytest.mark.parametrize("kind", [Kind.LOGIN, Kind.LOGIN_BATCH, Kind.LOGOUT])
def test_unparsable_session_request_is_1220(kind: Kind) -> None:
    """Seed 003's 1206 is for measurepoint data; a session request that is not JSON is 1220."""
    handler = SessionHandler(RegistryCache(), None, max_bytes=1024)
    request_id, code, message, _ = handler.decide(Topic("gwprod", "gw1", kind), b'{"id": "1",', now_ms=1)
    assert (request_id, code) == (None, Code.PAYLOAD_FORMAT)
    assert message is not None and "not valid JSON" in message


def test_profile_averages_one_over_a_day() -> None:
    """The daily profile redistributes consumption without changing the daily mean."""
    mean = sum(profile(h / 4) for h in range(96)) / 96
    assert abs(mean - 1.0) < 0.01
    assert profile(19) > profile(3)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**13), st.floats(0, 86_400)), min_size=1, max_size=50),
    st.sampled_from(["water", "electricity"]),
)
def test_registers_only_grow(steps: list[tuple[int, float]], kind: str) -> None:
    """Whatever the time and interval, a register never goes down."""
    meter = Meter(kind, Decimal("100"), daily_mean=5.0)
    last = meter.register
    for at_ms, seconds in steps:
        value = meter.advance(at_ms=at_ms, seconds=seconds)
        assert value >= last
        assert value == value.quantize(meter.quantum)
        last = value
