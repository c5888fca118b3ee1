"""The BEMServer-compatible API (bemserver-api 0.26 contract) under /bemserver (issue 12).

The gateway serves what it owns (about, tokens, users, user groups and their permissions) and
forwards the rest (campaigns, structure, time series, data) to the twin's /bemserver surface."""

from __future__ import annotations

from aiohttp import web

from twinbill_gateway.bemserver import users
from twinbill_gateway.bemserver.forward import forward_bemserver
from twinbill_gateway.bemserver.groups import add_group_routes
from twinbill_gateway.bemserver.internal import add_internal_routes

PREFIX = "/bemserver"


def setup_bemserver(app: web.Application) -> None:
    """Mount /bemserver/... (before the gateway's catch-all proxy)."""
    app.router.add_get(f"{PREFIX}/about/", users.about)
    app.router.add_post(f"{PREFIX}/auth/token", users.get_tokens)
    app.router.add_post(f"{PREFIX}/auth/token/refresh", users.refresh_tokens)
    app.router.add_get(f"{PREFIX}/users/", users.list_users)
    app.router.add_post(f"{PREFIX}/users/", users.create_user)
    app.router.add_get(PREFIX + "/users/{id}", users.get_user)
    app.router.add_put(PREFIX + "/users/{id}", users.update_user)
    app.router.add_delete(PREFIX + "/users/{id}", users.delete_user)
    app.router.add_put(PREFIX + "/users/{id}/set_admin", users.set_admin)
    app.router.add_put(PREFIX + "/users/{id}/set_active", users.set_active)
    add_group_routes(app, PREFIX)
    add_internal_routes(app)
    app.router.add_route("*", PREFIX + "/{tail:.*}", forward_bemserver)
