"""The gateway on real PostgreSQL: tokens, the three schemes, project checks, and forwarding."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from twinbill_gateway.app import create_app
from twinbill_gateway.settings import GatewaySettings

Client = TestClient[web.Request, web.Application]

ADMIN = ("root@example.test", "root-password")


async def echo(request: web.Request) -> web.Response:
    """A peer service that says what it received."""
    if request.path == "/api/v1/scheduler/tasks/k/" and request.method == "GET":
        return web.json_response({"meta": {"code": 0, "message": "task info"},
                                  "data": {"project_id": 42, "natrual_key": "k"}})
    return web.json_response({"path": request.path_qs, "method": request.method,
                              "user": request.headers.get("X-Twinbill-User"),
                              "auth": request.headers.get("Authorization"),
                              "body": (await request.read()).decode()},
                             headers={"X-Pagination": '{"page": 1}'})


@pytest.fixture
async def gateway(pg_dsn: str) -> AsyncIterator[Client]:
    upstream_app = web.Application()
    upstream_app.router.add_route("*", "/{tail:.*}", echo)
    upstream = TestServer(upstream_app)
    await upstream.start_server()
    base = f"http://127.0.0.1:{upstream.port}"
    settings = GatewaySettings(pg_dsn=SecretStr(pg_dsn), schema_name=f"identity_{uuid.uuid4().hex[:8]}",
                               admin_email=ADMIN[0], admin_password=SecretStr(ADMIN[1]),
                               twin_url=base, scheduler_url=base, billing_url="http://127.0.0.1:1")
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    yield client
    await client.close()
    await upstream.close()


async def login(client: Client, email: str, password: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert response.status == 200
    return dict(await response.json())


async def test_tokens_refresh_and_failure(gateway: Client) -> None:
    assert (await login(gateway, ADMIN[0], "wrong")) == {"status": "failure"}
    tokens = await login(gateway, *ADMIN)
    assert tokens["status"] == "success"
    me = await gateway.get("/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert (await me.json())["email"] == ADMIN[0]
    # an access token is not a refresh token, and vice versa
    bad = await gateway.post("/api/v1/auth/token/refresh",
                             headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert bad.status == 401 and "refresh" in (await bad.json())["message"]
    fresh = await gateway.post("/api/v1/auth/token/refresh",
                               headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert (await fresh.json())["status"] == "success"
    missing = await gateway.get("/api/v1/devices/?project_id=1")
    assert missing.status == 401 and "missing" in (await missing.json())["message"]


async def test_members_reach_their_projects_only(gateway: Client) -> None:
    admin = {"Authorization": "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()}
    invalid = await gateway.post("/api/v1/users/", json={"name": "", "email": "nope"}, headers=admin)
    errors = (await invalid.json())["errors"]["json"]
    assert invalid.status == 422 and {"name", "email", "password"} <= set(errors)
    created = await gateway.post("/api/v1/users/", headers=admin, json={
        "name": "Manager", "email": "pm@example.test", "password": "manager-pass", "projects": [42]})
    assert created.status == 201
    tokens = await login(gateway, "pm@example.test", "manager-pass")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

    ok = await gateway.get("/api/v1/scheduler/tasks/?project_id=42&device_type=0", headers=bearer)
    body = await ok.json()
    assert ok.status == 200 and body["path"] == "/api/v1/scheduler/tasks/?project_id=42&device_type=0"
    assert body["user"] == str((await created.json())["id"]) and body["auth"] is None
    assert ok.headers["X-Pagination"] == '{"page": 1}'

    other = await gateway.get("/api/v1/scheduler/tasks/?project_id=7&device_type=0", headers=bearer)
    assert other.status == 403 and (await other.json())["meta"]["code"] == 403
    posted = await gateway.post("/api/v1/scheduler/task/", headers=bearer,
                                json={"name": "x", "project_id": 42})
    assert posted.status == 200 and '"project_id": 42' in (await posted.json())["body"]
    by_key = await gateway.put("/api/v1/scheduler/tasks/k/status/", headers=bearer, json={"enabled": True})
    assert by_key.status == 200  # the task's project (42) was read from the scheduler first
    across = await gateway.get("/dt/open/v1/instances", headers=bearer)
    assert across.status == 403 and (await across.json())["message"] == "forbidden"

    key = await gateway.post("/api/v1/users/me/api_key", headers=bearer)
    header = (await key.json())["authorization"]
    via_key = await gateway.get("/api/v1/devices/?project_id=42", headers={"Authorization": header})
    assert via_key.status == 200
    wrong_key = header[:-1] + ("0" if header[-1] != "0" else "1")
    assert (await gateway.get("/api/v1/devices/?project_id=42",
                              headers={"Authorization": wrong_key})).status == 401


async def test_internal_paths_hidden_and_dead_upstream_is_502(gateway: Client) -> None:
    admin = {"Authorization": "Basic " + base64.b64encode(f"{ADMIN[0]}:{ADMIN[1]}".encode()).decode()}
    hidden = await gateway.get("/internal/v1/products", headers=admin)
    assert hidden.status == 404
    dead = await gateway.get("/api/v1/tariffs/?project_id=1", headers=admin)
    assert dead.status == 502 and "billing" in (await dead.json())["message"]
