"""BEMServer's events (bemserver-api 0.27): event categories, events with their filters (campaign,
scope, user, source, level, time, series, and sites ... zones with BEMServer's recursion), and
the users' subscriptions to categories (event_categories_by_users). An event is read and written
by whoever reads its campaign scope; categories are changed by administrators; a subscription
belongs to its user."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import IF_MATCH, documented, smorest_body, smorest_item, smorest_query
from twinbill_common.errors import HttpError
from twinbill_common.http import read_json
from twinbill_common.smorest import (
    Field,
    add_collection_routes,
    check_if_match,
    forbidden,
    load_body,
    load_query,
    not_found,
    pagination_header,
    parse_page,
    path_id,
    respond,
)
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver.access import Access, access_of
from twinbill_twin.domain.levels import LEVELS, NAMES
from twinbill_twin.keys import DIRECTORY
from twinbill_twin.store.events import EVENT_COLUMNS, EVENT_FROM, NewEvent, record_event

LEVEL = Field("choice", required=True, nullable=False, choices=tuple(LEVELS))
REF = Field("int", required=True, nullable=False)
EVENT_CREATE = {"campaign_scope_id": REF, "category_id": REF, "level": LEVEL,
                "timestamp": Field("datetime", required=True, nullable=False),
                "source": Field("str", required=True, nullable=False), "description": Field("str")}
EVENT_UPDATE = {k: v for k, v in EVENT_CREATE.items() if k not in ("campaign_scope_id", "timestamp")}
EVENT_FILTERS = {"sort": Field("str"), "campaign_id": Field("int"), "campaign_scope_id": Field("int"),
                 "user_id": Field("int"), "source": Field("str"), "in_source": Field("str"),
                 "category_id": Field("int"), "level": Field("choice", choices=tuple(LEVELS)),
                 "level_min": Field("choice", choices=tuple(LEVELS)), "timestamp_min": Field("datetime"),
                 "timestamp_max": Field("datetime"), "timeseries_id": Field("int"),
                 **{f"{name}_id": Field("int") for name in ("site", "building", "storey", "space", "zone")},
                 **{f"recurse_{name}_id": Field("int") for name in ("site", "building", "storey")}}
EVENT = smorest_item(["id", *EVENT_CREATE], EVENT_CREATE, name="bemserver_event")
SORTABLE = ("timestamp", "level")

# Events linked to a place, or (recurse_) to anything below it, as bemserver-core's _filter_by_*.
_BELOW = {
    "site": ("SELECT event_id FROM bem_events_by_buildings x JOIN buildings b ON b.id = x.building_id "
             "WHERE b.site_id = {0} UNION SELECT event_id FROM bem_events_by_storeys x JOIN storeys st "
             "ON st.id = x.storey_id JOIN buildings b ON b.id = st.building_id WHERE b.site_id = {0} "
             "UNION SELECT event_id FROM bem_events_by_spaces x JOIN spaces sp ON sp.id = x.space_id "
             "JOIN storeys st ON st.id = sp.storey_id JOIN buildings b ON b.id = st.building_id "
             "WHERE b.site_id = {0}"),
    "building": ("SELECT event_id FROM bem_events_by_storeys x JOIN storeys st ON st.id = x.storey_id "
                 "WHERE st.building_id = {0} UNION SELECT event_id FROM bem_events_by_spaces x JOIN spaces sp "
                 "ON sp.id = x.space_id JOIN storeys st ON st.id = sp.storey_id WHERE st.building_id = {0}"),
    "storey": ("SELECT event_id FROM bem_events_by_spaces x JOIN spaces sp ON sp.id = x.space_id "
               "WHERE sp.storey_id = {0}"),
}


def dump_event(row: Any, *, with_id: bool = True) -> dict[str, Any]:
    """An event as BEMServer's EventSchema dumps it (no null fields, the level by name)."""
    out: dict[str, Any] = {"campaign_scope_id": row["campaign_scope_id"], "category_id": row["category_id"],
                           "level": NAMES.get(row["level"], str(row["level"])),
                           "timestamp": row["timestamp"].isoformat(), "source": row["source"]}
    if with_id:
        out = {"id": row["id"], **out}
    if row["description"] is not None:
        out["description"] = row["description"]
    return out


