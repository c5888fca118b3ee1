"""BEMServer's properties and links: structural-element properties, the properties each level
(site ... zone) uses and their values per element, time-series properties and their values, and
time series linked to sites, buildings, storeys, spaces and zones. Definitions are readable by
every user; values and links by those who read the element's campaign or the series."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import IF_MATCH, JsonSchema, describe, smorest_body, smorest_item, smorest_query
from twinbill_common.errors import HttpError, ValidationFailed
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
    path_id,
    respond,
)
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver.access import Access, access_of
from twinbill_twin.bemserver.resources import NAME, TEXT

LEVELS = ("site", "building", "storey", "space", "zone")
VALUE_TYPES = ("integer", "float", "boolean", "string")
REF = Field("int", required=True, nullable=False)
VALUE = Field("str", required=True, nullable=False, length=(0, 100))
_DEFINITION = ("jsonb_strip_nulls(jsonb_build_object('name', p.name, 'description', p.description, "
               "'value_type', p.value_type, 'unit_symbol', p.unit_symbol))")
_PLACE_EXTRA = {"site": "'campaign_id', e.project_id, 'latitude', e.latitude, 'longitude', e.longitude",
                "building": "'site_id', e.site_id", "storey": "'building_id', e.building_id",
                "space": "'storey_id', e.storey_id", "zone": "'campaign_id', e.project_id"}
_SERIES = "(SELECT {col} FROM bem_timeseries s WHERE s.id = t.timeseries_id)"


@dataclass(frozen=True)
class Linked:
    """One properties-or-links collection."""

    path: str
    table: str
    fields: dict[str, Field]
    update: dict[str, Field] | None
    filters: dict[str, Field]
    campaign: str | None = None          # SQL (over `t`) of the row's campaign; None: a definition
    scope: str | None = None             # SQL of the series' campaign scope (series rows)
    nested: dict[str, str] = field(default_factory=dict)   # name -> jsonb SQL over `t`
    refs: dict[str, str] = field(default_factory=dict)     # field -> table the id must exist in
    value_type: str | None = None        # SQL giving the value type of the property named by $1
    value_ref: str = ""                  # the field naming that property
    same_campaign: tuple[str, str] | None = None  # (field, table): must share the series' campaign


def _definition(path: str, table: str) -> Linked:
    body = {"name": NAME, "description": TEXT, "value_type": Field("choice", choices=VALUE_TYPES),
            "unit_symbol": Field("str", length=(0, 20))}
    update = {k: v for k, v in body.items() if k != "value_type"}
    return Linked(path, table, body, update, {"name": Field("str"), "value_type": Field("choice", choices=VALUE_TYPES),
                                              "unit_symbol": Field("str"), "sort": Field("str")})


def _collections() -> tuple[Linked, ...]:
    found = [_definition("structural_element_properties", "bem_se_properties"),
             _definition("timeseries_properties", "bem_ts_properties"),
             Linked("timeseries_property_data", "bem_ts_property_data",
                    {"timeseries_id": REF, "property_id": REF, "value": VALUE}, {"value": VALUE},
                    {"timeseries_id": Field("int"), "property_id": Field("int")},
                    campaign=_SERIES.format(col="campaign_id"), scope=_SERIES.format(col="campaign_scope_id"),
                    refs={"timeseries_id": "bem_timeseries", "property_id": "bem_ts_properties"},
                    value_type="SELECT value_type FROM bem_ts_properties WHERE id = $1", value_ref="property_id")]
    for level in LEVELS:
        place = f"(SELECT project_id FROM {level}s e WHERE e.id = t.{level}_id)"
        found.append(Linked(
            f"{level}_properties", f"bem_{level}_properties", {"structural_element_property_id": REF}, None,
            {"structural_element_property_id": Field("int")},
            nested={"structural_element_property": f"(SELECT {_DEFINITION} FROM bem_se_properties p "
                                                   "WHERE p.id = t.structural_element_property_id)"},
            refs={"structural_element_property_id": "bem_se_properties"}))
        found.append(Linked(
            f"{level}_property_data", f"bem_{level}_property_data",
            {f"{level}_id": REF, f"{level}_property_id": REF, "value": VALUE}, {"value": VALUE},
            {f"{level}_id": Field("int"), f"{level}_property_id": Field("int")}, campaign=place,
            nested={f"{level}_property": (
                "(SELECT jsonb_build_object('structural_element_property_id', lp.structural_element_property_id, "
                f"'structural_element_property', {_DEFINITION}) FROM bem_{level}_properties lp "
                f"JOIN bem_se_properties p ON p.id = lp.structural_element_property_id "
                f"WHERE lp.id = t.{level}_property_id)")},
            refs={f"{level}_id": f"{level}s", f"{level}_property_id": f"bem_{level}_properties"},
            value_type=(f"SELECT p.value_type FROM bem_{level}_properties lp JOIN bem_se_properties p "
                        "ON p.id = lp.structural_element_property_id WHERE lp.id = $1"),
            value_ref=f"{level}_property_id"))
        found.append(Linked(
            f"timeseries_by_{level}s", f"bem_timeseries_by_{level}s", {"timeseries_id": REF, f"{level}_id": REF},
            None, {"timeseries_id": Field("int"), f"{level}_id": Field("int")},
            campaign=_SERIES.format(col="campaign_id"), scope=_SERIES.format(col="campaign_scope_id"),
            nested={level: ("(SELECT jsonb_strip_nulls(jsonb_build_object('name', e.name, 'description', "
                            "nullif(e.description, ''), 'ifc_id', nullif(e.ifc_id, ''), "
                            f"{_PLACE_EXTRA[level]})) FROM {level}s e WHERE e.id = t.{level}_id)")},
            refs={"timeseries_id": "bem_timeseries", f"{level}_id": f"{level}s"},
            same_campaign=(f"{level}_id", f"{level}s")))
    return tuple(found)


COLLECTIONS = _collections()


def _select(item: Linked) -> str:
    extra = "".join(f", {sql} AS {name}" for name, sql in item.nested.items())
    if item.campaign:
        extra += f", {item.campaign} AS _campaign"
    if item.scope:
        extra += f", {item.scope} AS _scope"
    return f"SELECT t.*{extra} FROM {item.table} t"


def _dump(item: Linked, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in dict(row).items():
        if name.startswith("_") or value is None:
            continue
        out[name] = json.loads(value) if name in item.nested and isinstance(value, str) else value
    return out


def _readable(item: Linked, row: Any, access: Access) -> bool:
    if access.admin or item.campaign is None:
        return True
    if item.scope is not None:
        return access.series(row["_campaign"], row["_scope"])
    return row["_campaign"] in access.campaigns


def _verify(value_type: str, value: str) -> bool:
    """BEMServer's PropertyType.verify: booleans are exactly true/false; numbers must parse."""
    if value_type == "boolean":
        return value in ("true", "false")
    try:
        {"integer": int, "float": float}.get(value_type, str)(value)
    except ValueError:
        return False
    return True


