"""BEMServer's links of events: events_by_sites ... events_by_zones (the place in the event's
campaign) and timeseries_by_events (the series in the event's campaign scope). Read and written
by whoever reads the event; listed with pages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import JsonSchema, describe, smorest_body, smorest_query
from twinbill_common.errors import HttpError, ValidationFailed
from twinbill_common.http import read_json
from twinbill_common.smorest import (
    Field,
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
from twinbill_twin.bemserver.events import dump_event, readable

REF = Field("int", required=True, nullable=False)
_PLACE_EXTRA = {"site": "'campaign_id', x.project_id, 'latitude', x.latitude, 'longitude', x.longitude",
                "building": "'site_id', x.site_id", "storey": "'building_id', x.building_id",
                "space": "'storey_id', x.storey_id", "zone": "'campaign_id', x.project_id"}


@dataclass(frozen=True)
class Link:
    """One link collection: its table, the other side, and how that side is checked and nested."""

    path: str
    table: str
    other: str            # the other id's field: site_id, ..., timeseries_id
    other_table: str
    nested: str           # jsonb SQL of the other side (over `x`)
    name: str             # the nested field's name
    same: str             # SQL (over `x` and the event's `s`) true when the link is allowed
    same_error: str


def _links() -> tuple[Link, ...]:
    found = []
    for level, extra in _PLACE_EXTRA.items():
        found.append(Link(
            f"events_by_{level}s", f"bem_events_by_{level}s", f"{level}_id", f"{level}s",
            f"jsonb_strip_nulls(jsonb_build_object('name', x.name, 'description', nullif(x.description, ''), "
            f"'ifc_id', nullif(x.ifc_id, ''), {extra}))", level, "x.project_id = s.campaign_id",
            f"Event and {level} must be in same campaign"))
    found.append(Link(
        "timeseries_by_events", "bem_timeseries_by_events", "timeseries_id", "bem_timeseries",
        "jsonb_strip_nulls(jsonb_build_object('name', x.name, 'description', x.description, 'unit_symbol', "
        "x.unit_symbol, 'campaign_id', x.campaign_id, 'campaign_scope_id', x.campaign_scope_id))",
        "timeseries", "x.campaign_scope_id = e.campaign_scope_id",
        "Event and timeseries must be in same campaign scope"))
    return tuple(found)


LINKS = _links()


def _select(link: Link) -> str:
    return (f"SELECT t.id, t.event_id, t.{link.other}, {link.nested} AS nested, e.id AS e_id, e.campaign_scope_id, "
            "e.category_id, e.level, e.timestamp, e.source, e.description, s.campaign_id AS _campaign "
            f"FROM {link.table} t JOIN {link.other_table} x ON x.id = t.{link.other} "
            "JOIN bem_events e ON e.id = t.event_id JOIN bem_campaign_scopes s ON s.id = e.campaign_scope_id")


def _dump(link: Link, row: Any) -> dict[str, Any]:
    out = {"id": row["id"], "event_id": row["event_id"], link.other: row[link.other],
           link.name: json.loads(row["nested"]) if isinstance(row["nested"], str) else row["nested"]}
    if link.path == "timeseries_by_events":
        out["event"] = dump_event(row, with_id=False)
    return out


async def _one(conn: asyncpg.Connection, link: Link, ident: int, access: Access) -> asyncpg.Record:
    row = await conn.fetchrow(f"{_select(link)} WHERE t.id = $1", ident)
    if row is None:
        raise not_found()
    if not readable(access, row):
        raise forbidden()
    return row


def _item(link: Link) -> JsonSchema:
    schema: dict[str, Any] = {"type": "object", "required": ["id", "event_id", link.other, link.name], "properties": {
        "id": {"type": "integer"}, "event_id": {"type": "integer"}, link.other: {"type": "integer"},
        link.name: {"type": "object"}}}
    if link.path == "timeseries_by_events":
        schema["properties"]["event"] = {"type": "object"}
    return JsonSchema(schema, f"bemserver_{link.path}")


def _lister(link: Link) -> Any:
    filters = {"event_id": Field("int"), link.other: Field("int")}

    async def handler(request: web.Request) -> web.Response:
        access = access_of(request)
        query = load_query(request.query, filters, extra=("page", "page_size"))
        page, page_size = parse_page(request.query)
        clauses = [f"t.{name} = ${i + 1}" for i, name in enumerate(query)]
        args: list[Any] = list(query.values())
        if not access.admin:
            args += [sorted(access.campaigns), sorted(access.scopes)]
            clauses.append(f"(s.campaign_id = ANY(${len(args) - 1}::int[]) "
                           f"OR e.campaign_scope_id = ANY(${len(args)}::int[]))")
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        base = _select(link) + where
        async with pool_of(request).acquire() as conn:
            total = await conn.fetchval(f"SELECT count(*) FROM ({base}) q", *args)
            rows = await conn.fetch(f"{base} ORDER BY t.id LIMIT {page_size} OFFSET {(page - 1) * page_size}", *args)
        return respond(request, [_dump(link, r) for r in rows],
                       headers={"X-Pagination": pagination_header(total=int(total), page=page, page_size=page_size)})
    return describe(handler, summary=f"BEMServer's {link.path}", query=smorest_query(filters, paginate=True),
                    response=_item(link).many(), tags=("bemserver",))


def _creator(link: Link) -> Any:
    fields = {"event_id": REF, link.other: REF}

    async def handler(request: web.Request) -> web.Response:
        access = access_of(request)
        body = load_body(await read_json(request), fields)
        async with pool_of(request).acquire() as conn:
            event = await conn.fetchrow("SELECT e.*, s.campaign_id AS _campaign FROM bem_events e "
                                        "JOIN bem_campaign_scopes s ON s.id = e.campaign_scope_id WHERE e.id = $1",
                                        body["event_id"])
            if event is None or not await conn.fetchval(f"SELECT 1 FROM {link.other_table} WHERE id = $1",
                                                         body[link.other]):
                raise HttpError(409, "Foreign key constraint violation")
            if not readable(access, event):
                raise forbidden()
            same = await conn.fetchval(
                f"SELECT {link.same} FROM {link.other_table} x, bem_events e JOIN bem_campaign_scopes s "
                "ON s.id = e.campaign_scope_id WHERE x.id = $1 AND e.id = $2", body[link.other], body["event_id"])
            if not same:
                raise ValidationFailed({"_schema": [link.same_error]})
            try:
                ident = await conn.fetchval(f"INSERT INTO {link.table} (event_id, {link.other}) VALUES ($1, $2) "
                                            "RETURNING id", body["event_id"], body[link.other])
            except asyncpg.UniqueViolationError:
                raise HttpError(409, "Unique constraint violation") from None
            return respond(request, _dump(link, await _one(conn, link, ident, access)), status=201)
    return describe(handler, summary=f"Create one of BEMServer's {link.path}",
                    body=smorest_body(fields, f"bemserver_{link.path}_create"), response=_item(link), status=201,
                    tags=("bemserver",))


def _getter(link: Link) -> Any:
    async def handler(request: web.Request) -> web.Response:
        async with pool_of(request).acquire() as conn:
            return respond(request, _dump(link, await _one(conn, link, path_id(request), access_of(request))))
    return describe(handler, summary=f"One of BEMServer's {link.path}", response=_item(link), tags=("bemserver",))


def _deleter(link: Link) -> Any:
    async def handler(request: web.Request) -> web.Response:
        async with pool_of(request).acquire() as conn:
            current = await _one(conn, link, path_id(request), access_of(request))
            await conn.execute(f"DELETE FROM {link.table} WHERE id = $1", current["id"])
        return web.Response(status=204)
    return describe(handler, summary=f"Delete one of BEMServer's {link.path}", status=204, tags=("bemserver",))


def add_event_link_routes(app: web.Application, prefix: str) -> None:
    """GET/POST `/<link>/`, GET/DELETE `/<link>/{id}` (no PUT, as in BEMServer)."""
    for link in LINKS:
        base = f"{prefix}/{link.path}"
        app.router.add_get(f"{base}/", _lister(link))
        app.router.add_post(f"{base}/", _creator(link))
        app.router.add_get(base + "/{id}", _getter(link))
        app.router.add_delete(base + "/{id}", _deleter(link))