def readable(access: Access, row: Any) -> bool:
    """An event is readable through its campaign or its campaign scope."""
    return access.series(row["_campaign"], row["campaign_scope_id"])


def sort_order(raw: str | None, allowed: tuple[str, ...], *, alias: str) -> str:
    """BEMServer's SortField: comma-separated fields, each optionally +/- (id breaks ties)."""
    if not raw:
        return f"{alias}id"
    parts = []
    for item in raw.split(","):
        name = item.strip().lstrip("+-")
        if name not in allowed:
            choices = ", ".join(v for f in allowed for v in (f, f"+{f}", f"-{f}"))
            raise HttpError(422, "", fields={"sort": [f"Must be one of: {choices}."]}, data={"location": "query"})
        parts.append(f"{alias}{name} DESC" if item.strip().startswith("-") else f"{alias}{name}")
    return ", ".join([*parts, f"{alias}id"])


async def event_filters(request: web.Request, query: dict[str, Any], access: Access) -> tuple[list[str], list[Any]]:
    """WHERE clauses (over `e` and `s`) for BEMServer's event query arguments and the caller's access."""
    for level in ("site", "building", "storey"):
        if query.get(f"{level}_id") is not None and query.get(f"recurse_{level}_id") is not None:
            raise HttpError(422, "", fields={"_schema": [f"{level}_id and recurse_{level}_id are mutually "
                                                         "exclusive arguments"]}, data={"location": "query"})
    clauses: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    for name, value in query.items():
        match name:
            case "sort":
                continue
            case "campaign_id":
                clauses.append(f"s.campaign_id = {arg(value)}")
            case "campaign_scope_id" | "category_id" | "source":
                clauses.append(f"e.{name} = {arg(value)}")
            case "in_source":
                clauses.append(f"e.source ILIKE {arg('%' + value + '%')}")
            case "level":
                clauses.append(f"e.level = {arg(LEVELS[value])}")
            case "level_min":
                clauses.append(f"e.level >= {arg(LEVELS[value])}")
            case "timestamp_min":
                clauses.append(f"e.timestamp >= {arg(value)}")
            case "timestamp_max":
                clauses.append(f"e.timestamp < {arg(value)}")
            case "timeseries_id":
                clauses.append("e.id IN (SELECT event_id FROM bem_timeseries_by_events "
                               f"WHERE timeseries_id = {arg(value)})")
            case "user_id":
                if value < 1:  # names no user (the gateway's 404 was a 500 here)
                    scopes = []
                elif access.user_id == value and not access.admin:
                    scopes = sorted(access.scopes)
                else:
                    scopes = await request.app[DIRECTORY].scopes_of_user(value)
                clauses.append(f"e.campaign_scope_id = ANY({arg(scopes)}::int[])")
            case _ if name.startswith("recurse_"):
                level = name.removeprefix("recurse_").removesuffix("_id")
                mark = arg(value)
                clauses.append(f"e.id IN (SELECT event_id FROM bem_events_by_{level}s WHERE {level}_id = {mark} "
                               f"UNION {_BELOW[level].format(mark)})")
            case _:
                level = name.removesuffix("_id")
                clauses.append(f"e.id IN (SELECT event_id FROM bem_events_by_{level}s WHERE {level}_id = {arg(value)})")
    if not access.admin:
        clauses.append(f"(s.campaign_id = ANY({arg(sorted(access.campaigns))}::int[]) "
                       f"OR e.campaign_scope_id = ANY({arg(sorted(access.scopes))}::int[]))")
    return clauses, args


@documented(summary="BEMServer's events (paginated)", query=smorest_query(EVENT_FILTERS, paginate=True),
            response=EVENT.many(), tags=("bemserver",))
async def list_events(request: web.Request) -> web.Response:
    """GET /events/ (paginated)."""
    access = access_of(request)
    query = load_query(request.query, EVENT_FILTERS, extra=("page", "page_size"))
    page, page_size = parse_page(request.query)
    order = sort_order(query.get("sort"), SORTABLE, alias="e.")
    clauses, args = await event_filters(request, query, access)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    async with pool_of(request).acquire() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM {EVENT_FROM}{where}", *args)
        rows = await conn.fetch(f"SELECT {EVENT_COLUMNS} FROM {EVENT_FROM}{where} ORDER BY {order} "
                                f"LIMIT {page_size} OFFSET {(page - 1) * page_size}", *args)
    return respond(request, [dump_event(r) for r in rows],
                   headers={"X-Pagination": pagination_header(total=int(total), page=page, page_size=page_size)})


