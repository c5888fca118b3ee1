"""The gateway serves the web console's files: no credentials needed for them (they hold no data),
while every API path still needs them; nothing outside the console's folder is reachable."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.gateway.test_gateway import Client, raw_status, start_gateway


@pytest.fixture
async def gateway(pg_dsn: str) -> AsyncIterator[Client]:
    """The gateway alone: serving files asks no other service (their address answers nothing)."""
    client = await start_gateway(pg_dsn, "http://127.0.0.1:9")
    yield client
    await client.close()


async def test_console_files_are_public_and_the_api_is_not(gateway: Client) -> None:
    """`/` is the console's page, revalidated on every load; its scripts, style and chart library
    are served; the API behind it still answers 401 without credentials."""
    async with gateway.get("/") as response:
        assert response.status == 200 and "twinbill console" in await response.text()
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Frame-Options"] == "DENY"
    for path in ("/console/js/app.js", "/console/js/views/meters.js", "/console/css/console.css",
                 "/console/vendor/uPlot.esm.js"):
        async with gateway.get(path) as response:
            assert response.status == 200, path
    async with gateway.get("/console/js/app.js") as response:
        assert response.content_type in ("text/javascript", "application/javascript")  # module scripts need a JS type
    async with gateway.get("/api/v1/devices/?project_id=1") as response:
        assert response.status == 401


async def test_nothing_outside_the_console_folder_is_served(gateway: Client) -> None:
    """A `..` in the path (sent raw, as a client library would not) never reaches the package's code."""
    assert await raw_status(gateway, "GET /console/../settings.py", {}) == 404
    assert await raw_status(gateway, "GET /console/%2e%2e/settings.py", {}) in (403, 404)
    async with gateway.get("/console/missing.js") as response:
        assert response.status == 404