async def _one(conn: asyncpg.Connection, item: Linked, request: web.Request, access: Access) -> asyncpg.Record:
    row = await conn.fetchrow(f"{_select(item)} WHERE t.id = $1", path_id(request))
    if row is None:
        raise not_found()
    if not _readable(item, row, access):
        raise forbidden()
    return row


async def _checks(conn: asyncpg.Connection, item: Linked, body: dict[str, Any], *, current: Any = None) -> None:
    for name, table in item.refs.items():
        if name in body and not await conn.fetchval(f"SELECT 1 FROM {table} WHERE id = $1", body[name]):
            raise HttpError(409, "Foreign key constraint violation")
    if item.value_type and "value" in body:
        prop = body.get(item.value_ref, current[item.value_ref] if current is not None else None)
        kind = await conn.fetchval(item.value_type, prop)
        if kind is not None and not _verify(kind, body["value"]):
            raise ValidationFailed({"value": ["Invalid type."]})
    if item.same_campaign:
        name, table = item.same_campaign
        same = await conn.fetchval(
            f"SELECT e.project_id = s.campaign_id FROM {table} e, bem_timeseries s WHERE e.id = $1 AND s.id = $2",
            body[name], body["timeseries_id"])
        if same is False:
            raise ValidationFailed({name: ["Not in the campaign of the timeseries."]})


def _item(item: Linked) -> JsonSchema:
    schema = smorest_item(["id", *item.fields], item.fields, item.update or {}).schema
    for name in item.nested:
        schema["properties"][name] = {"type": "object"}
    return JsonSchema(schema, f"bemserver_{item.path}")


