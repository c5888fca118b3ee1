"""Sign-out: POST /api/v1/auth/token/revoke refuses every token of that sign-in session, and only
of that one; what it answers for tokens it cannot revoke."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.gateway.test_gateway import ADMIN, Client, login, start_gateway
from twinbill_gateway.domain.credentials import issue_token
from twinbill_gateway.keys import SETTINGS


@pytest.fixture
async def gateway(pg_dsn: str) -> AsyncIterator[Client]:
    """The gateway alone: its own token routes ask no other service."""
    client = await start_gateway(pg_dsn, "http://127.0.0.1:9")
    yield client
    await client.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_revoking_signs_the_session_out_and_no_other(gateway: Client) -> None:
    """After revoke: the session's access token, its refresh token and a token refreshed from it
    are 401; a second sign-in of the same user still works."""
    session = await login(gateway, *ADMIN)
    other = await login(gateway, *ADMIN)
    refreshed = await (await gateway.post("/api/v1/auth/token/refresh",
                                          headers=bearer(session["refresh_token"]))).json()
    assert (await gateway.get("/api/v1/users/me", headers=bearer(refreshed["access_token"]))).status == 200

    response = await gateway.post("/api/v1/auth/token/revoke", headers=bearer(session["refresh_token"]))
    assert response.status == 204

    for token in (session["access_token"], refreshed["access_token"]):
        response = await gateway.get("/api/v1/users/me", headers=bearer(token))
        assert response.status == 401
        assert "signed out" in (await response.json())["message"]
    for token in (session["refresh_token"], refreshed["refresh_token"]):
        assert (await gateway.post("/api/v1/auth/token/refresh", headers=bearer(token))).status == 401
    assert (await gateway.get("/api/v1/users/me", headers=bearer(other["access_token"]))).status == 200
    # revoking twice is harmless; an access token revokes its session too
    assert (await gateway.post("/api/v1/auth/token/revoke", headers=bearer(other["access_token"]))).status == 204
    assert (await gateway.get("/api/v1/users/me", headers=bearer(other["access_token"]))).status == 401


async def test_revoke_needs_a_valid_bearer_token_with_a_session(gateway: Client) -> None:
    """No token, a bad one: 401. A token from before sessions existed (no `sid`): 400 saying so."""
    assert (await gateway.post("/api/v1/auth/token/revoke")).status == 401
    assert (await gateway.post("/api/v1/auth/token/revoke", headers=bearer("not-a-token"))).status == 401
    me = await (await gateway.get("/api/v1/users/me", headers=bearer(
        (await login(gateway, *ADMIN))["access_token"]))).json()
    assert gateway.app is not None
    secret = gateway.app[SETTINGS].jwt_secret.get_secret_value()
    legacy = issue_token(me["id"], kind="access", now=datetime.now(UTC), ttl=timedelta(minutes=5), secret=secret)
    response = await gateway.post("/api/v1/auth/token/revoke", headers=bearer(legacy))
    assert response.status == 400 and "no session" in (await response.json())["message"]
