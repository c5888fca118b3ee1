"""Sign-in hardening on the real gateway and PostgreSQL: lockout per account and per address,
scrypt at N = 2^17 with old hashes upgraded at sign-in, seed 000's logout, refresh refused for a
signed-out or deactivated user."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from tests.integration.gateway.test_gateway import ADMIN, basic
from twinbill_gateway.app import create_app
from twinbill_gateway.domain.credentials import SCRYPT_N, hash_password, verify_password
from twinbill_gateway.keys import STORE
from twinbill_gateway.settings import GatewaySettings

Client = TestClient[Any, Any]


async def start(pg_dsn: str, **overrides: Any) -> Client:
    settings = GatewaySettings(pg_dsn=SecretStr(pg_dsn), schema_name=f"identity_{uuid.uuid4().hex[:8]}",
                               admin_email=ADMIN[0], admin_password=SecretStr(ADMIN[1]),
                               twin_url="http://127.0.0.1:9", scheduler_url="http://127.0.0.1:9",
                               billing_url="http://127.0.0.1:9", **overrides)
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


@pytest.fixture
async def gateway(pg_dsn: str) -> AsyncIterator[Client]:
    """Three failures lock an account, five an address, for two seconds; one proxy in front."""
    client = await start(pg_dsn, login_account_failures=3, login_address_failures=5,
                         login_lockout_seconds=2, forwarded_hops=1)
    yield client
    await client.close()


async def token_request(client: Client, email: str, password: str, address: str = "198.51.100.1") -> Any:
    return await client.post("/api/v1/auth/token", json={"email": email, "password": password},
                             headers={"X-Forwarded-For": address})


async def test_an_account_is_locked_after_its_failures_even_for_the_right_password(gateway: Client) -> None:
    """Three wrong passwords: the fourth attempt, right or wrong, from any address and by HTTP
    basic too, is 429 with Retry-After; the lock lifts after its time."""
    for n in range(3):
        response = await token_request(gateway, ADMIN[0], f"wrong-{n}", address=f"198.51.100.{n + 10}")
        assert await response.json() == {"status": "failure"}
    response = await token_request(gateway, ADMIN[0].upper(), ADMIN[1], address="203.0.113.7")
    assert response.status == 429
    body = await response.json()
    assert body["code"] == 429 and body["status"] == "Too Many Requests"
    assert "too many failed sign-ins for this account" in body["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 2
    response = await gateway.get("/api/v1/users/me", headers={**basic(*ADMIN), "X-Forwarded-For": "203.0.113.8"})
    assert response.status == 429 and "Retry-After" in response.headers
    response = await gateway.get("/bemserver/users/", headers={**basic(*ADMIN), "X-Forwarded-For": "203.0.113.9"})
    assert response.status == 429 and (await response.json())["code"] == 429

    deadline = time.monotonic() + 10
    while (response := await token_request(gateway, *ADMIN)).status == 429:
        assert time.monotonic() < deadline, "the lock did not lift"
        await asyncio.sleep(0.2)
    assert "access_token" in await response.json()


async def test_an_address_is_locked_after_its_failures_across_accounts(gateway: Client) -> None:
    """Five failures from one address over different (even unknown) accounts lock the address;
    another address still signs in."""
    for n in range(5):
        response = await token_request(gateway, f"nobody{n}@example.test", "pw", address="192.0.2.50")
        assert await response.json() == {"status": "failure"}
    response = await token_request(gateway, *ADMIN, address="192.0.2.50")
    assert response.status == 429 and "this address" in (await response.json())["message"]
    response = await token_request(gateway, *ADMIN, address="192.0.2.51")
    assert response.status == 200 and "access_token" in await response.json()


async def test_old_password_hashes_are_upgraded_at_sign_in(gateway: Client) -> None:
    """A hash of the old cost (N = 2^14, three fields) verifies once and is rewritten at N = 2^17."""
    assert gateway.app is not None
    store = gateway.app[STORE]
    salt = b"0123456789abcdef"
    legacy = "scrypt${}${}".format(salt.hex(), hashlib.scrypt(b"old-password", salt=salt, n=2**14, r=8, p=1,
                                                             dklen=32).hex())
    user = await store.create(name="old", email="old@example.test", password_hash=legacy, is_admin=False,
                              projects=[])
    response = await token_request(gateway, "old@example.test", "old-password")
    assert "access_token" in await response.json()
    stored = await store.pool.fetchval("SELECT password_hash FROM users WHERE id = $1", user.id)
    assert stored.startswith(f"scrypt${SCRYPT_N}$8$1$") and SCRYPT_N >= 2**17
    assert verify_password("old-password", stored) and not verify_password("other", stored)
    response = await token_request(gateway, "old@example.test", "old-password")
    assert "access_token" in await response.json()


def test_new_hashes_use_n_2_17() -> None:
    """hash_password writes its cost, N >= 2^17."""
    stored = hash_password("x")
    assert stored.split("$")[1] == str(2**17)


async def test_seed_000_logout_revokes_the_api_key_or_the_session(gateway: Client) -> None:
    """`token <id>:<key>` logout deletes the key; a Bearer logout signs the session out (access and
    refresh); the answer is seed 000's envelope; basic credentials are a 400 in that envelope."""
    tokens = await (await token_request(gateway, *ADMIN)).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    key = await (await gateway.post("/api/v1/users/me/api_key", headers=bearer)).json()
    api_key = {"Authorization": key["authorization"]}
    assert (await gateway.get("/api/v1/users/me", headers=api_key)).status == 200

    response = await gateway.post("/api/v1/auth/logout", headers=api_key)
    assert response.status == 200
    assert await response.json() == {"meta": {"code": 0, "message": "logout ok."}, "data": {}}
    assert (await gateway.get("/api/v1/users/me", headers=api_key)).status == 401
    assert (await gateway.get("/api/v1/users/me", headers=bearer)).status == 200  # only the key went

    response = await gateway.post("/api/v1/auth/logout", headers=bearer)
    assert await response.json() == {"meta": {"code": 0, "message": "logout ok."}, "data": {}}
    assert (await gateway.get("/api/v1/users/me", headers=bearer)).status == 401
    refresh = await gateway.post("/api/v1/auth/token/refresh",
                                 headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert refresh.status == 401

    response = await gateway.post("/api/v1/auth/logout", headers=basic(*ADMIN))
    body = await response.json()
    assert response.status == 400 and body["meta"]["code"] == 400 and body["data"] == {}
    response = await gateway.post("/api/v1/auth/logout")
    assert response.status == 401 and (await response.json())["meta"]["code"] == 401


async def test_a_deactivated_users_refresh_token_stops_working(gateway: Client) -> None:
    """Deactivating a user refuses their refresh (and access) tokens at once."""
    admin = await (await token_request(gateway, *ADMIN)).json()
    admin_auth = {"Authorization": f"Bearer {admin['access_token']}"}
    created = await gateway.post("/api/v1/users/", headers=admin_auth, json={
        "name": "member", "email": "member@example.test", "password": "member-password"})
    assert created.status == 201
    member = await (await token_request(gateway, "member@example.test", "member-password")).json()
    response = await gateway.put(f"/api/v1/users/{(await created.json())['id']}", headers=admin_auth,
                                 json={"is_active": False})
    assert response.status == 200
    refresh = await gateway.post("/api/v1/auth/token/refresh",
                                 headers={"Authorization": f"Bearer {member['refresh_token']}"})
    assert refresh.status == 401 and "deactivated" in (await refresh.json())["message"]
    assert (await gateway.get("/api/v1/users/me",
                              headers={"Authorization": f"Bearer {member['access_token']}"})).status == 401
