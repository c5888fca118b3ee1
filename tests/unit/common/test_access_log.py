"""One access-log line per request (twinbill_common.access), probes at debug level."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from twinbill_common.access import runner_options
from twinbill_common.http import envelope_middleware, render_management


async def hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": request.query.get("name", "")}, status=201)


async def test_each_request_writes_one_line() -> None:
    app = web.Application(middlewares=[envelope_middleware([("/", render_management)])])
    app.router.add_get("/api/hello", hello)
    app.router.add_get("/healthz", hello)
    server = TestServer(app)
    await server.start_server(**runner_options(enabled=True))  # as serve_app starts its runner
    with capture_logs() as logs:
        async with TestClient(server) as client:
            for path in ("/api/hello?name=x", "/api/missing", "/healthz"):
                async with client.get(path, headers={"X-Request-Id": "req-1"}) as response:
                    await response.read()
    lines = [entry for entry in logs if entry["event"] == "request"]
    assert [(e["log_level"], e["method"], e["path"], e["status"]) for e in lines] == [
        ("info", "GET", "/api/hello?name=x", 201), ("info", "GET", "/api/missing", 404),
        ("debug", "GET", "/healthz", 201)]
    assert all(e["request_id"] == "req-1" and e["ms"] >= 0 and e["remote"] for e in lines)
    assert lines[0]["bytes"] > len(b"{\"hello\": \"x\"}")  # what was written: headers and body


async def test_no_lines_when_turned_off() -> None:
    app = web.Application()
    app.router.add_get("/api/hello", hello)
    server = TestServer(app)
    await server.start_server(**runner_options(enabled=False))
    with capture_logs() as logs:
        async with TestClient(server) as client, client.get("/api/hello") as response:
            assert response.status == 201
    assert [entry for entry in logs if entry["event"] == "request"] == []