async def _event(conn: asyncpg.Connection, ident: int, access: Access) -> asyncpg.Record:
    row = await conn.fetchrow(f"SELECT {EVENT_COLUMNS} FROM {EVENT_FROM} WHERE e.id = $1", ident)
    if row is None:
        raise not_found()
    if not readable(access, row):
        raise forbidden()
    return row


async def _check_refs(conn: asyncpg.Connection, body: dict[str, Any], access: Access) -> None:
    if "category_id" in body and not await conn.fetchval("SELECT 1 FROM bem_event_categories WHERE id = $1",
                                                         body["category_id"]):
        raise HttpError(409, "Foreign key constraint violation")
    if "campaign_scope_id" in body:
        campaign = await conn.fetchval("SELECT campaign_id FROM bem_campaign_scopes WHERE id = $1",
                                       body["campaign_scope_id"])
        if campaign is None:
            raise HttpError(409, "Foreign key constraint violation")
        if not access.series(campaign, body["campaign_scope_id"]):
            raise forbidden()


@documented(summary="Create an event (notifications and webhooks follow)", body=smorest_body(EVENT_CREATE),
            response=EVENT, status=201, tags=("bemserver",))
async def create_event(request: web.Request) -> web.Response:
    """POST /events/: the event and its fan-out (notifications, webhooks) in one transaction."""
    access = access_of(request)
    body = load_body(await read_json(request), EVENT_CREATE)
    async with pool_of(request).acquire() as conn, conn.transaction():
        await _check_refs(conn, body, access)
        ident = await record_event(conn, NewEvent(
            campaign_scope_id=body["campaign_scope_id"], category_id=body["category_id"],
            level=LEVELS[body["level"]], timestamp=body["timestamp"], source=body["source"],
            description=body["description"]))
        assert ident is not None  # no dedup key: always inserted
        row = await _event(conn, ident, access)
    return respond(request, dump_event(row), status=201)


@documented(summary="One event", response=EVENT, tags=("bemserver",))
async def get_event(request: web.Request) -> web.Response:
    """GET /events/{id}."""
    async with pool_of(request).acquire() as conn:
        return respond(request, dump_event(await _event(conn, path_id(request), access_of(request))))


@documented(summary="Change an event", body=smorest_body(EVENT_UPDATE), response=EVENT, headers=IF_MATCH,
            tags=("bemserver",))
async def update_event(request: web.Request) -> web.Response:
    """PUT /events/{id} (If-Match): category, level, source, description."""
    access = access_of(request)
    body = load_body(await read_json(request), EVENT_UPDATE)
    async with pool_of(request).acquire() as conn:
        current = await _event(conn, path_id(request), access)
        check_if_match(request, dump_event(current))
        await _check_refs(conn, body, access)
        await conn.execute("UPDATE bem_events SET category_id = $2, level = $3, source = $4, description = $5 "
                           "WHERE id = $1", current["id"], body["category_id"], LEVELS[body["level"]],
                           body["source"], body["description"])
        return respond(request, dump_event(await _event(conn, current["id"], access)))


@documented(summary="Delete an event", status=204, headers=IF_MATCH, tags=("bemserver",))
async def delete_event(request: web.Request) -> web.Response:
    """DELETE /events/{id} (If-Match); its links and notifications go with it."""
    access = access_of(request)
    async with pool_of(request).acquire() as conn:
        current = await _event(conn, path_id(request), access)
        check_if_match(request, dump_event(current))
        await conn.execute("DELETE FROM bem_events WHERE id = $1", current["id"])
    return web.Response(status=204)


# -- event categories: readable by all, changed by administrators

CATEGORY = {"name": Field("str", required=True, nullable=False, length=(1, 80)),
            "description": Field("str", length=(0, 250))}

CATEGORY_ITEM = smorest_item(["id", *CATEGORY], CATEGORY, name="bemserver_event_category")


def _category(row: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(row).items() if v is not None}


async def _one_category(conn: asyncpg.Connection, ident: int) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT id, name, description FROM bem_event_categories WHERE id = $1", ident)
    if row is None:
        raise not_found()
    return row


