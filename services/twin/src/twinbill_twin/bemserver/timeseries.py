"""BEMServer's /timeseries/ and /timeseries_data_states/: a series is a device attribute (its
Raw data are the MQTT points, its unit the thing model's) or a free series (manual readings,
weather, computed energy); both keep their points in the twin's one sample store."""

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
    name_order,
    not_found,
    pagination_header,
    parse_page,
    path_id,
    respond,
)
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver.access import Access, access_of
from twinbill_twin.bemserver.resources import NAME, TEXT, dump
from twinbill_twin.store.samples import SERIES_TABLES

# BEMServer's data states; twinbill keeps Raw and Clean (ids as BEMServer numbers them).
DATA_STATES = ({"id": 1, "name": "Raw"}, {"id": 2, "name": "Clean"})
SELECT = ("id, name, description, unit_symbol, campaign_id, campaign_scope_id, attribute_id, "
          "raw_key, clean_key")
UNIT = Field("str", length=(0, 80))
CREATE = {"name": NAME, "description": TEXT, "unit_symbol": UNIT, "campaign_id": Field("int", required=True,
          nullable=False), "campaign_scope_id": Field("int", required=True, nullable=False),
          "attribute_id": Field("int")}
UPDATE = {"name": NAME, "description": TEXT, "unit_symbol": UNIT}
FILTERS = {"name": Field("str"), "in_name": Field("str"), "unit_symbol": Field("str"), "campaign_id": Field("int"),
           "campaign_scope_id": Field("int"), "attribute_id": Field("int"), "sort": Field("str"),
           **{f"{level}_id": Field("int") for level in ("site", "building", "storey", "space", "zone")},
           **{f"recurse_{level}_id": Field("int") for level in ("site", "building", "storey")}}
ITEM = smorest_item(["id", *CREATE], CREATE, name="bemserver_timeseries")
STATE = JsonSchema({"type": "object", "required": ["id", "name"],
                    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}, "bemserver_data_state")
_LINKED = "id IN (SELECT timeseries_id FROM bem_timeseries_by_{level}s WHERE {level}_id = {mark})"
# recurse_<level>_id: linked to the element or to anything below it
_BELOW = {
    "site": ("sites", "id = {m}"), "building": ("buildings", "site_id = {m}"),
    "storey": ("storeys", "building_id IN (SELECT id FROM buildings WHERE site_id = {m})"),
    "space": ("spaces", "storey_id IN (SELECT s.id FROM storeys s JOIN buildings b ON b.id = s.building_id "
                        "WHERE b.site_id = {m})"),
}
_RECURSE = {"site": ("site", "building", "storey", "space"), "building": ("building", "storey", "space"),
            "storey": ("storey", "space")}
_UNDER = {  # how a lower level is reached from a building or a storey
    ("building", "building"): "id = {m}", ("building", "storey"): "building_id = {m}",
    ("building", "space"): "storey_id IN (SELECT id FROM storeys WHERE building_id = {m})",
    ("storey", "storey"): "id = {m}", ("storey", "space"): "storey_id = {m}",
}


def _structure_filter(name: str, mark: str) -> str:
    """SQL selecting the series linked to an element (or, recurse_, to it and what it holds)."""
    if not name.startswith("recurse_"):
        return _LINKED.format(level=name.removesuffix("_id"), mark=mark)
    top = name.removeprefix("recurse_").removesuffix("_id")
    parts = []
    for level in _RECURSE[top]:
        where = _BELOW[level][1] if top == "site" else _UNDER[(top, level)]
        parts.append(f"SELECT l.timeseries_id FROM bem_timeseries_by_{level}s l JOIN {level}s e "
                     f"ON e.id = l.{level}_id WHERE e.{where.format(m=mark)}")
    return "id IN (" + " UNION ".join(parts) + ")"
NEW_KEY = "nextval(pg_get_serial_sequence('attributes', 'id'))"


