"""What the gateway's public port does not give away: /metrics (served on METRICS_PORT only), and
library wording in error answers (PyJWT's, PostgreSQL's, aiohttp's)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from tests.integration.gateway.test_gateway import ADMIN, basic
from twinbill_common.health import READINESS
from twinbill_common.mongo import free_port
from twinbill_gateway.app import create_app
from twinbill_gateway.settings import GatewaySettings

Client = TestClient[Any, Any]


async def test_metrics_are_not_on_the_public_port(pg_dsn: str) -> None:
    """GET /metrics on the gateway's port is a 404 (and not forwarded to a service); the metrics
    port answers Prometheus text."""
    port = free_port()
    settings = GatewaySettings(pg_dsn=SecretStr(pg_dsn), schema_name=f"identity_{uuid.uuid4().hex[:8]}",
                               admin_email=ADMIN[0], admin_password=SecretStr(ADMIN[1]),
                               twin_url="http://127.0.0.1:9", scheduler_url="http://127.0.0.1:9",
                               billing_url="http://127.0.0.1:9", metrics_port=port)
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        for path in ("/metrics", "/metrics/", "/api/v1/../metrics"):
            response = await client.get(path)
            assert response.status in (401, 404), (path, response.status)
            assert b"# HELP" not in await response.read()
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            assert "# HELP" in await response.text() or await response.text() == ""
            async with http.get(f"http://127.0.0.1:{port}/api/v1/users/me") as other:
                assert other.status == 404  # the metrics port serves nothing else
    finally:
        await client.close()


async def test_a_bad_token_is_refused_without_the_libraries_wording(pg_dsn: str) -> None:
    """PyJWT's messages ("Not enough segments", "Signature verification failed") stay inside."""
    settings = GatewaySettings(pg_dsn=SecretStr(pg_dsn), schema_name=f"identity_{uuid.uuid4().hex[:8]}",
                               admin_email=ADMIN[0], admin_password=SecretStr(ADMIN[1]))
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        response = await client.get("/api/v1/users/me", headers={"Authorization": "Bearer abc"})
        body = await response.json()
        assert response.status == 401
        assert body["message"] == "invalid token: bad signature, format or claims"
    finally:
        await client.close()


async def test_readiness_on_the_public_port_names_checks_without_their_text(pg_dsn: str) -> None:
    """A failing check is named in the gateway's /readyz, its exception text (an address, a
    driver's wording) is not: that goes to the log."""
    settings = GatewaySettings(pg_dsn=SecretStr(pg_dsn), schema_name=f"identity_{uuid.uuid4().hex[:8]}",
                               admin_email=ADMIN[0], admin_password=SecretStr(ADMIN[1]))
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        async def refused() -> None:
            raise OSError("connect to 10.0.0.5:5432 refused")
        assert client.app is not None
        client.app[READINESS]["store"] = refused
        response = await client.get("/readyz")
        body = await response.json()
        assert response.status == 503 and body["failures"] == {"store": "unavailable"}
        assert "10.0.0.5" not in await response.text()
    finally:
        await client.close()


async def test_bemserver_ids_past_postgresqls_integer_are_not_found(pg_dsn: str) -> None:
    """Found by schemathesis: /bemserver/user_groups/{id} and /bemserver/users/{id} with an id past
    PostgreSQL's integer were a 500 (asyncpg's range error); now BEMServer's 404."""
    settings = GatewaySettings(pg_dsn=SecretStr(pg_dsn), schema_name=f"identity_{uuid.uuid4().hex[:8]}",
                               admin_email=ADMIN[0], admin_password=SecretStr(ADMIN[1]))
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        for path in ("/bemserver/user_groups/107457368281", "/bemserver/users/-68719476737",
                     "/bemserver/users_by_user_groups/524205870120254912"):
            response = await client.get(path, headers=basic(*ADMIN))
            assert response.status == 404, (path, await response.text())
            assert (await response.json())["code"] == 404
    finally:
        await client.close()


async def test_a_project_id_past_postgresqls_integer_is_a_validation_error(pg_dsn: str) -> None:
    """Found by schemathesis: creating a user with a project id past PostgreSQL's integer was a
    500; now a 422 naming the field."""
    settings = GatewaySettings(pg_dsn=SecretStr(pg_dsn), schema_name=f"identity_{uuid.uuid4().hex[:8]}",
                               admin_email=ADMIN[0], admin_password=SecretStr(ADMIN[1]))
    client: Client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        response = await client.post("/api/v1/users/", headers=basic(*ADMIN), json={
            "name": "n", "email": "n@example.test", "password": "long-enough", "projects": [2**40]})
        assert response.status == 422
        assert "projects[0]" in (await response.json())["errors"]["json"]
    finally:
        await client.close()
