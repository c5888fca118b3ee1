"""BEMServer's notifications (bemserver-api 0.27): each user's own, with the event nested,
`count_by_campaign` and `mark_all_as_read`. The notifier creates them (twinbill_twin.notifier);
a user reads, marks read and counts their own; administrators see everyone's."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import IF_MATCH, JsonSchema, documented, smorest_body, smorest_item, smorest_query
from twinbill_common.errors import HttpError
from twinbill_common.http import read_json
from twinbill_common.smorest import (
    Field,
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
from twinbill_twin.bemserver.events import dump_event, sort_order

SELECT = ("SELECT n.id, n.user_id, n.event_id, n.timestamp AS n_timestamp, n.read, e.campaign_scope_id, "
          "e.category_id, e.level, e.timestamp, e.source, e.description, s.campaign_id AS _campaign "
          "FROM bem_notifications n JOIN bem_events e ON e.id = n.event_id "
          "JOIN bem_campaign_scopes s ON s.id = e.campaign_scope_id")
FILTERS = {"sort": Field("str"), "user_id": Field("int"), "event_id": Field("int"), "campaign_id": Field("int"),
           "timestamp_min": Field("datetime"), "timestamp_max": Field("datetime"), "read": Field("bool")}
REF = Field("int", required=True, nullable=False)
CREATE = {"user_id": REF, "event_id": REF,
          "timestamp": Field("datetime", required=True, nullable=False), "read": Field("bool")}
UPDATE = {"read": Field("bool")}

_ITEM = smorest_item(["id", *CREATE], CREATE).schema
ITEM = JsonSchema({**_ITEM, "properties": {**_ITEM["properties"], "event": {"type": "object"}}},
                  "bemserver_notification")
COUNT_QUERY = {"user_id": Field("int", required=True), "read": Field("bool")}
MARK_QUERY = {"user_id": Field("int", required=True), "campaign_id": Field("int")}
COUNTS = JsonSchema({"type": "object", "required": ["total", "campaigns"], "properties": {
    "total": {"type": "integer"}, "campaigns": {"type": "array", "items": {"type": "object"}}}},
    "bemserver_notification_counts")

def dump_notification(row: Any) -> dict[str, Any]:
    """NotificationSchema: id, user_id, event_id, timestamp, read, and the event without its id."""
    return {"id": row["id"], "user_id": row["user_id"], "event_id": row["event_id"],
            "timestamp": row["n_timestamp"].isoformat(), "read": row["read"],
            "event": dump_event(row, with_id=False)}


def _mine(access: Access, user_id: int) -> None:
    if not access.admin and access.user_id != user_id:
        raise forbidden()


async def _one(conn: asyncpg.Connection, ident: int, access: Access) -> asyncpg.Record:
    row = await conn.fetchrow(f"{SELECT} WHERE n.id = $1", ident)
    if row is None:
        raise not_found()
    _mine(access, row["user_id"])
    return row


@documented(summary="The caller's notifications (paginated)", query=smorest_query(FILTERS, paginate=True),
            response=ITEM.many(), tags=("bemserver",))
async def list_notifications(request: web.Request) -> web.Response:
    """GET /notifications/ (paginated): the caller's own."""
    access = access_of(request)
    query = load_query(request.query, FILTERS, extra=("page", "page_size"))
    page, page_size = parse_page(request.query)
    order = sort_order(query.pop("sort", None), ("timestamp",), alias="n.")
    clauses: list[str] = []
    args: list[Any] = []
    columns = {"user_id": "n.user_id", "event_id": "n.event_id", "campaign_id": "s.campaign_id", "read": "n.read"}
    for name, value in query.items():
        args.append(value)
        if name in columns:
            clauses.append(f"{columns[name]} = ${len(args)}")
        else:
            clauses.append(f"n.timestamp {'>=' if name == 'timestamp_min' else '<'} ${len(args)}")
    if not access.admin:
        args.append(access.user_id)
        clauses.append(f"n.user_id = ${len(args)}")
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    async with pool_of(request).acquire() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM ({SELECT}{where}) q", *args)
        rows = await conn.fetch(f"{SELECT}{where} ORDER BY {order} LIMIT {page_size} OFFSET {(page - 1) * page_size}",
                                *args)
    return respond(request, [dump_notification(r) for r in rows],
                   headers={"X-Pagination": pagination_header(total=int(total), page=page, page_size=page_size)})


@documented(summary="Create a notification (administrators)", body=smorest_body(CREATE), response=ITEM,
            status=201, tags=("bemserver",))
async def create_notification(request: web.Request) -> web.Response:
    """POST /notifications/ (administrators, as in BEMServer: users get theirs from the notifier)."""
    access_of(request).write()
    body = load_body(await read_json(request), CREATE)
    async with pool_of(request).acquire() as conn:
        if not await conn.fetchval("SELECT 1 FROM bem_events WHERE id = $1", body["event_id"]):
            raise HttpError(409, "Foreign key constraint violation")
        try:
            ident = await conn.fetchval("INSERT INTO bem_notifications (user_id, event_id, timestamp, read) "
                                        "VALUES ($1, $2, $3, $4) RETURNING id", body["user_id"], body["event_id"],
                                        body["timestamp"], bool(body["read"]))
        except asyncpg.UniqueViolationError:
            raise HttpError(409, "Unique constraint violation") from None
        return respond(request, dump_notification(await _one(conn, ident, access_of(request))), status=201)


