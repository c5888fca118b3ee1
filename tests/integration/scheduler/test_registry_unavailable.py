"""A twin that does not answer: create/update answer 503 and write no guessed zone."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from twinbill_common.zones import HttpProjectZones
from twinbill_devstack.ports import free_port
from twinbill_scheduler.app import create_app
from twinbill_scheduler.settings import SchedulerSettings

Client = TestClient[web.Request, web.Application]
CRONTAB = {"month": "*", "day": "1", "hour": "0", "minute": "0"}
BODY = {"name": "monthly", "project_id": 7, "crontab": CRONTAB, "device_type": 1,
        "enabled": True, "description": ""}


async def call(client: Client, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """Send a request and return status and decoded envelope."""
    async with client.request(method, path, json=body) as response:
        return response.status, await response.json()


def assert_unavailable(status: int, answer: dict[str, Any]) -> None:
    """The seed-000 envelope with a 503 that says what failed and to retry."""
    assert status == 503, answer
    assert answer["meta"]["code"] == 503
    message = answer["meta"]["message"]
    assert message.startswith("project registry unavailable: "), message
    assert "Error" not in message and "127.0.0.1" not in message, message  # no client-library text
    assert "/api/v1/projects/7" in message and message.endswith("; retry"), message


async def test_create_answers_503_when_the_twin_is_unreachable(
        settings: SchedulerSettings) -> None:
    """Nothing listens on the twin URL: the create is refused with 503 and no task is stored."""
    zones = HttpProjectZones(f"http://127.0.0.1:{free_port()}", default="Asia/Shanghai",
                             timeout=2)
    async with TestClient(TestServer(create_app(settings, zones=zones))) as client:
        try:
            status, answer = await call(client, "POST", "/api/v1/scheduler/task/", BODY)
            assert_unavailable(status, answer)
            status, listed = await call(client, "GET",
                                        "/api/v1/scheduler/tasks/?project_id=7&device_type=0")
            assert status == 200 and listed["data"]["count"] == 0
        finally:
            await zones.close()


async def test_update_answers_503_and_keeps_the_stored_zone(
        settings: SchedulerSettings, db: asyncpg.Connection) -> None:
    """A task created while the twin answered keeps its zone when an update finds it gone."""
    async def project(request: web.Request) -> web.Response:
        return web.json_response({"id": int(request.match_info["id"]), "name": "p",
                                  "timezone": "Europe/Paris", "description": ""})

    twin_app = web.Application()
    twin_app.router.add_get("/api/v1/projects/{id}", project)
    twin = TestServer(twin_app)
    await twin.start_server()
    zones = HttpProjectZones(str(twin.make_url("/")), default="Asia/Shanghai", ttl=0, timeout=2)
    async with TestClient(TestServer(create_app(settings, zones=zones))) as client:
        try:
            status, created = await call(client, "POST", "/api/v1/scheduler/task/", BODY)
            assert status == 200, created
            key = created["data"]["natrual_key"]
            await twin.close()  # the twin goes away; ttl 0: the next update must ask again
            update = {"name": "renamed", "crontab": {**CRONTAB, "day": "2"}, "enabled": True,
                      "description": "x"}
            status, answer = await call(client, "PUT", f"/api/v1/scheduler/tasks/{key}/", update)
            assert_unavailable(status, answer)
            status, got = await call(client, "GET", f"/api/v1/scheduler/tasks/{key}/")
            assert status == 200
            stored = await db.fetchval("SELECT timezone FROM tasks WHERE natrual_key = $1", key)
            assert stored == "Europe/Paris"
            assert got["data"]["name"] == "monthly" and got["data"]["crontab"]["day"] == "1"
        finally:
            await zones.close()
            await twin.close()
