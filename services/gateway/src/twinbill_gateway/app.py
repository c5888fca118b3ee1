"""The gateway application: identity schema, token routes, and the authenticated proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from twinbill_common.health import add_health_routes, metrics_app
from twinbill_common.http import envelope_middleware, render_dt, render_management, render_meta
from twinbill_common.logging import get_logger
from twinbill_common.metrics import new_registry
from twinbill_common.postgres import open_schema
from twinbill_common.servicetokens import ServiceTokens, require_service_token
from twinbill_common.smorest import render_smorest
from twinbill_gateway import api
from twinbill_gateway.apidocs import add_api_doc_routes
from twinbill_gateway.bemserver import PREFIX as BEMSERVER
from twinbill_gateway.bemserver import setup_bemserver
from twinbill_gateway.console import add_console_routes, console_headers
from twinbill_gateway.domain.credentials import hash_password
from twinbill_gateway.keys import CLIENT, SETTINGS, SIGN_IN, STORE
from twinbill_gateway.metrics import auth_counter, auth_metrics_middleware
from twinbill_gateway.proxy import forward
from twinbill_gateway.settings import GatewaySettings
from twinbill_gateway.signin import SignIn
from twinbill_gateway.store import IdentityStore

MIGRATIONS = Path(__file__).parent / "migrations"
log = get_logger(__name__)


def create_app(settings: GatewaySettings) -> web.Application:
    """Build the gateway; errors use the envelope of the surface the path belongs to."""
    registry = new_registry()
    tokens = ServiceTokens(settings.service_key.get_secret_value(), issuer="gateway")
    # outermost of the gateway's own: it sees the status the envelope rendered (401, 403, 429)
    app = web.Application(middlewares=[auth_metrics_middleware(auth_counter(registry)), envelope_middleware(
        [("/api/v1/scheduler/", render_meta), (api.LOGOUT_PATH, render_meta), ("/dt/open/", render_dt),
         (BEMSERVER + "/", render_smorest)],
        default=render_management), console_headers,
        # /internal/ (the twin's directory asks): a 404 to anything without a service token
        require_service_token(tokens, audience="gateway", hide=True)],
        client_max_size=64 * 1024 * 1024)
    app[SETTINGS] = settings
    # the gateway's port faces clients: /metrics is served on METRICS_PORT only, and /readyz names
    # a failing check without its exception's text
    checks = add_health_routes(app, registry=registry, public=True)
    api.setup_routes(app)
    setup_bemserver(app)
    add_console_routes(app)
    add_api_doc_routes(app)
    app.router.add_route("*", "/{tail:.*}", forward)

    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        pool = await open_schema(settings, schema=settings.schema_name, migrations=MIGRATIONS)
        store = IdentityStore(pool)
        if await store.count() == 0:
            await store.create(name="admin", email=settings.admin_email, is_admin=True, projects=[],
                               password_hash=await asyncio.to_thread(
                                   hash_password, settings.admin_password.get_secret_value()))
            log.info("created the first administrator", email=settings.admin_email)
        app[STORE] = store
        app[SIGN_IN] = SignIn(store, settings)
        upstreams = {settings.twin_url: "twin", settings.scheduler_url: "scheduler",
                     settings.billing_url: "billing"}
        app[CLIENT] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout),
                                            middlewares=(tokens.client_middleware(upstreams),))
        checks["postgres"] = lambda: pool.fetchval("SELECT 1")
        metrics_runner: web.AppRunner | None = None
        if settings.metrics_port:
            metrics_runner = web.AppRunner(metrics_app(registry), access_log=None)
            await metrics_runner.setup()
            await web.TCPSite(metrics_runner, settings.metrics_host, settings.metrics_port).start()
        yield
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await app[CLIENT].close()
        await pool.close()

    app.cleanup_ctx.append(lifespan)
    return app
