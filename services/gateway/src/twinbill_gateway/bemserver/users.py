"""BEMServer's /about/, /auth/ and /users/ on twinbill's own users (the identity schema)."""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import (
    IF_MATCH,
    JsonSchema,
    describe,
    documented,
    smorest_body,
    smorest_item,
    smorest_query,
)
from twinbill_common.errors import HttpError
from twinbill_common.http import json_response, read_json
from twinbill_common.paging import INT32_MAX, parse_int
from twinbill_common.smorest import (
    Field,
    check_if_match,
    etag_of,
    forbidden,
    load_body,
    load_query,
    not_found,
    respond,
)
from twinbill_gateway.api import _tokens
from twinbill_gateway.bemserver.auth import Caller, caller, require_admin
from twinbill_gateway.domain.credentials import hash_password, new_session_id
from twinbill_gateway.keys import SETTINGS, SIGN_IN, STORE

# The bemserver-api release whose contract this surface follows (bemserver-api-client 0.22
# accepts >=0.26.0,<0.27.0).
API_VERSION = "0.26.0"

USER_FIELDS = {"name": Field("str", required=True, nullable=False, length=(1, 80)),
               "email": Field("email", required=True, nullable=False),
               "password": Field("str", required=True, nullable=False, length=(1, 80))}
USER_QUERY = {"name": Field("str"), "email": Field("str"), "is_admin": Field("bool"),
              "is_active": Field("bool"), "sort": Field("str")}
SORTS = {f"{sign}{name}" for name in ("name", "email", "is_admin", "is_active") for sign in ("", "+", "-")}

CREDENTIALS = {"email": Field("email", required=True, nullable=False),
               "password": Field("str", required=True, nullable=False, length=(1, 80))}
FLAG = {"value": Field("bool")}
USER = smorest_item(["id", "name", "email", "is_admin", "is_active"],
                    {**USER_FIELDS, "is_admin": Field("bool"), "is_active": Field("bool")}, name="bemserver_user")
TOKENS = JsonSchema({"type": "object", "description": "access and refresh tokens, or status failure",
                     "properties": {"status": {"type": "string", "enum": ["success", "failure"]},
                                    "access_token": {"type": "string"}, "refresh_token": {"type": "string"}}},
                    "bemserver_tokens")
ABOUT = JsonSchema({"type": "object", "required": ["versions"], "properties": {"versions": {
    "type": "object", "properties": {"bemserver_api": {"type": "string"}, "twinbill": {"type": "string"}}}}})


def _public(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "email": row["email"], "is_admin": row["is_admin"],
            "is_active": row["is_active"]}


def _order(sort: str | None) -> str:
    if not sort:
        return "id"
    parts = []
    for item in sort.split(","):
        if item not in SORTS:
            raise HttpError(422, "", fields={"sort": ["Must be one of: " + ", ".join(sorted(SORTS)) + "."]},
                            data={"location": "query"})
        desc = item.startswith("-")
        parts.append(item.lstrip("+-") + (" DESC" if desc else ""))
    return ", ".join([*parts, "id"])


@functools.cache
def _release() -> str:
    """The installed twinbill-gateway release (read once: a metadata lookup scans sys.path)."""
    return importlib.metadata.version("twinbill-gateway")


@documented(summary="The bemserver-api version served", response=ABOUT, tags=("bemserver",))
async def about(request: web.Request) -> web.Response:
    """GET /about/: the bemserver-api version served, and the twinbill release serving it."""
    return respond(request, {"versions": {"bemserver_api": API_VERSION, "twinbill": _release()}})


@documented(summary="Sign in: access and refresh tokens", body=smorest_body(CREDENTIALS), response=TOKENS,
            tags=("bemserver",))
async def get_tokens(request: web.Request) -> web.Response:
    """POST /auth/token: tokens, or {"status": "failure"} for wrong or inactive credentials."""
    body = load_body(await read_json(request), CREDENTIALS)
    user = await request.app[SIGN_IN].check(request, body["email"], body["password"])
    if user is None or not user.is_active:
        return json_response({"status": "failure"})
    return json_response(_tokens(user.id, request.app[SETTINGS], session_id=new_session_id()))


@documented(summary="New tokens for the refresh token given as Bearer", response=TOKENS, tags=("bemserver",))
async def refresh_tokens(request: web.Request) -> web.Response:
    """POST /auth/token/refresh with the refresh token as Bearer."""
    who = await caller(request, refresh=True)
    return json_response(_tokens(who.user.id, request.app[SETTINGS],
                                 session_id=who.session_id or new_session_id()))