def _lister(item: Linked) -> Any:
    async def handler(request: web.Request) -> web.Response:
        access = access_of(request)
        query = load_query(request.query, item.filters)
        clauses, args = [], []
        for name, value in query.items():
            if name != "sort":
                args.append(value)
                clauses.append(f"t.{name} = ${len(args)}")
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        order = name_order(query.get("sort"), alias="t.")
        rows = await pool_of(request).fetch(f"{_select(item)}{where} ORDER BY {order}", *args)
        return respond(request, [_dump(item, r) for r in rows if _readable(item, r, access)])
    return describe(handler, summary=f"BEMServer's {item.path}", query=smorest_query(item.filters),
                    response=_item(item).many(), tags=("bemserver",))


def _getter(item: Linked) -> Any:
    async def handler(request: web.Request) -> web.Response:
        async with pool_of(request).acquire() as conn:
            return respond(request, _dump(item, await _one(conn, item, request, access_of(request))))
    return describe(handler, summary=f"One of BEMServer's {item.path}", response=_item(item), tags=("bemserver",))


def _creator(item: Linked) -> Any:
    async def handler(request: web.Request) -> web.Response:
        access_of(request).write()
        body = load_body(await read_json(request), item.fields)
        if "value_type" in body and body["value_type"] is None:
            body["value_type"] = "string"
        async with pool_of(request).acquire() as conn:
            await _checks(conn, item, body)
            names = list(body)
            marks = ", ".join(f"${i + 1}" for i in range(len(names)))
            try:
                ident = await conn.fetchval(f"INSERT INTO {item.table} ({', '.join(names)}) VALUES ({marks}) "
                                            "RETURNING id", *body.values())
            except asyncpg.UniqueViolationError:
                raise HttpError(409, "Unique constraint violation") from None
            row = await conn.fetchrow(f"{_select(item)} WHERE t.id = $1", ident)
        return respond(request, _dump(item, row), status=201)
    return describe(handler, summary=f"Create one of BEMServer's {item.path}",
                    body=smorest_body(item.fields, f"bemserver_{item.path}_create"), response=_item(item),
                    status=201, tags=("bemserver",))


def _updater(item: Linked, fields: dict[str, Field]) -> Any:
    async def handler(request: web.Request) -> web.Response:
        access = access_of(request)
        access.write()
        body = load_body(await read_json(request), fields)
        async with pool_of(request).acquire() as conn:
            current = await _one(conn, item, request, access)
            check_if_match(request, _dump(item, current))
            await _checks(conn, item, body, current=current)
            sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(body))
            try:
                await conn.execute(f"UPDATE {item.table} SET {sets} WHERE id = $1", current["id"], *body.values())
            except asyncpg.UniqueViolationError:
                raise HttpError(409, "Unique constraint violation") from None
            row = await conn.fetchrow(f"{_select(item)} WHERE t.id = $1", current["id"])
        return respond(request, _dump(item, row))
    return describe(handler, summary=f"Change one of BEMServer's {item.path}",
                    body=smorest_body(fields, f"bemserver_{item.path}_update"), response=_item(item),
                    headers=IF_MATCH, tags=("bemserver",))


def _deleter(item: Linked) -> Any:
    async def handler(request: web.Request) -> web.Response:
        access = access_of(request)
        access.write()
        async with pool_of(request).acquire() as conn:
            current = await _one(conn, item, request, access)
            check_if_match(request, _dump(item, current))
            await conn.execute(f"DELETE FROM {item.table} WHERE id = $1", current["id"])
        return web.Response(status=204)
    return describe(handler, summary=f"Delete one of BEMServer's {item.path}", status=204, headers=IF_MATCH,
                    tags=("bemserver",))


def add_property_routes(app: web.Application, prefix: str) -> None:
    """GET/POST `/<collection>/`, GET/DELETE (PUT where BEMServer has it) `/<collection>/{id}`."""
    add_linked_routes(app, prefix, COLLECTIONS)


def add_linked_routes(app: web.Application, prefix: str, items: tuple[Linked, ...]) -> None:
    """The routes of link-or-property collections (shared with the energy and weather links)."""
    for item in items:
        updater = _updater(item, item.update) if item.update is not None else None
        add_collection_routes(app, f"{prefix}/{item.path}", lister=_lister(item), creator=_creator(item),
                              getter=_getter(item), updater=updater, deleter=_deleter(item))
