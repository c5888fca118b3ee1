"""What the twin asks the gateway to notify users of events: the active users whose groups are
linked to a campaign scope, and the scopes linked to a user's groups. Like every `/internal/` path,
served only to a request carrying a service token for the gateway (twinbill_common.servicetokens,
checked by the app's middleware): the gateway's port is public."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from twinbill_common.apidocs import documented
from twinbill_common.http import json_response
from twinbill_common.smorest import path_id
from twinbill_gateway.keys import STORE

SCOPE_USERS = """
SELECT DISTINCT m.user_id FROM user_groups_by_campaign_scopes s
JOIN users_by_user_groups m ON m.user_group_id = s.user_group_id
JOIN users u ON u.id = m.user_id
WHERE s.campaign_scope_id = $1 AND u.is_active
ORDER BY m.user_id
"""
USER_SCOPES = """
SELECT DISTINCT s.campaign_scope_id FROM users_by_user_groups m
JOIN user_groups_by_campaign_scopes s ON s.user_group_id = m.user_group_id
WHERE m.user_id = $1 ORDER BY 1
"""


class Ids(BaseModel):
    """Ids, as the twin's notifier asks for them."""

    ids: list[int]


@documented(summary="Users given a campaign scope through their groups", response=Ids, tags=("internal",))
async def scope_users(request: web.Request) -> web.Response:
    """GET /internal/v1/bemserver/campaign_scopes/{id}/users -> {"ids": [user ids]}."""
    rows = await request.app[STORE].pool.fetch(SCOPE_USERS, path_id(request))
    return json_response({"ids": [r["user_id"] for r in rows]})


@documented(summary="Campaign scopes given to a user through their groups", response=Ids, tags=("internal",))
async def user_scopes(request: web.Request) -> web.Response:
    """GET /internal/v1/bemserver/users/{id}/campaign_scopes -> {"ids": [campaign scope ids]}."""
    rows = await request.app[STORE].pool.fetch(USER_SCOPES, path_id(request))
    return json_response({"ids": [r["campaign_scope_id"] for r in rows]})


def add_internal_routes(app: web.Application) -> None:
    """Mount the two internal paths (before the catch-all proxy, which never exposes /internal/)."""
    app.router.add_get("/internal/v1/bemserver/campaign_scopes/{id}/users", scope_users)
    app.router.add_get("/internal/v1/bemserver/users/{id}/campaign_scopes", user_scopes)
