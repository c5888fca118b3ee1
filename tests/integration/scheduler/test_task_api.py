"""Seed 000's task endpoints on the real PostgreSQL: the seed's own examples, verbatim."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

FIXTURES = Path(__file__).parents[2] / "fixtures"
KEY = re.compile(r"^[0-9a-f]{32}$")
LOCAL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
# Values the seed shows that must differ here: fresh ids and the real clock.
VARYING = {"natrual_key": KEY, "update_time": LOCAL_TIME, "create_time": LOCAL_TIME}

Client = TestClient[web.Request, web.Application]


def seed(name: str) -> dict[str, Any]:
    """One seed-000 example (request and response as the document writes them)."""
    loaded: dict[str, Any] = json.loads((FIXTURES / f"seed000_tasks_{name}.json").read_text())
    return loaded


def assert_task_like(ours: dict[str, Any], documented: dict[str, Any],
                     **expected: Any) -> None:
    """Field by field: same keys; equal values except ids/times (format checked) and overrides."""
    assert set(ours) == set(documented), set(ours) ^ set(documented)
    for field, value in documented.items():
        if field in expected:
            assert ours[field] == expected[field], field
        elif field in VARYING:
            assert VARYING[field].match(ours[field]), (field, ours[field])
        elif field == "last_run_at":
            assert ours[field] is None  # never run yet: null (README), the seed shows a time
        else:
            assert ours[field] == value, field


async def call(client: Client, method: str, path: str, body: object = None) -> tuple[int, Any]:
    """Send a request (JSON body if given) and return status and decoded envelope."""
    async with client.request(method, path, json=body) as response:
        return response.status, await response.json()


async def create(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await call(client, "POST", "/api/v1/scheduler/task/", body)
    assert status == 200, answer
    data: dict[str, Any] = answer["data"]
    return data


async def test_seed_create_example_verbatim(client: Client) -> None:
    """The seed's POST body gives the seed's envelope, message and task shape."""
    example = seed("create")
    status, answer = await call(client, example["method"], example["path"], example["request"])
    assert status == 200
    assert answer["meta"] == example["response"]["meta"]
    assert_task_like(answer["data"], example["response"]["data"])


async def test_seed_info_update_status_delete_verbatim(client: Client) -> None:
    """GET, PUT, PUT status and DELETE answer as the seed's examples, in order."""
    created = await create(client, seed("create")["request"])
    key = created["natrual_key"]

    info = seed("info")
    status, answer = await call(client, "GET", info["path"].format(natrual_key=key))
    assert status == 200 and answer["meta"] == info["response"]["meta"]
    # The seed's info example is another task ("dignshi"); ours is the one just created.
    assert_task_like(answer["data"], info["response"]["data"], name="每月出账",
                     natrual_key=key, create_time=created["create_time"])

    update = seed("update")
    status, answer = await call(client, "PUT", update["path"].format(nature_key=key),
                                update["request"])
    assert status == 200 and answer["meta"] == update["response"]["meta"]
    # The seed's response shows day "1" though its request sends "2": we echo what was stored.
    assert_task_like(answer["data"], update["response"]["data"], natrual_key=key,
                     crontab=update["request"]["crontab"], create_time=created["create_time"])

    toggle = seed("status")
    status, answer = await call(client, "PUT", toggle["path"].format(nature_key=key),
                                {"enabled": False})
    assert (status, answer) == (200, toggle["response"])
    status, answer = await call(client, "GET", f"/api/v1/scheduler/tasks/{key}/")
    assert answer["data"]["enabled"] is False
    status, answer = await call(client, "PUT", toggle["path"].format(nature_key=key),
                                toggle["request"])
    assert (status, answer) == (200, toggle["response"])
    status, answer = await call(client, "GET", f"/api/v1/scheduler/tasks/{key}/")
    assert answer["data"]["enabled"] is True

    delete = seed("delete")
    status, answer = await call(client, "DELETE", delete["path"].format(nature_key=key))
    assert (status, answer) == (200, delete["response"])
    status, answer = await call(client, "GET", f"/api/v1/scheduler/tasks/{key}/")
    assert status == 404 and answer["meta"]["code"] == 404
    assert key in answer["meta"]["message"]