@documented(summary="Event categories", response=CATEGORY_ITEM.many(), tags=("bemserver",))
async def list_categories(request: web.Request) -> web.Response:
    """GET /event_categories/."""
    rows = await pool_of(request).fetch("SELECT id, name, description FROM bem_event_categories ORDER BY id")
    return respond(request, [_category(r) for r in rows])


@documented(summary="Create an event category", body=smorest_body(CATEGORY), response=CATEGORY_ITEM,
            status=201, tags=("bemserver",))
async def create_category(request: web.Request) -> web.Response:
    """POST /event_categories/ (administrators)."""
    access_of(request).write()
    body = load_body(await read_json(request), CATEGORY)
    try:
        row = await pool_of(request).fetchrow("INSERT INTO bem_event_categories (name, description) VALUES ($1, $2) "
                                              "RETURNING id, name, description", body["name"], body["description"])
    except asyncpg.UniqueViolationError:
        raise HttpError(409, "Unique constraint violation") from None
    return respond(request, _category(row), status=201)


@documented(summary="One event category", response=CATEGORY_ITEM, tags=("bemserver",))
async def get_category(request: web.Request) -> web.Response:
    """GET /event_categories/{id}."""
    async with pool_of(request).acquire() as conn:
        return respond(request, _category(await _one_category(conn, path_id(request))))


@documented(summary="Change an event category", body=smorest_body(CATEGORY), response=CATEGORY_ITEM,
            headers=IF_MATCH, tags=("bemserver",))
async def update_category(request: web.Request) -> web.Response:
    """PUT /event_categories/{id} (administrators, If-Match)."""
    access_of(request).write()
    body = load_body(await read_json(request), CATEGORY)
    async with pool_of(request).acquire() as conn:
        current = await _one_category(conn, path_id(request))
        check_if_match(request, _category(current))
        try:
            row = await conn.fetchrow("UPDATE bem_event_categories SET name = $2, description = $3 WHERE id = $1 "
                                      "RETURNING id, name, description", current["id"], body["name"],
                                      body["description"])
        except asyncpg.UniqueViolationError:
            raise HttpError(409, "Unique constraint violation") from None
    return respond(request, _category(row))


@documented(summary="Delete an event category (its events go with it)", status=204, headers=IF_MATCH,
            tags=("bemserver",))
async def delete_category(request: web.Request) -> web.Response:
    """DELETE /event_categories/{id} (administrators, If-Match; its events go with it, as in BEMServer)."""
    access_of(request).write()
    async with pool_of(request).acquire() as conn:
        current = await _one_category(conn, path_id(request))
        check_if_match(request, _category(current))
        await conn.execute("DELETE FROM bem_event_categories WHERE id = $1", current["id"])
    return web.Response(status=204)


# -- subscriptions (event_categories_by_users): each user's own

SUBSCRIPTION = {"user_id": REF, "category_id": REF, "notification_level": LEVEL}
SUBSCRIPTION_UPDATE = {"category_id": REF, "notification_level": LEVEL}
SUBSCRIPTION_FILTERS = {"category_id": Field("int"), "user_id": Field("int")}
SUBSCRIPTION_ITEM = smorest_item(["id", *SUBSCRIPTION], SUBSCRIPTION, name="bemserver_event_categories_by_user")


def _subscription(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "user_id": row["user_id"], "category_id": row["category_id"],
            "notification_level": NAMES.get(row["notification_level"], str(row["notification_level"]))}


def _own(access: Access, user_id: int) -> None:
    if not access.admin and access.user_id != user_id:
        raise forbidden()


async def _one_subscription(conn: asyncpg.Connection, ident: int, access: Access) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM bem_event_categories_by_users WHERE id = $1", ident)
    if row is None:
        raise not_found()
    _own(access, row["user_id"])
    return row


@documented(summary="Users' event-category subscriptions", query=smorest_query(SUBSCRIPTION_FILTERS),
            response=SUBSCRIPTION_ITEM.many(), tags=("bemserver",))
