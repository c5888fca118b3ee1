"""The gateway on real PostgreSQL: tokens, the three schemes, project checks, and forwarding."""

from __future__ import annotations

import asyncio
import base64
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import generate_latest
from pydantic import SecretStr

from twinbill_common.health import METRICS_REGISTRY
from twinbill_gateway.app import create_app
from twinbill_gateway.domain.credentials import hash_password, verify_password
from twinbill_gateway.settings import GatewaySettings

Client = TestClient[web.Request, web.Application]

ADMIN = ("root@example.test", "root-password")


TASK_META = {"code": 0, "message": "task info"}
# What the peer services answer for the items whose owner the gateway looks up.
ITEMS: dict[str, object] = {
    "/api/v1/scheduler/tasks/k/": {"meta": TASK_META, "data": {"project_id": 42, "natrual_key": "k"}},
    "/api/v1/scheduler/tasks/foreign/": {"meta": TASK_META, "data": {"project_id": 7, "natrual_key": "foreign"}},
    "/api/v1/devices/1": {"id": 1, "project_id": 42, "device_key": "mine"},
    "/api/v1/devices/2": {"id": 2, "project_id": 7, "device_key": "theirs"},
    "/api/v1/tariffs/bb": {"id": "bb", "project_id": 42},
    "/api/v1/tariffs/aa": {"id": "aa", "project_id": 7},
    "/api/v1/products/5": {"id": 5, "name": "meter"},  # products belong to no project
    "/api/v1/projects/42": {"id": 42, "name": "mine"},
    "/api/v1/projects/7": {"id": 7, "name": "theirs"},
}
ITEM_PATH = re.compile(r"^/api/v1/(scheduler/tasks/[^/]+/|[a-z]+/[^/]+)$")
SEEN = web.AppKey("seen", list)


async def echo(request: web.Request) -> web.Response:
    """A peer service that serves ITEMS, and otherwise says what it received."""
    if request.method == "GET" and request.path in ITEMS:
        return web.json_response(ITEMS[request.path])
    if request.method == "GET" and ITEM_PATH.match(request.path):
        return web.json_response({"code": 404, "message": "Not Found"}, status=404)
    request.app[SEEN].append(f"{request.method} {request.path_qs}")
    return web.json_response({"path": request.path_qs, "method": request.method,
                              "user": request.headers.get("X-Twinbill-User"),
                              "auth": request.headers.get("Authorization"),
                              "projects": request.headers.get("X-Twinbill-Projects"),
                              "body": (await request.read()).decode()},
                             headers={"X-Pagination": '{"page": 1}'})


@dataclass
class Peers:
    """The gateway under test, and what its peer services received (other than look-ups)."""

    client: Client
    seen: list[str]


async def start_gateway(pg_dsn: str, base: str, *, billing_url: str | None = None) -> Client:
    settings = GatewaySettings(pg_dsn=SecretStr(pg_dsn), schema_name=f"identity_{uuid.uuid4().hex[:8]}",
                               admin_email=ADMIN[0], admin_password=SecretStr(ADMIN[1]),
                               twin_url=base, scheduler_url=base, billing_url=billing_url or base)
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    return client


@pytest.fixture
async def peers(pg_dsn: str) -> AsyncIterator[Peers]:
    upstream_app = web.Application()
    upstream_app[SEEN] = []
    upstream_app.router.add_route("*", "/{tail:.*}", echo)
    upstream = TestServer(upstream_app)
    await upstream.start_server()
    client = await start_gateway(pg_dsn, f"http://127.0.0.1:{upstream.port}")
    yield Peers(client, upstream_app[SEEN])
    await client.close()
    await upstream.close()


@pytest.fixture
def gateway(peers: Peers) -> Client:
    return peers.client