def public(row: Any) -> dict[str, Any]:
    """A series as BEMServer shows it; `attribute_id` (twinbill's) names the device attribute."""
    data = dump(row)
    data.pop("raw_key", None)
    data.pop("clean_key", None)
    data.setdefault("unit_symbol", "")
    return data


async def readable(conn: asyncpg.Connection, ident: int, access: Access) -> asyncpg.Record:
    """One series: 404 when absent, 403 when neither its campaign nor its scope is the caller's."""
    row = await conn.fetchrow(f"SELECT {SELECT} FROM bem_timeseries WHERE id = $1", ident)
    if row is None:
        raise not_found()
    if not access.series(row["campaign_id"], row["campaign_scope_id"]):
        raise forbidden()
    return row


@documented(summary="BEMServer's timeseries (paginated)", query=smorest_query(FILTERS, paginate=True),
            response=ITEM.many(), tags=("bemserver",))
async def list_timeseries(request: web.Request) -> web.Response:
    """GET /timeseries/ (paginated, X-Pagination)."""
    access = access_of(request)
    query = load_query(request.query, FILTERS, extra=("page", "page_size"))
    page, page_size = parse_page(request.query)
    clauses: list[str] = []
    args: list[Any] = []
    for name, value in query.items():
        if name == "sort":
            continue
        args.append(f"%{value}%" if name == "in_name" else value)
        if name == "in_name":
            clauses.append(f"name ILIKE ${len(args)}")
        elif name.endswith("_id") and name.removeprefix("recurse_").removesuffix("_id") in \
                ("site", "building", "storey", "space", "zone"):
            clauses.append(_structure_filter(name, f"${len(args)}"))
        else:
            clauses.append(f"{name} = ${len(args)}")
    if not access.admin:
        args.extend([sorted(access.campaigns), sorted(access.scopes)])
        clauses.append(f"(campaign_id = ANY(${len(args) - 1}::int[]) OR campaign_scope_id = ANY(${len(args)}::int[]))")
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    order = name_order(query.get("sort"))
    async with pool_of(request).acquire() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM bem_timeseries{where}", *args)
        rows = await conn.fetch(f"SELECT {SELECT} FROM bem_timeseries{where} ORDER BY {order} "
                                f"LIMIT {page_size} OFFSET {(page - 1) * page_size}", *args)
    return respond(request, [public(r) for r in rows],
                   headers={"X-Pagination": pagination_header(total=int(total), page=page, page_size=page_size)})


@documented(summary="One timeseries", response=ITEM, tags=("bemserver",))
async def get_timeseries(request: web.Request) -> web.Response:
    """GET /timeseries/{id}."""
    async with pool_of(request).acquire() as conn:
        return respond(request, public(await readable(conn, path_id(request), access_of(request))))


@documented(summary="Create a timeseries (free, or a device attribute's)", body=smorest_body(CREATE),
            response=ITEM, status=201, tags=("bemserver",))
async def create_timeseries(request: web.Request) -> web.Response:
    """POST /timeseries/: a free series, or (`attribute_id`) a device attribute's series whose
    Raw data are that attribute's samples and whose unit defaults to the thing model's."""
    access_of(request).write()
    body = load_body(await read_json(request), CREATE)
    async with pool_of(request).acquire() as conn, conn.transaction():
        scope = await conn.fetchval("SELECT campaign_id FROM bem_campaign_scopes WHERE id = $1",
                                    body["campaign_scope_id"])
        if scope is None or not await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", body["campaign_id"]):
            raise HttpError(409, "Foreign key constraint violation")
        if scope != body["campaign_id"]:
            raise HttpError(422, "", fields={"campaign_scope_id": ["Campaign scope is not of this campaign."]})
        raw_key = NEW_KEY
        unit = body["unit_symbol"]
        args: list[Any] = [body["name"], body["description"], body["campaign_id"], body["campaign_scope_id"]]
        if body["attribute_id"] is not None:
            attribute = await conn.fetchrow(
                "SELECT a.unit, d.project_id FROM attributes a JOIN instances i ON i.id = a.instance_id "
                "JOIN devices d ON d.id = i.device_id WHERE a.id = $1", body["attribute_id"])
            if attribute is None or attribute["project_id"] != body["campaign_id"]:
                raise HttpError(422, "", fields={"attribute_id": ["No such device attribute in this campaign."]})
            unit = unit or attribute["unit"]
            args.append(body["attribute_id"])
            raw_key = f"${len(args)}"
        args.append(unit or "")
        try:
            row = await conn.fetchrow(
                "INSERT INTO bem_timeseries (name, description, campaign_id, campaign_scope_id, attribute_id, "
                f"raw_key, clean_key, unit_symbol) VALUES ($1, $2, $3, $4, "
                f"{'$5' if body['attribute_id'] is not None else 'NULL'}, {raw_key}, {NEW_KEY}, ${len(args)}) "
                f"RETURNING {SELECT}", *args)
        except asyncpg.UniqueViolationError:
            raise HttpError(409, "Unique constraint violation") from None
    return respond(request, public(row), status=201)


