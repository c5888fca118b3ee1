"""BEMServer's structure resources on the registry's own tables: campaigns (projects), campaign
scopes, sites, buildings, storeys, spaces, zones. Writes to registry tables go through the same
store functions (and registry events) as /api/v1/<resource>/, so both paths are one
implementation; BEMServer names map onto twinbill's (`campaign_id` is `project_id`, an absent
description or ifc_id is the registry's empty text)."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import IF_MATCH, JsonSchema, describe, smorest_body, smorest_item, smorest_query
from twinbill_common.errors import HttpError
from twinbill_common.http import read_json
from twinbill_common.smorest import (
    Field,
    add_collection_routes,
    check_if_match,
    forbidden,
    load_body,
    load_query,
    name_order,
    not_found,
    pagination_header,
    parse_page,
    path_id,
    respond,
)
from twinbill_twin.api import places as places_api
from twinbill_twin.api.common import pool_of, run_change
from twinbill_twin.bemserver.access import Access, access_of
from twinbill_twin.store import places
from twinbill_twin.store.places import Table


@cache
def timezones() -> tuple[str, ...]:
    """The IANA zones a campaign may use."""
    return tuple(sorted(zoneinfo.available_timezones()))


NAME = Field("str", required=True, nullable=False, length=(1, 80))
TEXT = Field("str", length=(0, 500))
REF = Field("int", required=True, nullable=False)
SORT = Field("str")


@dataclass(frozen=True)
class Resource:
    """One BEMServer collection over a table."""

    path: str
    table: str
    select: dict[str, str]            # BEMServer field -> SQL expression
    create: dict[str, Field]
    update: dict[str, Field]
    filters: dict[str, Field]
    campaign: str                     # SQL expression of a row's campaign
    registry: Table | None = None     # a registry table: written through store.places with events
    to_db: dict[str, str] = field(default_factory=dict)   # BEMServer field -> column
    paginate: bool = False
    # field -> value when a create leaves it out (a PUT that leaves it out keeps the stored one)
    defaults: dict[str, Any] = field(default_factory=dict)


def _place(extra: dict[str, str]) -> dict[str, str]:
    return {"id": "id", "name": "name", "description": "nullif(description, '')",
            "ifc_id": "nullif(ifc_id, '')", **extra}


# the registry's CHECKs (a coordinate past them was a 500)
LATITUDE, LONGITUDE = Field("number", bounds=(-90, 90)), Field("number", bounds=(-180, 180))
PLACE_FIELDS = {"name": NAME, "description": TEXT, "ifc_id": Field("str", length=(0, 80))}
PLACE_FILTERS = {"name": Field("str"), "campaign_id": Field("int"), "ifc_id": Field("str"), "sort": SORT}
CAMPAIGN_TABLE = Table("project", "projects", ("id", "name", "timezone", "description", "start_time", "end_time"),
                       filters={"name": str}, has_project=False)
CAMPAIGN_FIELDS = {"name": NAME, "description": TEXT, "start_time": Field("datetime"),
                   "end_time": Field("datetime"), "timezone": Field("choice", required=True, nullable=False)}

RESOURCES = (
    Resource("campaigns", "projects",
             {"id": "id", "name": "name", "description": "nullif(description, '')", "start_time": "start_time",
              "end_time": "end_time", "timezone": "timezone"},
             CAMPAIGN_FIELDS, CAMPAIGN_FIELDS, {"name": Field("str"), "in_name": Field("str"), "sort": SORT},
             campaign="id", registry=CAMPAIGN_TABLE),
    Resource("campaign_scopes", "bem_campaign_scopes",
             {"id": "id", "name": "name", "description": "description", "campaign_id": "campaign_id"},
             {"name": NAME, "description": TEXT, "campaign_id": REF}, {"name": NAME, "description": TEXT},
             {"name": Field("str"), "campaign_id": Field("int"), "sort": SORT}, campaign="campaign_id"),
    Resource("sites", "sites", _place({"campaign_id": "project_id", "latitude": "latitude",
                                       "longitude": "longitude"}),
             {**PLACE_FIELDS, "campaign_id": REF, "latitude": LATITUDE, "longitude": LONGITUDE},
             {**PLACE_FIELDS, "latitude": LATITUDE, "longitude": LONGITUDE},
             PLACE_FILTERS, campaign="project_id", registry=places.SITES, to_db={"campaign_id": "project_id"}),
    Resource("buildings", "buildings", _place({"site_id": "site_id"}), {**PLACE_FIELDS, "site_id": REF},
             PLACE_FIELDS, {**PLACE_FILTERS, "site_id": Field("int")}, campaign="project_id",
             registry=places.BUILDINGS),
    Resource("storeys", "storeys", _place({"building_id": "building_id"}), {**PLACE_FIELDS, "building_id": REF},
             PLACE_FIELDS, {**PLACE_FILTERS, "building_id": Field("int"), "site_id": Field("int")},
             campaign="project_id", registry=places.STOREYS),
    Resource("spaces", "spaces", _place({"storey_id": "storey_id"}), {**PLACE_FIELDS, "storey_id": REF},
             PLACE_FIELDS, {**PLACE_FILTERS, "storey_id": Field("int"), "building_id": Field("int"),
                            "site_id": Field("int")},
             campaign="project_id", registry=places.SPACES),
    Resource("zones", "zones", _place({"campaign_id": "project_id"}), {**PLACE_FIELDS, "campaign_id": REF},
             PLACE_FIELDS, PLACE_FILTERS, campaign="project_id", registry=places.ZONES,
             to_db={"campaign_id": "project_id"}),
)
# Filters that walk up the hierarchy (BEMServer's storeys?site_id=, spaces?building_id=).
PARENT_FILTERS = {
    ("storeys", "site_id"): "building_id IN (SELECT id FROM buildings WHERE site_id = {})",
    ("spaces", "building_id"): "storey_id IN (SELECT id FROM storeys WHERE building_id = {})",
    ("spaces", "site_id"): "storey_id IN (SELECT s.id FROM storeys s JOIN buildings b ON b.id = s.building_id "
                           "WHERE b.site_id = {})",
}
EVENTS = {r.table.name: r for r in places_api.RESOURCES}


def _select(resource: Resource) -> str:
    return ", ".join(f"{expr} AS {name}" for name, expr in resource.select.items()) + \
        f", {resource.campaign} AS _campaign"


def dump(row: Any) -> dict[str, Any]:
    """A row as BEMServer dumps it: no null fields, aware datetimes in ISO form."""
    out: dict[str, Any] = {}
    for name, value in dict(row).items():
        if name.startswith("_") or value is None:
            continue
        out[name] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


async def _fetch_one(conn: asyncpg.Connection, resource: Resource, ident: int) -> asyncpg.Record:
    row = await conn.fetchrow(f"SELECT {_select(resource)} FROM {resource.table} WHERE id = $1", ident)
    if row is None:
        raise not_found()
    return row


async def one_readable(conn: asyncpg.Connection, resource: Resource, ident: int, access: Access) -> asyncpg.Record:
    """The row, 404 when absent, 403 when its campaign is not the caller's."""
    row = await _fetch_one(conn, resource, ident)
    if not access.admin and row["_campaign"] not in access.campaigns and not (
            resource.path == "campaign_scopes" and row["id"] in access.scopes):
        raise forbidden()
    return row


