"""Project zones from the twin service's contract (GET /api/v1/projects/{id}), served locally."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from twinbill_common.errors import RegistryUnavailable
from twinbill_common.zones import HttpProjectZones


async def test_http_zones_read_cache_and_fall_back() -> None:
    """A known project's zone is read and cached; unknown (404) or an invalid zone give the
    default zone; forget() re-reads; a twin that does not answer raises, and is not cached."""
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
        with pytest.raises(RegistryUnavailable, match="/api/v1/projects/1"):
            await unreachable.zone_of(1)  # the server is gone: no guessed zone
    finally:
        await unreachable.close()


async def test_http_zones_do_not_cache_a_twin_that_fails() -> None:
    """A 5xx raises RegistryUnavailable and is not cached: the next call asks again and gets
    the real zone once the twin answers."""
    failing = [True]

    async def project(request: web.Request) -> web.Response:
        if failing[0]:
            return web.json_response({"code": 503, "status": "Service Unavailable"}, status=503)
        return web.json_response({"id": 3, "name": "p", "timezone": "Europe/Paris",
                                  "description": ""})

    app = web.Application()
    app.router.add_get("/api/v1/projects/{id}", project)
    async with TestServer(app) as server:
        zones = HttpProjectZones(str(server.make_url("/")), default="Asia/Shanghai", ttl=60)
        try:
            with pytest.raises(RegistryUnavailable, match="503"):
                await zones.zone_of(3)
            failing[0] = False
            assert await zones.zone_of(3) == "Europe/Paris"
        finally:
            await zones.close()
