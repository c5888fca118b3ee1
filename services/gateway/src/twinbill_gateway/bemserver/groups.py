"""BEMServer's user groups, their members, and their permissions on campaigns and campaign
scopes (identity schema). Administrators manage them; other users read what concerns them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from twinbill_common.apidocs import IF_MATCH, JsonSchema, describe, smorest_body, smorest_item, smorest_query
from twinbill_common.errors import HttpError
from twinbill_common.http import read_json
from twinbill_common.paging import INT32_MAX, parse_int
from twinbill_common.smorest import (
    Field,
    add_collection_routes,
    check_if_match,
    forbidden,
    load_body,
    load_query,
    name_order,
    not_found,
    respond,
)
from twinbill_gateway.bemserver.auth import Caller, caller, require_admin
from twinbill_gateway.keys import CLIENT, SETTINGS, STORE

MINE_GROUPS = "SELECT user_group_id FROM users_by_user_groups WHERE user_id = {}"


@dataclass(frozen=True)
class Table:
    """One of the gateway's BEMServer tables: its writable fields, filters, and the twin items
    (campaigns, campaign scopes) its ids name."""

    path: str
    table: str
    fields: dict[str, Field]
    filters: dict[str, Field]
    mine: str                         # SQL condition of the rows a non-administrator sees ({} = user id)
    remote: dict[str, str]            # field -> twin BEMServer collection it names
    updatable: bool = False


ID = Field("int", required=True, nullable=False)
TABLES = (
    Table("user_groups", "user_groups", {"name": Field("str", required=True, nullable=False, length=(1, 80))},
          {"name": Field("str"), "sort": Field("str")}, f"id IN ({MINE_GROUPS})", {}, updatable=True),
    Table("users_by_user_groups", "users_by_user_groups", {"user_id": ID, "user_group_id": ID},
          {"user_id": Field("int"), "user_group_id": Field("int")}, "user_id = {}", {}),
    Table("user_groups_by_campaigns", "user_groups_by_campaigns", {"campaign_id": ID, "user_group_id": ID},
          {"campaign_id": Field("int"), "user_group_id": Field("int")}, f"user_group_id IN ({MINE_GROUPS})",
          {"campaign_id": "campaigns"}),
    Table("user_groups_by_campaign_scopes", "user_groups_by_campaign_scopes",
          {"campaign_scope_id": ID, "user_group_id": ID},
          {"campaign_scope_id": Field("int"), "user_group_id": Field("int")},
          f"user_group_id IN ({MINE_GROUPS})", {"campaign_scope_id": "campaign_scopes"}),
)


def _item(table: Table) -> JsonSchema:
    return smorest_item(["id", *table.fields], table.fields, name=f"bemserver_{table.path}")


def _pool(request: web.Request) -> asyncpg.Pool:
    return request.app[STORE].pool


async def _row(request: web.Request, table: Table, who: Caller) -> dict[str, Any]:
    try:
        # an id no row can have (past PostgreSQL's integer, say) is simply not found
        ident = parse_int(request.match_info["id"], minimum=-INT32_MAX - 1)
    except ValueError:
        raise not_found() from None
    row = await _pool(request).fetchrow(f"SELECT * FROM {table.table} WHERE id = $1", ident)
    if row is None:
        raise not_found()
    if not who.is_admin and not await _pool(request).fetchval(
            f"SELECT 1 FROM {table.table} WHERE id = $1 AND " + table.mine.format("$2"), ident, who.user.id):
        raise forbidden()
    return dict(row)


async def _check_remote(request: web.Request, table: Table, body: dict[str, Any]) -> None:
    """A campaign or scope id must name one the twin holds: else BEMServer's foreign-key 409."""
    for name, collection in table.remote.items():
        url = f"{request.app[SETTINGS].twin_url}/bemserver/{collection}/{body[name]}"
        try:
            async with request.app[CLIENT].get(url, headers={"X-Twinbill-Admin": "1"}) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as err:
            raise HttpError(502, f"twin service did not answer: {type(err).__name__}") from None
        if status == 404:
            raise HttpError(409, "Foreign key constraint violation")
        if status != 200:
            raise HttpError(502, f"twin service answered {status} reading {collection} {body[name]}")