@documented(summary="One notification", response=ITEM, tags=("bemserver",))
async def get_notification(request: web.Request) -> web.Response:
    """GET /notifications/{id}."""
    async with pool_of(request).acquire() as conn:
        return respond(request, dump_notification(await _one(conn, path_id(request), access_of(request))))


@documented(summary="Mark a notification read or unread", body=smorest_body(UPDATE), response=ITEM, tags=("bemserver",))
async def update_notification(request: web.Request) -> web.Response:
    """PUT /notifications/{id}: `read` only (BEMServer checks no ETag here)."""
    access = access_of(request)
    body = load_body(await read_json(request), UPDATE)
    async with pool_of(request).acquire() as conn:
        current = await _one(conn, path_id(request), access)
        if body["read"] is not None:
            await conn.execute("UPDATE bem_notifications SET read = $2 WHERE id = $1", current["id"], body["read"])
        return respond(request, dump_notification(await _one(conn, current["id"], access)))


@documented(summary="Delete a notification (administrators)", status=204, headers=IF_MATCH, tags=("bemserver",))
async def delete_notification(request: web.Request) -> web.Response:
    """DELETE /notifications/{id} (administrators)."""
    access = access_of(request)
    access.write()
    async with pool_of(request).acquire() as conn:
        current = await _one(conn, path_id(request), access)
        if request.headers.get("If-Match") is not None:
            check_if_match(request, dump_notification(current))
        await conn.execute("DELETE FROM bem_notifications WHERE id = $1", current["id"])
    return web.Response(status=204)


@documented(summary="Notifications per campaign, and the total", query=smorest_query(COUNT_QUERY),
            response=COUNTS, tags=("bemserver",))
async def count_by_campaign(request: web.Request) -> web.Response:
    """GET /notifications/count_by_campaign?user_id=[&read=]: per campaign, and the total."""
    access = access_of(request)
    query = load_query(request.query, COUNT_QUERY)
    if "user_id" not in query:
        raise HttpError(422, "", fields={"user_id": ["Missing data for required field."]}, data={"location": "query"})
    _mine(access, query["user_id"])
    args: list[Any] = [query["user_id"]]
    read = ""
    if "read" in query:
        args.append(query["read"])
        read = " AND n.read = $2"
    rows = await pool_of(request).fetch(
        "SELECT p.id AS campaign_id, p.name AS campaign_name, count(*) AS count FROM bem_notifications n "
        "JOIN bem_events e ON e.id = n.event_id JOIN bem_campaign_scopes s ON s.id = e.campaign_scope_id "
        f"JOIN projects p ON p.id = s.campaign_id WHERE n.user_id = $1{read} GROUP BY p.id ORDER BY p.id", *args)
    campaigns = [dict(r) for r in rows]
    return respond(request, {"total": sum(c["count"] for c in campaigns), "campaigns": campaigns})


@documented(summary="Mark a user's notifications read (of one campaign)", query=smorest_query(MARK_QUERY),
            status=204, tags=("bemserver",))
async def mark_all_as_read(request: web.Request) -> web.Response:
    """PUT /notifications/mark_all_as_read?user_id=[&campaign_id=]."""
    access = access_of(request)
    query = load_query(request.query, MARK_QUERY)
    if "user_id" not in query:
        raise HttpError(422, "", fields={"user_id": ["Missing data for required field."]}, data={"location": "query"})
    _mine(access, query["user_id"])
    campaign = ""
    args: list[Any] = [query["user_id"]]
    if "campaign_id" in query:
        args.append(query["campaign_id"])
        campaign = (" AND event_id IN (SELECT e.id FROM bem_events e JOIN bem_campaign_scopes s "
                    "ON s.id = e.campaign_scope_id WHERE s.campaign_id = $2)")
    await pool_of(request).execute(f"UPDATE bem_notifications SET read = true WHERE user_id = $1{campaign}", *args)
    return web.Response(status=204)


def add_notification_routes(app: web.Application, prefix: str) -> None:
    """/notifications/ and its two actions (registered before /{id})."""
    base = f"{prefix}/notifications"
    app.router.add_get(f"{base}/count_by_campaign", count_by_campaign)
    app.router.add_put(f"{base}/mark_all_as_read", mark_all_as_read)
    app.router.add_get(f"{base}/", list_notifications)
    app.router.add_post(f"{base}/", create_notification)
    app.router.add_get(base + "/{id}", get_notification)
    app.router.add_put(base + "/{id}", update_notification)
    app.router.add_delete(base + "/{id}", delete_notification)
