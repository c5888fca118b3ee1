"""The error middleware renders each seed's envelope, naming bad fields, with a request id on 500."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, Field

from twinbill_common.errors import HttpError, NotFound
from twinbill_common.http import (
    dt_ok,
    envelope_middleware,
    field_path,
    meta_ok,
    parse_model,
    read_json,
    render_dt,
    render_meta,
    text_problems,
)


class Thing(BaseModel):
    name: str = Field(min_length=1)
    count: int


async def make_client() -> TestClient[web.Request, web.Application]:
    async def create(request: web.Request) -> web.Response:
        thing = parse_model(Thing, await read_json(request))
        response: web.Response = meta_ok(thing.model_dump(), "create ok.")
        return response

    async def missing(_: web.Request) -> web.Response:
        raise NotFound()

    async def boom(_: web.Request) -> web.Response:
        raise RuntimeError("kaput")

    async def locked(_: web.Request) -> web.Response:
        raise HttpError(429, "too many failed sign-ins", data={"headers": {"Retry-After": "60"}})

    async def dt(_: web.Request) -> web.Response:
        response: web.Response = dt_ok({"名字": "计算机"})
        return response

    app = web.Application(middlewares=[envelope_middleware(
        [("/api/v1/scheduler/", render_meta), ("/dt/open/", render_dt)])])
    app.router.add_post("/api/v1/scheduler/things/", create)
    app.router.add_post("/api/v1/items/", create)
    app.router.add_get("/dt/open/v1/missing", missing)
    app.router.add_get("/dt/open/v1/boom", boom)
    app.router.add_get("/dt/open/v1/ok", dt)
    app.router.add_get("/dt/open/v1/locked", locked)
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_meta_envelope_success_and_field_errors() -> None:
    client = await make_client()
    try:
        ok = await client.post("/api/v1/scheduler/things/", json={"name": "a", "count": 1})
        assert await ok.json() == {"meta": {"code": 0, "message": "create ok."},
                                   "data": {"name": "a", "count": 1}}
        bad = await client.post("/api/v1/scheduler/things/", json={"name": ""})
        body = await bad.json()
        assert bad.status == 400
        assert body["meta"]["code"] == 400
        assert set(body["data"]["errors"]) == {"name", "count"}
        assert body["data"]["errors"]["count"] == ["Missing data for required field."]
        assert "name" in body["meta"]["message"] and "count" in body["meta"]["message"]
    finally:
        await client.close()


async def test_seed_002_lockout_is_a_429_not_a_server_error() -> None:
    """A sign-in lockout on seed 002's paths (schemathesis found it answered 500 "error"): the
    seed's `unauthorized` body, HTTP 429 and the Retry-After the lockout gave."""
    client = await make_client()
    try:
        locked = await client.get("/dt/open/v1/locked")
        assert locked.status == 429 and locked.headers["Retry-After"] == "60"
        body = await locked.json()
        assert (body["code"], body["message"]) == (401, "unauthorized")
        assert body["data"]["detail"] == "too many failed sign-ins" and "request_id" not in body["data"]
    finally:
        await client.close()


async def test_management_errors_follow_flask_smorest() -> None:
    client = await make_client()
    try:
        bad = await client.post("/api/v1/items/", data=b"{not json", headers={"Content-Type": "application/json"})
        body = await bad.json()
        assert bad.status == 422
        assert body["status"] == "Unprocessable Entity"
        assert "_body" in body["errors"]["json"]
    finally:
        await client.close()


async def test_dt_envelope_codes_and_messages() -> None:
    client = await make_client()
    try:
        ok = await client.get("/dt/open/v1/ok")
        assert await ok.json() == {"code": 200, "message": "success", "data": {"名字": "计算机"}}
        assert "计算机" in await ok.text()  # not \u-escaped
        missing = await client.get("/dt/open/v1/missing")
        assert (missing.status, (await missing.json())["message"]) == (404, "not found")
        unknown_route = await client.get("/dt/open/v1/nowhere")
        assert (await unknown_route.json())["code"] == 404
        boom = await client.get("/dt/open/v1/boom")
        body = await boom.json()
        assert (boom.status, body["code"], body["message"]) == (500, 500, "error")
        assert body["data"]["request_id"] == boom.headers["X-Request-Id"]
    finally:
        await client.close()


@pytest.mark.parametrize(("parts", "path"), [
    (("crontab", "minute"), "crontab.minute"),
    ((0, "expectvalue"), "[0].expectvalue"),
    (("items", 2, "id"), "items[2].id"),
    ((), ""),
])
def test_field_paths_read_as_a_client_writes_them(parts: tuple[str | int, ...], path: str) -> None:
    assert field_path(parts) == path


def test_text_problems_name_every_place() -> None:
    body = {"name": "a\x00", "crontab": {"minute": "0", "k\x00": 1}, "list": ["x", "\ud800"]}
    found = text_problems(body)
    assert set(found) == {"name", "crontab.k\x00", "list[1]"}
    assert found["list[1]"] == ["is not valid Unicode text (it holds a lone surrogate)"]
    assert found["crontab.k\x00"] == ["name contains a NUL character (U+0000)"]
    assert text_problems("\x00") == {"_body": ["contains a NUL character (U+0000)"]}
    assert text_problems({"fine": ["text", 1, None]}) == {}
    assert text_problems({"k\ud800": 1}) == {  # named with an escape, so the answer encodes
        "k\\ud800": ["name is not valid Unicode text (it holds a lone surrogate)"]}
    deep: list[object] = ["\x00"]
    for _ in range(5000):  # deeper than the interpreter's recursion limit
        deep = [deep]
    assert list(text_problems(deep)) == ["[0]" * 5000 + "[0]"]