async def raw_status(client: Client, request_line: str, headers: dict[str, str]) -> int:
    """Send a request line exactly as written (HTTP clients normalise `..` away) and read the status."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    lines = [f"{request_line} HTTP/1.1", "Host: gateway", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items())]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    status = int((await asyncio.wait_for(reader.readline(), timeout=10)).split()[1])
    writer.close()
    await writer.wait_closed()
    return status


def basic(email: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


async def member_of_42(client: Client) -> dict[str, str]:
    """A project manager of project 42 only; answers their Bearer header."""
    created = await client.post("/api/v1/users/", headers=basic(*ADMIN), json={
        "name": "Manager", "email": "pm@example.test", "password": "manager-pass", "projects": [42]})
    assert created.status == 201
    tokens = await login(client, "pm@example.test", "manager-pass")
    return {"Authorization": f"Bearer {tokens['access_token']}"}


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
    forbidden = await gateway.get("/api/v1/users/", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert forbidden.status == 200  # the administrator: accepted
    wrong = await gateway.get("/api/v1/users/me", headers=basic(ADMIN[0], "wrong"))
    assert wrong.status == 401
    # /metrics is not on the public port (GATEWAY_METRICS_PORT): the registry it would serve
    metrics = generate_latest(gateway.app[METRICS_REGISTRY]).decode()
    for line in ('gateway_auth_total{outcome="rejected",scheme="password"} 1.0',
                 'gateway_auth_total{outcome="accepted",scheme="password"} 1.0',
                 'gateway_auth_total{outcome="rejected",scheme="bearer"} 1.0',  # the access token as a refresh
                 'gateway_auth_total{outcome="accepted",scheme="bearer"} 3.0',  # me, refresh, users
                 'gateway_auth_total{outcome="missing",scheme="none"} 1.0',
                 'gateway_auth_total{outcome="rejected",scheme="basic"} 1.0'):
        assert line in metrics, [got for got in metrics.splitlines() if got.startswith("gateway_auth_total")]


async def test_members_reach_their_projects_only(gateway: Client) -> None:
    admin = basic(*ADMIN)
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
    assert across.status == 200 and (await across.json())["projects"] == "42"  # the twin filters by it

    key = await gateway.post("/api/v1/users/me/api_key", headers=bearer)
    header = (await key.json())["authorization"]
    via_key = await gateway.get("/api/v1/devices/?project_id=42", headers={"Authorization": header})
    assert via_key.status == 200
    wrong_key = header[:-1] + ("0" if header[-1] != "0" else "1")
    assert (await gateway.get("/api/v1/devices/?project_id=42",
                              headers={"Authorization": wrong_key})).status == 401


async def test_internal_paths_hidden_and_dead_upstream_is_502(pg_dsn: str) -> None:
    gateway = await start_gateway(pg_dsn, "http://127.0.0.1:1", billing_url="http://127.0.0.1:1")
    try:
        admin = basic(*ADMIN)
        hidden = await gateway.get("/internal/v1/products", headers=admin)
        assert hidden.status == 404
        dead = await gateway.get("/api/v1/tariffs/?project_id=1", headers=admin)
        assert dead.status == 502 and "billing" in (await dead.json())["message"]
        bearer = await member_of_42(gateway)
        lookup = await gateway.get("/api/v1/tariffs/aa", headers=bearer)  # the owner cannot be read
        assert lookup.status == 502 and "billing" in (await lookup.json())["message"]
    finally:
        await gateway.close()


async def test_query_and_body_naming_different_projects_is_refused(peers: Peers) -> None:
    bearer = await member_of_42(peers.client)
    gateway = peers.client
    mixed = await gateway.post("/api/v1/scheduler/task/?project_id=42", headers=bearer,
                               json={"name": "x", "project_id": 7})
    body = await mixed.json()
    assert mixed.status == 403 and body["meta"]["code"] == 403
    assert "query project_id=42" in body["meta"]["message"] and "body project_id=7" in body["meta"]["message"]
    # the body is read as JSON whatever its Content-Type, as the services read it
    disguised = await gateway.post("/api/v1/scheduler/task/?project_id=42", data=b'{"project_id": 7}',
                                   headers={**bearer, "Content-Type": "text/plain"})
    assert disguised.status == 403
    twice = await gateway.post("/api/v1/scheduler/task/", data=b'{"project_id": 42, "project_id": 7}',
                               headers={**bearer, "Content-Type": "application/json"})
    assert twice.status == 403
    bulk = await gateway.post("/api/v1/devices/", headers=bearer, json=[{"project_id": 42}, {"project_id": 7}])
    assert bulk.status == 403
    two_queries = await gateway.get("/api/v1/devices/?project_id=42&project_id=7", headers=bearer)
    assert two_queries.status == 403
    assert peers.seen == []  # none of them reached a service
    same = await gateway.post("/api/v1/scheduler/task/?project_id=42", headers=bearer,
                              json={"name": "x", "project_id": 42})
    assert same.status == 200 and peers.seen == ["POST /api/v1/scheduler/task/?project_id=42"]


async def test_task_key_paths_always_read_the_task_project(peers: Peers) -> None:
    bearer = await member_of_42(peers.client)
    gateway = peers.client
    for method, path in (("PUT", "/api/v1/scheduler/tasks/foreign/?project_id=42"),
                         ("DELETE", "/api/v1/scheduler/tasks/foreign/?project_id=42"),
                         ("PUT", "/api/v1/scheduler/tasks/foreign/status/?project_id=42"),
                         ("GET", "/api/v1/scheduler/tasks/foreign?project_id=42")):
        refused = await gateway.request(method, path, headers=bearer, json={"project_id": 42, "enabled": False})
        assert refused.status == 403, (method, path)
        assert "project 7" in (await refused.json())["meta"]["message"]
    unknown = await gateway.delete("/api/v1/scheduler/tasks/nope/?project_id=42", headers=bearer)
    assert unknown.status == 404 and (await unknown.json())["meta"]["code"] == 404
    assert peers.seen == []
    mine = await gateway.delete("/api/v1/scheduler/tasks/k/", headers=bearer)
    assert mine.status == 200 and peers.seen == ["DELETE /api/v1/scheduler/tasks/k/"]


async def test_seed_002_requests_name_the_members_projects(peers: Peers) -> None:
    """Members' seed-002 requests reach the twin with their projects named (issue 12: the twin
    shows only those); a client's own X-Twinbill-Projects is never passed on; administrators'
    requests name none (everything)."""
    bearer = await member_of_42(peers.client)
    gateway = peers.client
    read = await gateway.get("/dt/open/v1/instance?ids=dev-a", headers={**bearer, "X-Twinbill-Projects": "7"})
    assert read.status == 200 and (await read.json())["projects"] == "42"
    control = await gateway.patch("/dt/open/v1/instance/dev-a", headers=bearer, json=[])
    assert control.status == 200 and (await control.json())["projects"] == "42"
    admin = await gateway.get("/dt/open/v1/instance?ids=dev-a", headers=basic(*ADMIN))
    assert admin.status == 200 and (await admin.json())["projects"] is None
    dots = await gateway.get("/dt/open/v1/../../api/v1/devices/2", headers=bearer)
    assert dots.status in (403, 404)


async def test_item_paths_read_the_owner_from_the_owning_service(peers: Peers) -> None:
    bearer = await member_of_42(peers.client)
    gateway = peers.client
    for method, path in (("GET", "/api/v1/devices/2?project_id=42"),
                         ("PUT", "/api/v1/devices/2?project_id=42"),
                         ("DELETE", "/api/v1/devices/2"),
                         ("GET", "/api/v1/tariffs/aa?project_id=42"),
                         ("PUT", "/api/v1/tariffs/aa/?project_id=42"),
                         ("GET", "/api/v1/projects/7?project_id=42")):
        refused = await gateway.request(method, path, headers=bearer)
        assert refused.status == 403, (method, path)
        assert (await refused.json())["message"] == "not a member of project 7"
    product = await gateway.get("/api/v1/products/5?project_id=42", headers=bearer)
    assert product.status == 403 and "no project" in (await product.json())["message"]
    unknown = await gateway.get("/api/v1/devices/99?project_id=42", headers=bearer)
    assert unknown.status == 404 and "devices item '99' not found" in (await unknown.json())["message"]
    moved = await gateway.put("/api/v1/devices/1", headers=bearer, json={"project_id": 7})
    assert moved.status == 403  # into a project the user is not a member of
    unlisted = await gateway.get("/api/v1/elsewhere/1?project_id=42", headers=bearer)
    assert unlisted.status == 403
    # checked as devices/1, but a client library would normalise it to devices/2 on the way out
    assert await raw_status(gateway, "GET /api/v1/devices/1/../2", bearer) == 403
    assert peers.seen == []  # look-ups are not recorded: nothing else reached a service

    for method, path in (("GET", "/api/v1/devices/1"), ("PUT", "/api/v1/devices/1?project_id=42"),
                         ("DELETE", "/api/v1/tariffs/bb"), ("GET", "/api/v1/projects/42")):
        allowed = await gateway.request(method, path, headers=bearer)
        assert allowed.status == 200, (method, path)
    assert [line for line in peers.seen if not line.startswith("GET ")] == \
        ["PUT /api/v1/devices/1?project_id=42", "DELETE /api/v1/tariffs/bb"]
    admin = await gateway.delete("/api/v1/devices/2", headers=basic(*ADMIN))
    assert admin.status == 200 and peers.seen[-1] == "DELETE /api/v1/devices/2"


async def test_collections_need_a_project_of_the_user(peers: Peers) -> None:
    bearer = await member_of_42(peers.client)
    gateway = peers.client
    assert (await gateway.get("/api/v1/devices/", headers=bearer)).status == 403
    assert (await gateway.get("/api/v1/scheduler/history/?project_id=7", headers=bearer)).status == 403
    bad = await gateway.get("/api/v1/devices/?project_id=x", headers=bearer)
    assert bad.status == 400 and "not an integer" in (await bad.json())["message"]
    assert peers.seen == []
    assert (await gateway.get("/api/v1/scheduler/history/time/?project_id=42", headers=bearer)).status == 200
    assert (await gateway.post("/api/v1/sites/", headers=bearer, json={"project_id": 42, "name": "s"})).status == 200


async def test_password_hashing_runs_off_the_event_loop(peers: Peers, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []

    def recorded(real: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object) -> object:
            threads.append(threading.get_ident())
            return real(*args)
        return wrapper

    monkeypatch.setattr("twinbill_gateway.signin.verify_password", recorded(verify_password))
    monkeypatch.setattr("twinbill_gateway.api.hash_password", recorded(hash_password))
    bearer = await member_of_42(peers.client)  # hash (create), verify (Basic), verify (token login)
    assert (await peers.client.get("/api/v1/users/me", headers=bearer)).status == 200
    assert len(threads) == 3
    assert threading.get_ident() not in threads
