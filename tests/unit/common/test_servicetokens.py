"""Service tokens: signed, for one audience, short-lived."""

from __future__ import annotations

import time

import pytest

from twinbill_common.servicetokens import ServiceTokenError, ServiceTokens

KEY = "s" * 40


def test_a_token_names_its_issuer_and_is_for_one_audience() -> None:
    """The callee learns who calls; a token for another service is refused."""
    tokens = ServiceTokens(KEY, issuer="ingest")
    token = tokens.token("twin")
    assert ServiceTokens(KEY, issuer="twin").verify(token, audience="twin") == "ingest"
    with pytest.raises(ServiceTokenError, match="not for billing"):
        tokens.verify(token, audience="billing")


def test_another_key_or_an_expired_token_is_refused() -> None:
    """Only the platform's key signs; a token past its life is refused."""
    forged = ServiceTokens("x" * 40, issuer="ingest").token("twin")
    with pytest.raises(ServiceTokenError, match="not valid"):
        ServiceTokens(KEY, issuer="twin").verify(forged, audience="twin")
    old = ServiceTokens(KEY, issuer="ingest", ttl=60).token("twin", now=time.time() - 120)
    with pytest.raises(ServiceTokenError, match="expired"):
        ServiceTokens(KEY, issuer="twin").verify(old, audience="twin")
    with pytest.raises(ServiceTokenError, match="not valid"):
        ServiceTokens(KEY, issuer="twin").verify("not-a-jwt", audience="twin")


def test_tokens_are_reused_until_half_their_life() -> None:
    """One signature per audience per half-life, not per request."""
    tokens = ServiceTokens(KEY, issuer="billing", ttl=300)
    now = time.time()
    first = tokens.token("twin", now=now)
    assert tokens.token("twin", now=now + 100) == first
    assert tokens.token("twin", now=now + 200) != first
