"""What the HTTP metrics middleware (issue 15) costs per request.

Run: .venv/bin/python bench/bench_http_metrics.py

Serves a small JSON route on 127.0.0.1 (a free port) twice, once as a plain aiohttp app and
once with the middleware `add_health_routes` installs, sends the same sequential requests to
each in turns from the same process, and prints the server-and-client CPU seconds per request
(less sensitive to other load on the machine than wall time) and the difference.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp
from aiohttp import web

from twinbill_common.health import add_health_routes
from twinbill_common.metrics import new_registry

REQUESTS = 3000
ROUNDS = 7


async def device(request: web.Request) -> web.Response:
    return web.json_response({"id": int(request.match_info["id"]), "name": "meter"})


def build(*, metrics: bool) -> web.Application:
    app = web.Application()
    if metrics:
        add_health_routes(app, registry=new_registry())
    app.router.add_get("/api/v1/devices/{id}", device)
    return app


async def cpu_per_request(app: web.Application) -> float:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # the bound free port
    try:
        async with aiohttp.ClientSession() as http:
            for i in range(100):  # warm-up
                async with http.get(f"http://127.0.0.1:{port}/api/v1/devices/{i}") as response:
                    await response.read()
            started = time.process_time()
            for i in range(REQUESTS):
                async with http.get(f"http://127.0.0.1:{port}/api/v1/devices/{i}") as response:
                    await response.read()
            return (time.process_time() - started) / REQUESTS
    finally:
        await runner.cleanup()


async def main() -> None:
    plain: list[float] = []
    counted: list[float] = []
    for _ in range(ROUNDS):
        plain.append(await cpu_per_request(build(metrics=False)))
        counted.append(await cpu_per_request(build(metrics=True)))
    differences = sorted((c - p) * 1e6 for p, c in zip(plain, counted, strict=True))
    print(f"{REQUESTS} sequential requests x {ROUNDS} interleaved rounds; CPU seconds of this process "
          "(server and client) per request, median round:")
    print(f"  without metrics middleware: {statistics.median(plain) * 1e6:8.1f} us")
    print(f"  with metrics middleware:    {statistics.median(counted) * 1e6:8.1f} us")
    print(f"  middleware cost:            {statistics.median(differences):8.1f} us per request "
          f"(rounds: {', '.join(f'{d:.1f}' for d in differences)})")


if __name__ == "__main__":
    asyncio.run(main())