async def list_subscriptions(request: web.Request) -> web.Response:
    """GET /event_categories_by_users/: the caller's own (administrators: everyone's)."""
    access = access_of(request)
    query = load_query(request.query, SUBSCRIPTION_FILTERS)
    clauses = [f"{name} = ${i + 1}" for i, name in enumerate(query)]
    args = list(query.values())
    if not access.admin:
        args.append(access.user_id)
        clauses.append(f"user_id = ${len(args)}")
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    rows = await pool_of(request).fetch(f"SELECT * FROM bem_event_categories_by_users{where} ORDER BY id", *args)
    return respond(request, [_subscription(r) for r in rows])


@documented(summary="Subscribe a user to a category", body=smorest_body(SUBSCRIPTION),
            response=SUBSCRIPTION_ITEM, status=201, tags=("bemserver",))
async def create_subscription(request: web.Request) -> web.Response:
    """POST /event_categories_by_users/ (for oneself; administrators for anyone)."""
    access = access_of(request)
    body = load_body(await read_json(request), SUBSCRIPTION)
    _own(access, body["user_id"])
    async with pool_of(request).acquire() as conn:
        if not await conn.fetchval("SELECT 1 FROM bem_event_categories WHERE id = $1", body["category_id"]):
            raise HttpError(409, "Foreign key constraint violation")
        try:
            row = await conn.fetchrow(
                "INSERT INTO bem_event_categories_by_users (user_id, category_id, notification_level) "
                "VALUES ($1, $2, $3) RETURNING *", body["user_id"], body["category_id"],
                LEVELS[body["notification_level"]])
        except asyncpg.UniqueViolationError:
            raise HttpError(409, "Unique constraint violation") from None
    return respond(request, _subscription(row), status=201)


@documented(summary="One subscription", response=SUBSCRIPTION_ITEM, tags=("bemserver",))
async def get_subscription(request: web.Request) -> web.Response:
    """GET /event_categories_by_users/{id}."""
    async with pool_of(request).acquire() as conn:
        return respond(request, _subscription(await _one_subscription(conn, path_id(request), access_of(request))))


@documented(summary="Change a subscription", body=smorest_body(SUBSCRIPTION_UPDATE),
            response=SUBSCRIPTION_ITEM, headers=IF_MATCH, tags=("bemserver",))
async def update_subscription(request: web.Request) -> web.Response:
    """PUT /event_categories_by_users/{id} (If-Match): category and level."""
    access = access_of(request)
    body = load_body(await read_json(request), SUBSCRIPTION_UPDATE)
    async with pool_of(request).acquire() as conn:
        current = await _one_subscription(conn, path_id(request), access)
        check_if_match(request, _subscription(current))
        if not await conn.fetchval("SELECT 1 FROM bem_event_categories WHERE id = $1", body["category_id"]):
            raise HttpError(409, "Foreign key constraint violation")
        try:
            row = await conn.fetchrow("UPDATE bem_event_categories_by_users SET category_id = $2, "
                                      "notification_level = $3 WHERE id = $1 RETURNING *", current["id"],
                                      body["category_id"], LEVELS[body["notification_level"]])
        except asyncpg.UniqueViolationError:
            raise HttpError(409, "Unique constraint violation") from None
    return respond(request, _subscription(row))


@documented(summary="Delete a subscription", status=204, headers=IF_MATCH, tags=("bemserver",))
async def delete_subscription(request: web.Request) -> web.Response:
    """DELETE /event_categories_by_users/{id} (If-Match)."""
    access = access_of(request)
    async with pool_of(request).acquire() as conn:
        current = await _one_subscription(conn, path_id(request), access)
        check_if_match(request, _subscription(current))
        await conn.execute("DELETE FROM bem_event_categories_by_users WHERE id = $1", current["id"])
    return web.Response(status=204)


def add_event_routes(app: web.Application, prefix: str) -> None:
    """/events/, /event_categories/, /event_categories_by_users/."""
    add_collection_routes(app, f"{prefix}/events", lister=list_events, creator=create_event, getter=get_event,
                          updater=update_event, deleter=delete_event)
    add_collection_routes(app, f"{prefix}/event_categories", lister=list_categories, creator=create_category,
                          getter=get_category, updater=update_category, deleter=delete_category)
    add_collection_routes(app, f"{prefix}/event_categories_by_users", lister=list_subscriptions,
                          creator=create_subscription, getter=get_subscription, updater=update_subscription,
                          deleter=delete_subscription)