async def _row(request: web.Request, who: Caller) -> asyncpg.Record:
    try:
        # an id no row can have (past PostgreSQL's integer, say) is simply not found
        ident = parse_int(request.match_info["id"], minimum=-INT32_MAX - 1)
    except ValueError:
        raise not_found() from None
    row = await request.app[STORE].pool.fetchrow("SELECT * FROM users WHERE id = $1", ident)
    if row is None:
        raise not_found()
    if not who.is_admin and row["id"] != who.user.id:
        raise forbidden()
    return row


@documented(summary="BEMServer's users", query=smorest_query(USER_QUERY), response=USER.many(), tags=("bemserver",))
async def list_users(request: web.Request) -> web.Response:
    """GET /users/: every user for administrators, oneself for others (not paginated, as BEMServer)."""
    who = await caller(request)
    query = load_query(request.query, USER_QUERY)
    clauses, args = [], []
    for name in ("name", "email", "is_admin", "is_active"):
        if name in query:
            args.append(query[name])
            clauses.append(f"{name} = ${len(args)}")
    if not who.is_admin:
        args.append(who.user.id)
        clauses.append(f"id = ${len(args)}")
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    rows = await request.app[STORE].pool.fetch(
        f"SELECT * FROM users{where} ORDER BY {_order(query.get('sort'))}", *args)
    return respond(request, [_public(r) for r in rows])


@documented(summary="Create a user (administrators)", body=smorest_body(USER_FIELDS), response=USER, status=201,
            tags=("bemserver",))
async def create_user(request: web.Request) -> web.Response:
    """POST /users/ (administrators): a new active, non-admin user."""
    require_admin(await caller(request))
    body = load_body(await read_json(request), USER_FIELDS)
    digest = await asyncio.to_thread(hash_password, body["password"])
    try:
        row = await request.app[STORE].pool.fetchrow(
            "INSERT INTO users (name, email, password_hash) VALUES ($1, $2, $3) RETURNING *",
            body["name"], body["email"], digest)
    except asyncpg.UniqueViolationError:
        raise HttpError(409, "Unique constraint violation") from None
    return respond(request, _public(row), status=201)


@documented(summary="One user", response=USER, tags=("bemserver",))
async def get_user(request: web.Request) -> web.Response:
    """GET /users/{id}: administrators, or the user themself."""
    return respond(request, _public(await _row(request, await caller(request))))


@documented(summary="Change a user", body=smorest_body(USER_FIELDS), response=USER, headers=IF_MATCH,
            tags=("bemserver",))
async def update_user(request: web.Request) -> web.Response:
    """PUT /users/{id}: name, email and password (If-Match)."""
    who = await caller(request)
    row = await _row(request, who)
    body = load_body(await read_json(request), USER_FIELDS)
    check_if_match(request, _public(row))
    digest = await asyncio.to_thread(hash_password, body["password"])
    try:
        row = await request.app[STORE].pool.fetchrow(
            "UPDATE users SET name = $2, email = $3, password_hash = $4 WHERE id = $1 RETURNING *",
            row["id"], body["name"], body["email"], digest)
    except asyncpg.UniqueViolationError:
        raise HttpError(409, "Unique constraint violation") from None
    return respond(request, _public(row))


@documented(summary="Delete a user", status=204, headers=IF_MATCH, tags=("bemserver",))
async def delete_user(request: web.Request) -> web.Response:
    """DELETE /users/{id} (administrators, If-Match)."""
    who = await caller(request)
    require_admin(who)
    row = await _row(request, who)
    check_if_match(request, _public(row))
    await request.app[STORE].pool.execute("DELETE FROM users WHERE id = $1", row["id"])
    return web.Response(status=204)


def _flag(column: str) -> Any:
    async def handler(request: web.Request) -> web.Response:
        """PUT /users/{id}/set_admin|set_active {"value": bool} (administrators, If-Match) -> 204."""
        who = await caller(request)
        require_admin(who)
        row = await _row(request, who)
        body = load_body(await read_json(request), FLAG)
        check_if_match(request, _public(row))
        row = await request.app[STORE].pool.fetchrow(
            f"UPDATE users SET {column} = coalesce($2, {column}) WHERE id = $1 RETURNING *",
            row["id"], body["value"])
        return web.Response(status=204, headers={"ETag": f'"{etag_of(_public(row))}"'})
    return describe(handler, summary=f"Set the user's {column}", body=smorest_body(FLAG), status=204,
                    headers=IF_MATCH, tags=("bemserver",))


set_admin = _flag("is_admin")
set_active = _flag("is_active")
