"""Raw UTF-8 in a request target, as curl sends seed 002's `?name=实例`: answered by the handler
(inside the envelope), not refused by the HTTP parser."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.rawhttp import raw_get
from twinbill_common.http import envelope_middleware, render_management


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