def _lister(table: Table) -> Any:
    async def handler(request: web.Request) -> web.Response:
        who = await caller(request)
        query = load_query(request.query, table.filters)
        clauses, args = [], []
        for name, value in query.items():
            if name == "sort":
                continue
            args.append(value)
            clauses.append(f"{name} = ${len(args)}")
        if not who.is_admin:
            args.append(who.user.id)
            clauses.append(table.mine.format(f"${len(args)}"))
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        order = name_order(query.get("sort"))
        rows = await _pool(request).fetch(f"SELECT * FROM {table.table}{where} ORDER BY {order}", *args)
        return respond(request, [dict(r) for r in rows])
    return describe(handler, summary=f"BEMServer's {table.path}", query=smorest_query(table.filters),
                    response=_item(table).many(), tags=("bemserver",))


def _creator(table: Table) -> Any:
    async def handler(request: web.Request) -> web.Response:
        require_admin(await caller(request))
        body = load_body(await read_json(request), table.fields)
        await _check_remote(request, table, body)
        names = list(body)
        marks = ", ".join(f"${i + 1}" for i in range(len(names)))
        try:
            row = await _pool(request).fetchrow(
                f"INSERT INTO {table.table} ({', '.join(names)}) VALUES ({marks}) RETURNING *", *body.values())
        except asyncpg.UniqueViolationError:
            raise HttpError(409, "Unique constraint violation") from None
        except asyncpg.ForeignKeyViolationError:
            raise HttpError(409, "Foreign key constraint violation") from None
        return respond(request, dict(row), status=201)
    return describe(handler, summary=f"Create one of BEMServer's {table.path}", body=smorest_body(table.fields),
                    response=_item(table), status=201, tags=("bemserver",))


def _getter(table: Table) -> Any:
    async def handler(request: web.Request) -> web.Response:
        return respond(request, await _row(request, table, await caller(request)))
    return describe(handler, summary=f"One of BEMServer's {table.path}", response=_item(table), tags=("bemserver",))


def _updater(table: Table) -> Any:
    async def handler(request: web.Request) -> web.Response:
        who = await caller(request)
        require_admin(who)
        current = await _row(request, table, who)
        body = load_body(await read_json(request), table.fields)
        check_if_match(request, current)
        sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(body))
        try:
            row = await _pool(request).fetchrow(
                f"UPDATE {table.table} SET {sets} WHERE id = $1 RETURNING *", current["id"], *body.values())
        except asyncpg.UniqueViolationError:
            raise HttpError(409, "Unique constraint violation") from None
        return respond(request, dict(row))
    return describe(handler, summary=f"Change one of BEMServer's {table.path}", body=smorest_body(table.fields),
                    response=_item(table), headers=IF_MATCH, tags=("bemserver",))


def _deleter(table: Table) -> Any:
    async def handler(request: web.Request) -> web.Response:
        who = await caller(request)
        require_admin(who)
        current = await _row(request, table, who)
        check_if_match(request, current)
        await _pool(request).execute(f"DELETE FROM {table.table} WHERE id = $1", current["id"])
        return web.Response(status=204)
    return describe(handler, summary=f"Delete one of BEMServer's {table.path}", status=204, headers=IF_MATCH,
                    tags=("bemserver",))


def add_group_routes(app: web.Application, prefix: str) -> None:
    """GET/POST `/<table>/`, GET/DELETE (and PUT for groups) `/<table>/{id}`."""
    for table in TABLES:
        add_collection_routes(app, f"{prefix}/{table.path}", lister=_lister(table), creator=_creator(table),
                              getter=_getter(table), updater=_updater(table) if table.updatable else None,
                              deleter=_deleter(table))