async def test_seed_list_example_paging(client: Client) -> None:
    """Five tasks of project 42, page 2 of size 2: the seed's count, next, previous, results."""
    example = seed("list")
    documented = example["response"]["data"]
    page_two = documented["results"]
    # Only one task per project and device type may be enabled (issue #11: two would bill the
    # same meters twice), so the seed's page, which shows two enabled ones, is reproduced with
    # its second task disabled; every other field is the seed's.
    bodies = [{"name": f"other {n}", "project_id": 42, "device_type": 1, "enabled": False,
               "crontab": {"month": "*", "day": str(n + 10), "hour": "1", "minute": "0"}}
              for n in range(3)]
    wanted = [{**{k: r[k] for k in ("name", "crontab", "device_type", "enabled", "description")},
               "project_id": r["project_id"]} for r in page_two]
    wanted[1]["enabled"] = False
    for body in [bodies[0], bodies[1], *wanted, bodies[2]]:
        await create(client, body)
    await create(client, {**bodies[0], "device_type": 2})  # another type: not in device_type=1
    await create(client, {**bodies[0], "project_id": 43})  # another project

    status, answer = await call(client, "GET", example["path"])
    assert status == 200 and answer["meta"] == example["response"]["meta"]
    data = answer["data"]
    assert {k: data[k] for k in ("count", "page_size", "next", "previous")} == {
        k: documented[k] for k in ("count", "page_size", "next", "previous")}
    assert len(data["results"]) == len(page_two)
    for index, (ours, theirs) in enumerate(zip(data["results"], page_two, strict=True)):
        assert_task_like(ours, theirs, **({"enabled": False} if index == 1 else {}))

    first = await call(client, "GET",
                       "/api/v1/scheduler/tasks/?project_id=42&device_type=1&page_size=2&page=1")
    assert (first[1]["data"]["next"], first[1]["data"]["previous"]) == (True, False)
    last = await call(client, "GET",
                      "/api/v1/scheduler/tasks/?project_id=42&device_type=1&page_size=2&page=3")
    assert (last[1]["data"]["next"], last[1]["data"]["previous"]) == (False, True)
    assert [t["name"] for t in last[1]["data"]["results"]] == ["other 2"]
    every = await call(client, "GET", "/api/v1/scheduler/tasks/?project_id=42&device_type=0")
    assert every[1]["data"]["count"] == 6 and every[1]["data"]["page_size"] == 10
    assert every[1]["data"]["next"] is False


@pytest.mark.parametrize(("body", "bad_fields"), [
    ({}, {"name", "project_id", "crontab", "device_type"}),
    ({"name": "x", "project_id": "49", "device_type": 3,
      "crontab": {"month": "*", "day": "1", "hour": "1", "minute": "0"}},
     {"project_id", "device_type"}),
    ({"name": "x", "project_id": 49, "device_type": 1,
      "crontab": {"month": "2", "day": "31", "hour": "25", "minute": "0"}},
     {"crontab.day", "crontab.hour"}),
    ({"name": "x", "project_id": 49, "device_type": 1, "enabled": "yes",
      "crontab": {"month": "*", "day": "1", "hour": "1"}},
     {"enabled", "crontab.minute"}),
    ({"name": "x", "project_id": 49, "device_type": 1, "crontab": "0 1 1 * *"},
     {"crontab"}),
    ({"name": "a\x00b", "project_id": 49, "device_type": 1,
      "crontab": {"month": "*", "day": "1", "hour": "1", "minute": "0\x00"}},
     {"name", "crontab.minute"}),  # NUL: PostgreSQL text cannot hold it
    ({"name": "x", "project_id": 2**31, "device_type": 1,
      "crontab": {"month": "*", "day": "1", "hour": "1", "minute": "0"}},
     {"project_id"}),  # past a PostgreSQL integer
])
async def test_create_validation_names_each_bad_field(
        client: Client, body: dict[str, Any], bad_fields: set[str]) -> None:
    """A bad body is refused with a non-zero meta.code and a message naming every bad field."""
    status, answer = await call(client, "POST", "/api/v1/scheduler/task/", body)
    assert status == 400
    assert answer["meta"]["code"] != 0
    assert set(answer["data"]["errors"]) == bad_fields
    for field in bad_fields:
        assert field in answer["meta"]["message"]


async def test_other_bad_requests(client: Client) -> None:
    """Not JSON, bad list query, bad status body, unknown or malformed keys: clear answers."""
    async with client.post("/api/v1/scheduler/task/", data=b"{not json") as response:
        assert response.status == 400
        assert "JSON" in (await response.json())["meta"]["message"]
    status, answer = await call(client, "GET", "/api/v1/scheduler/tasks/?device_type=7&page=0")
    assert status == 400
    assert set(answer["data"]["errors"]) == {"project_id", "device_type", "page"}
    created = await create(client, seed("create")["request"])
    status, answer = await call(client, "PUT",
                                f"/api/v1/scheduler/tasks/{created['natrual_key']}/status/",
                                {"enabled": "no"})
    assert status == 400 and "enabled" in answer["meta"]["message"]
    status, answer = await call(client, "PUT", f"/api/v1/scheduler/tasks/{created['natrual_key']}/",
                                {"name": "x"})
    assert status == 400
    assert set(answer["data"]["errors"]) == {"crontab", "enabled", "description"}
    for method in ("GET", "PUT", "DELETE"):
        status, answer = await call(client, method, f"/api/v1/scheduler/tasks/{'0' * 32}/",
                                    {"enabled": True} if method == "PUT" else None)
        assert status == 404 and answer["meta"]["code"] == 404, method
    status, answer = await call(client, "GET", "/api/v1/scheduler/tasks/abcds.../")
    assert status == 404 and answer["meta"]["code"] == 404