@documented(summary="Change a timeseries", body=smorest_body(UPDATE), response=ITEM, headers=IF_MATCH,
            tags=("bemserver",))
async def update_timeseries(request: web.Request) -> web.Response:
    """PUT /timeseries/{id}: name, description, unit (If-Match)."""
    access = access_of(request)
    access.write()
    ident = path_id(request)
    body = load_body(await read_json(request), UPDATE)
    async with pool_of(request).acquire() as conn:
        check_if_match(request, public(await readable(conn, ident, access)))
        try:
            row = await conn.fetchrow(
                f"UPDATE bem_timeseries SET name = $2, description = $3, unit_symbol = coalesce($4, '') "
                f"WHERE id = $1 RETURNING {SELECT}", ident, body["name"], body["description"], body["unit_symbol"])
        except asyncpg.UniqueViolationError:
            raise HttpError(409, "Unique constraint violation") from None
    return respond(request, public(row))


@documented(summary="Delete a timeseries", status=204, headers=IF_MATCH, tags=("bemserver",))
async def delete_timeseries(request: web.Request) -> web.Response:
    """DELETE /timeseries/{id} (If-Match): the definition, and the points only it holds (a device
    attribute's Raw points stay with the attribute)."""
    access = access_of(request)
    access.write()
    ident = path_id(request)
    async with pool_of(request).acquire() as conn, conn.transaction():
        row = await readable(conn, ident, access)
        check_if_match(request, public(row))
        keys = [row["clean_key"]] if row["attribute_id"] is not None else [row["raw_key"], row["clean_key"]]
        for table in SERIES_TABLES:
            await conn.execute(f"DELETE FROM {table} WHERE attribute_id = ANY($1::bigint[])", keys)
        await conn.execute("DELETE FROM bem_timeseries WHERE id = $1", ident)
    return web.Response(status=204)


@documented(summary="BEMServer's data states", response=STATE.many(), tags=("bemserver",))
async def list_data_states(request: web.Request) -> web.Response:
    """GET /timeseries_data_states/."""
    return respond(request, list(DATA_STATES))


@documented(summary="One data state", response=STATE, tags=("bemserver",))
async def get_data_state(request: web.Request) -> web.Response:
    """GET /timeseries_data_states/{id}."""
    for state in DATA_STATES:
        if str(state["id"]) == request.match_info["id"]:
            return respond(request, state)
    raise not_found()


def add_timeseries_routes(app: web.Application, prefix: str) -> None:
    """The series definitions and the data states."""
    app.router.add_get(f"{prefix}/timeseries/", list_timeseries)
    app.router.add_post(f"{prefix}/timeseries/", create_timeseries)
    app.router.add_get(prefix + "/timeseries/{id}", get_timeseries)
    app.router.add_put(prefix + "/timeseries/{id}", update_timeseries)
    app.router.add_delete(prefix + "/timeseries/{id}", delete_timeseries)
    app.router.add_get(f"{prefix}/timeseries_data_states/", list_data_states)
    app.router.add_get(prefix + "/timeseries_data_states/{id}", get_data_state)
