"""Project zones from the twin service's contract (GET /api/v1/projects/{id}), served locally."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from twinbill_scheduler.zones import HttpProjectZones


async def test_http_zones_read_cache_and_fall_back() -> None:
    """A known project's zone is read and cached; unknown (404), invalid zone, or an
    unreachable twin give the default zone; forget() re-reads."""
    calls: list[int] = []
    zones_by_project = {1: "Europe/Paris", 2: "Mars/Olympus"}

    async def project(request: web.Request) -> web.Response:
        ident = int(request.match_info["id"])
        calls.append(ident)
        if ident not in zones_by_project:
            return web.json_response({"code": 404, "status": "Not Found"}, status=404)
        return web.json_response({"id": ident, "name": "p", "timezone": zones_by_project[ident],
                                  "description": ""})

    app = web.Application()
    app.router.add_get("/api/v1/projects/{id}", project)
    async with TestServer(app) as server:
        base_url = str(server.make_url("/"))
        zones = HttpProjectZones(base_url, default="Asia/Shanghai", ttl=60)
        try:
            assert await zones.zone_of(1) == "Europe/Paris"
            assert await zones.zone_of(1) == "Europe/Paris"
            assert calls == [1]  # cached
            assert await zones.zone_of(2) == "Asia/Shanghai"  # not an IANA zone
            assert await zones.zone_of(49) == "Asia/Shanghai"  # unknown to the registry
            zones_by_project[1] = "Asia/Tokyo"
            zones.forget(1)
            assert await zones.zone_of(1) == "Asia/Tokyo"
        finally:
            await zones.close()
    unreachable = HttpProjectZones(base_url, default="Asia/Shanghai", timeout=2)
    try:
        assert await unreachable.zone_of(1) == "Asia/Shanghai"  # the server is gone
    finally:
        await unreachable.close()