@pytest.mark.parametrize(("query", "bad_fields"), [
    ("project_id=2147483648&device_type=0", {"project_id"}),
    ("project_id=1&device_type=0&page=9223372036854775807", {"page"}),
    ("project_id=1&device_type=0&page=99999999999999999999999", {"page"}),
    ("project_id=1%00&device_type=0", {"project_id"}),
])
async def test_list_limits_are_named_not_crashed_on(client: Client, query: str, bad_fields: set[str]) -> None:
    """Past a PostgreSQL integer, or with a NUL: 400 naming the parameter, never a 500."""
    status, answer = await call(client, "GET", f"/api/v1/scheduler/tasks/?{query}")
    assert status == 400, answer
    assert set(answer["data"]["errors"]) == bad_fields


async def test_times_render_in_project_zone(client: Client) -> None:
    """Project 7 is in Europe/Paris (static zones here): its times render as Paris wall time."""
    shanghai = await create(client, {**seed("create")["request"], "project_id": 49})
    paris = await create(client, {**seed("create")["request"], "project_id": 7})
    from datetime import datetime
    delta = (datetime.fromisoformat(shanghai["create_time"])
             - datetime.fromisoformat(paris["create_time"]))
    assert round(delta.total_seconds() / 3600) in (6, 7)  # UTC+8 vs UTC+1/+2


CONFLICT_CRONTAB = {"month": "*", "day": "1", "hour": "0", "minute": "0"}


async def test_second_enabled_task_is_refused_with_409_on_create_update_and_status(
        client: Client) -> None:
    """Two enabled tasks for one project and device type would bill its meters twice: the second
    is refused with 409 naming the enabled one, on create, on update and on a status change;
    disabled tasks, other types and other projects are fine."""
    first = await create(client, {"name": "water", "project_id": 61, "device_type": 1,
                                  "crontab": CONFLICT_CRONTAB})
    body = {"name": "water again", "project_id": 61, "device_type": 1,
            "crontab": {**CONFLICT_CRONTAB, "day": "15"}}
    status, answer = await call(client, "POST", "/api/v1/scheduler/task/", body)
    assert status == 409 and answer["meta"]["code"] == 409, answer
    assert first["natrual_key"] in answer["meta"]["message"]
    assert "project_id 61" in answer["meta"]["message"] and "device_type 1" in answer["meta"]["message"]
    assert "enabled" in answer["data"]["errors"]
    listed = await call(client, "GET", "/api/v1/scheduler/tasks/?project_id=61&device_type=0")
    assert listed[1]["data"]["count"] == 1  # nothing was stored

    second = await create(client, {**body, "enabled": False})
    await create(client, {**body, "device_type": 2})  # another device type
    await create(client, {**body, "project_id": 62})  # another project
    key = second["natrual_key"]
    update = {"name": "water again", "crontab": body["crontab"], "enabled": True, "description": ""}
    status, answer = await call(client, "PUT", f"/api/v1/scheduler/tasks/{key}/", update)
    assert status == 409 and first["natrual_key"] in answer["meta"]["message"], answer
    status, answer = await call(client, "PUT", f"/api/v1/scheduler/tasks/{key}/status/", {"enabled": True})
    assert status == 409 and first["natrual_key"] in answer["meta"]["message"], answer
    got = await call(client, "GET", f"/api/v1/scheduler/tasks/{key}/")
    assert got[1]["data"]["enabled"] is False

    # Once the first is disabled, the second may be enabled.
    status, _ = await call(client, "PUT", f"/api/v1/scheduler/tasks/{first['natrual_key']}/status/",
                           {"enabled": False})
    assert status == 200
    status, answer = await call(client, "PUT", f"/api/v1/scheduler/tasks/{key}/status/", {"enabled": True})
    assert status == 200, answer


async def test_concurrent_creates_leave_one_enabled_task(client: Client) -> None:
    """Eight concurrent creates for the same project and type: exactly one is stored enabled
    (the database's partial unique index decides), the rest get 409."""
    body = {"name": "race", "project_id": 63, "device_type": 2, "crontab": CONFLICT_CRONTAB}
    answers = await asyncio.gather(*(call(client, "POST", "/api/v1/scheduler/task/", body)
                                     for _ in range(8)))
    assert sorted(status for status, _ in answers) == [200] + [409] * 7
    listed = await call(client, "GET", "/api/v1/scheduler/tasks/?project_id=63&device_type=2")
    assert listed[1]["data"]["count"] == 1