def _lister(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        access = access_of(request)
        extra = ("page", "page_size") if resource.paginate else ()
        query = load_query(request.query, resource.filters, extra=extra)
        clauses: list[str] = []
        args: list[Any] = []
        for name, value in query.items():
            if name == "sort":
                continue
            args.append(f"%{value}%" if name == "in_name" else value)
            mark = f"${len(args)}"
            if name == "in_name":
                clauses.append(f"name ILIKE {mark}")
            elif (resource.path, name) in PARENT_FILTERS:
                clauses.append(PARENT_FILTERS[(resource.path, name)].format(mark))
            elif name == "campaign_id" and name not in resource.select:
                # buildings, storeys, spaces: their campaign is their project (no campaign_id field)
                clauses.append(f"{resource.campaign} = {mark}")
            else:
                clauses.append(f"{resource.select.get(name, name)} = {mark}")
        if not access.admin:
            args.append(sorted(access.campaigns))
            visible = f"{resource.campaign} = ANY(${len(args)}::int[])"
            if resource.path == "campaign_scopes":  # a scope given to the user's group is visible too
                args.append(sorted(access.scopes))
                visible = f"({visible} OR id = ANY(${len(args)}::int[]))"
            clauses.append(visible)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        sql = f"SELECT {_select(resource)} FROM {resource.table}{where} ORDER BY {name_order(query.get('sort'))}"
        rows = await pool_of(request).fetch(sql, *args)
        return respond(request, [dump(r) for r in rows])
    return describe(handler, summary=f"BEMServer's {resource.path}",
                    query=smorest_query(resource.filters, paginate=resource.paginate),
                    response=_item(resource).many(), tags=("bemserver",))


def _getter(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        async with pool_of(request).acquire() as conn:
            return respond(request, dump(await one_readable(conn, resource, path_id(request), access_of(request))))
    return describe(handler, summary=f"One of BEMServer's {resource.path}", response=_item(resource),
                    tags=("bemserver",))


def _db_values(resource: Resource, body: dict[str, Any], *, creating: bool = True) -> dict[str, Any]:
    values = {resource.to_db.get(k, k): v for k, v in body.items()}
    for name, default in resource.defaults.items():
        if values.get(name) is None:
            if creating:
                values[name] = default
            else:
                values.pop(name, None)
    if resource.registry is not None:
        for name in ("description", "ifc_id"):
            if name in values and values[name] is None:
                values[name] = ""
    return values


def _events(resource: Resource, action: str) -> Any:
    def build(row: dict[str, Any]) -> list[Any]:
        assert resource.registry is not None
        # the /api/v1 resource's own event shape: one implementation behind both paths
        events: list[Any] = places_api._events(EVENTS[resource.registry.name], action)(row)
        return events
    return build


def _load(resource: Resource, body: Any, fields: dict[str, Field]) -> dict[str, Any]:
    if resource.path == "campaigns":
        fields = {**fields, "timezone": Field("choice", required=True, nullable=False, choices=timezones())}
    return load_body(body, fields)


async def _check_campaign(conn: asyncpg.Connection, body: dict[str, Any]) -> None:
    if "campaign_id" in body and not await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", body["campaign_id"]):
        raise HttpError(409, "Foreign key constraint violation")


def _item(resource: Resource) -> JsonSchema:
    return smorest_item(resource.select, resource.create, resource.update, name=f"bemserver_{resource.path}")


def _body(resource: Resource, fields: dict[str, Field], verb: str) -> JsonSchema:
    if resource.path == "campaigns":
        fields = {**fields, "timezone": Field("choice", required=True, nullable=False, choices=timezones())}
    return smorest_body(fields, f"bemserver_{resource.path}_{verb}")


def _creator(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        access_of(request).write()
        body = _load(resource, await read_json(request), resource.create)
        values = _db_values(resource, body)
        registry = resource.registry
        if registry is not None:
            async def work(conn: asyncpg.Connection) -> dict[str, Any]:
                await _check_campaign(conn, body)
                return await places.insert_row(conn, registry, values)
            row = await run_change(request, work, _events(resource, "created"))
            ident = int(row["id"])
        else:
            async with pool_of(request).acquire() as conn:
                await _check_campaign(conn, body)
                names = list(values)
                marks = ", ".join(f"${i + 1}" for i in range(len(names)))
                try:
                    ident = await conn.fetchval(f"INSERT INTO {resource.table} ({', '.join(names)}) "
                                                f"VALUES ({marks}) RETURNING id", *values.values())
                except asyncpg.UniqueViolationError:
                    raise HttpError(409, "Unique constraint violation") from None
                except asyncpg.ForeignKeyViolationError:
                    raise HttpError(409, "Foreign key constraint violation") from None
        async with pool_of(request).acquire() as conn:
            return respond(request, dump(await _fetch_one(conn, resource, ident)), status=201)
    return describe(handler, summary=f"Create one of BEMServer's {resource.path}",
                    body=_body(resource, resource.create, "create"), response=_item(resource), status=201,
                    tags=("bemserver",))


def _updater(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        access = access_of(request)
        access.write()
        ident = path_id(request)
        body = _load(resource, await read_json(request), resource.update)
        async with pool_of(request).acquire() as conn:
            check_if_match(request, dump(await one_readable(conn, resource, ident, access)))
        values = _db_values(resource, body, creating=False)
        registry = resource.registry
        if registry is not None:
            async def work(conn: asyncpg.Connection) -> dict[str, Any]:
                return await places.update_row(conn, registry, ident, values)
            await run_change(request, work, _events(resource, "updated"))
        elif values:
            sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(values))
            try:
                await pool_of(request).execute(f"UPDATE {resource.table} SET {sets} WHERE id = $1",
                                               ident, *values.values())
            except asyncpg.UniqueViolationError:
                raise HttpError(409, "Unique constraint violation") from None
        async with pool_of(request).acquire() as conn:
            return respond(request, dump(await _fetch_one(conn, resource, ident)))
    return describe(handler, summary=f"Change one of BEMServer's {resource.path}",
                    body=_body(resource, resource.update, "update"), response=_item(resource), headers=IF_MATCH,
                    tags=("bemserver",))


def _deleter(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        access = access_of(request)
        access.write()
        ident = path_id(request)
        async with pool_of(request).acquire() as conn:
            check_if_match(request, dump(await one_readable(conn, resource, ident, access)))
        registry = resource.registry
        if registry is not None:
            async def work(conn: asyncpg.Connection) -> dict[str, Any]:
                return await places.delete_row(conn, registry, ident)
            await run_change(request, work, _events(resource, "deleted"))
        else:
            try:
                await pool_of(request).execute(f"DELETE FROM {resource.table} WHERE id = $1", ident)
            except asyncpg.ForeignKeyViolationError:
                raise HttpError(409, "Foreign key constraint violation") from None
        return web.Response(status=204)
    return describe(handler, summary=f"Delete one of BEMServer's {resource.path}", status=204, headers=IF_MATCH,
                    tags=("bemserver",))


def add_resource_routes(app: web.Application, prefix: str) -> None:
    """GET/POST `/<resource>/`, GET/PUT/DELETE `/<resource>/{id}` for each structure resource."""
    for resource in RESOURCES:
        add_collection_routes(app, f"{prefix}/{resource.path}", lister=_lister(resource), creator=_creator(resource),
                              getter=_getter(resource), updater=_updater(resource), deleter=_deleter(resource))


__all__ = ["RESOURCES", "Resource", "add_resource_routes", "dump", "one_readable", "pagination_header", "parse_page"]
