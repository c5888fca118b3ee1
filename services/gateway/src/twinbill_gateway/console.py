"""The web console: static pages at `/` and `/console/...`, calling the same public API as any client.

No server-side rendering and no session of its own: the pages sign in with `POST /api/v1/auth/token`
and send the bearer token on every API call, so the gateway's authentication and project checks
apply to the console exactly as to a script. The chart library (uPlot) is installed from the npm
registry by `make install` into `console/vendor/` (not committed).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from twinbill_common.apidocs import documented
from twinbill_common.http import Handler

CONSOLE = Path(__file__).parent / "console"
# The pages change with the code; a browser must not keep an old copy after an upgrade.
NO_CACHE = {"Cache-Control": "no-cache"}


@documented(summary="The web console", content_type="text/html", tags=("console",))
async def index(request: web.Request) -> web.FileResponse:
    """GET /: the console's single page (its views are addressed by the URL fragment)."""
    return web.FileResponse(CONSOLE / "index.html", headers=NO_CACHE)


@web.middleware
async def console_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Console files are revalidated on every load and may not be framed by another site."""
    response = await handler(request)
    if request.path == "/" or request.path.startswith("/console/"):
        response.headers.update(NO_CACHE)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def add_console_routes(app: web.Application) -> None:
    """Mount `/` and `/console/` (before the catch-all proxy)."""
    app.router.add_get("/", index)
    app.router.add_static("/console/", CONSOLE, follow_symlinks=False)
