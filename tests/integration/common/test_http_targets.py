"""Raw UTF-8 in a request target, as curl sends seed 002's `?name=实例`: answered by the handler
(inside the envelope), not refused by the HTTP parser."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.rawhttp import raw_get
from twinbill_common.http import envelope_middleware, read_json, render_management


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"name": request.query.get("name"), "path": request.path})


async def test_raw_utf8_in_the_query_reaches_the_handler() -> None:
    app = web.Application(middlewares=[envelope_middleware([], default=render_management)])
    app.router.add_get("/dt/open/v1/instances", echo)
    async with TestServer(app) as server:
        assert server.port is not None
        target = "/dt/open/v1/instances?name=实例&page=1&offset=10".encode()
        status, body = await raw_get("127.0.0.1", server.port, target)
        assert (status, body) == (200, {"name": "实例", "path": "/dt/open/v1/instances"})
        target = b"/dt/open/v1/instances?name=%E5%AE%9E%E4%BE%8B"
        status, body = await raw_get("127.0.0.1", server.port, target)
        assert (status, body) == (200, {"name": "实例", "path": "/dt/open/v1/instances"})


async def test_bad_text_in_a_target_or_body_is_a_400_naming_where() -> None:
    """A NUL or bytes that are not UTF-8 in the query, a lone surrogate in a JSON body: 400s in
    the envelope naming the place, never a 500 from a store further on."""
    async def echo_body(request: web.Request) -> web.Response:
        return web.json_response(await read_json(request))

    app = web.Application(middlewares=[envelope_middleware([], default=render_management)])
    app.router.add_get("/items", echo)
    app.router.add_post("/items", echo_body)
    async with TestServer(app) as server:
        assert server.port is not None
        for target, field in ((b"/items?name=a%00b", "name"), (b"/items?name=\xff", "name"),
                              (b"/items?x\xff=1", "x\\udcff")):
            status, body = await raw_get("127.0.0.1", server.port, target)
            assert status == 422 and set(body["errors"]["query"]) == {field}, (target, body)
        payload = b'{"name": "a\\ud800", "n": [1, "\\u0000"]}'
        async with aiohttp.ClientSession() as http, http.post(
                server.make_url("/items"), data=payload, headers={"Content-Type": "application/json"}) as resp:
            body = await resp.json()
        assert resp.status == 422
        assert body["errors"]["json"] == {
            "name": ["is not valid Unicode text (it holds a lone surrogate)"],
            "n[1]": ["contains a NUL character (U+0000)"]}
