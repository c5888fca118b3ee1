"""Shared request plumbing of the management API: list queries, bodies, changes with events."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from twinbill_common.apidocs import JsonSchema, describe
from twinbill_common.errors import ValidationFailed
from twinbill_common.http import json_response, parse_model, read_json
from twinbill_common.paging import INT32_MAX, Errors, parse_int, query_page, smorest_pagination
from twinbill_common.schemas import RegistryChanged
from twinbill_twin.events import enqueue
from twinbill_twin.keys import OUTBOX, POOL

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Row = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.Response]]
ListRows = Callable[..., Awaitable[tuple[int, list[Row]]]]  # (conn, filters, *, page, page_size)
RowById = Callable[[asyncpg.Connection, int], Awaitable[Row]]
Events = Callable[[Row], list[RegistryChanged]]
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
# Columns a client may set to null on update; every other column refuses null.
NULLABLE = frozenset({"latitude", "longitude", "zone_id", "gateway_id", "space_id", "device_type",
                      "water_meter_kind", "register_max", "billing_register"})


def pool_of(request: web.Request) -> asyncpg.Pool:
    """The app's PostgreSQL pool."""
    return request.app[POOL]


def parse_list_query(request: web.Request, filters: Mapping[str, type | range]) -> tuple[int, int, dict[str, Any]]:
    """page, page_size and filters from the query string; 422 names each bad or unknown parameter."""
    errors: Errors = {}
    window = query_page(request.query, errors=errors, default_size=DEFAULT_PAGE_SIZE,
                        max_size=MAX_PAGE_SIZE)
    chosen: dict[str, Any] = {}
    for name, raw in request.query.items():
        kind = filters.get(name)
        if name in ("page", "page_size"):
            continue
        if kind is None:
            errors.setdefault(name, []).append("Unknown field.")
        elif kind is int or isinstance(kind, range):
            low, high = (kind.start, kind.stop - 1) if isinstance(kind, range) else (1, INT32_MAX)
            try:
                chosen[name] = parse_int(raw, minimum=low, maximum=high)
            except ValueError as err:
                errors.setdefault(name, []).append(str(err))
        elif kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                errors.setdefault(name, []).append("Not a valid boolean.")
            chosen[name] = raw.lower() in ("true", "1")
        else:
            chosen[name] = raw
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    return window.page, window.page_size, chosen


INT32 = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
_FILTER_SCHEMAS: dict[type, dict[str, Any]] = {
    int: INT32, bool: {"type": "string", "enum": ["true", "false", "1", "0"]}, str: {"type": "string"}}


def filters_query(filters: Mapping[str, type | range], *,
                  enums: dict[str, tuple[str, ...]] | None = None) -> JsonSchema:
    """The query parameters `parse_list_query` takes with these filters (and the values a handler
    then allows of some), as JSON Schema."""
    properties: dict[str, Any] = {
        "page": {**INT32, "description": "page number, from 1"},
        "page_size": {**INT32, "maximum": MAX_PAGE_SIZE,
                      "description": f"rows a page, {DEFAULT_PAGE_SIZE} unless given"}}
    for name, kind in filters.items():
        schema = ({**INT32, "minimum": kind.start, "maximum": kind.stop - 1} if isinstance(kind, range)
                  else _FILTER_SCHEMAS.get(kind, {"type": "string"}))
        properties[name] = {**schema,
                            "description": f"only rows with this {name}"}
        if enums and name in enums:
            properties[name]["enum"] = list(enums[name])
    return JsonSchema({"type": "object", "properties": properties})


def path_id(request: web.Request) -> int:
    """The {id} of the path as an integer (404 when it cannot name a row)."""
    try:
        return parse_int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(reason=f"no such id {request.match_info['id']!r}") from None


async def read_model(request: web.Request, model: type[M]) -> M:
    """The JSON body validated into a model (422 naming every bad field)."""
    return parse_model(model, await read_json(request))


def changes(model: BaseModel) -> dict[str, Any]:
    """Fields the client set, refusing null where the column cannot be null."""
    values = model.model_dump(exclude_unset=True)
    bad = {name: ["Field may not be null."] for name, value in values.items()
           if value is None and name not in NULLABLE}
    if bad:
        raise ValidationFailed(bad)
    return values


def listed(rows: list[dict[str, Any]], read: type[BaseModel], *, total: int, page: int,
           page_size: int) -> web.Response:
    """A JSON list with flask-smorest's X-Pagination header."""
    header = smorest_pagination(total=total, page=page, page_size=page_size)
    return json_response([read.model_validate(row).model_dump(mode="json") for row in rows],
                         headers={"X-Pagination": json.dumps(header)})


def one(row: dict[str, Any], read: type[BaseModel], *, status: int = 200) -> web.Response:
    """One entity as read."""
    return json_response(read.model_validate(row).model_dump(mode="json"), status=status)


async def run_change(request: web.Request, work: Callable[[asyncpg.Connection], Awaitable[T]],
                     events: Callable[[T], list[RegistryChanged]]) -> T:
    """Run a change in one transaction with its events in the outbox; publish them after commit."""
    async with pool_of(request).acquire() as conn, conn.transaction():
        result = await work(conn)
        await enqueue(conn, events(result))
    await request.app[OUTBOX].flush_quietly()
    return result


def list_handler(fetch: ListRows, *, filters: Mapping[str, type | range], read: type[BaseModel]) -> Handler:
    """GET of a collection: the page and filters asked for, X-Pagination as flask-smorest writes it."""
    async def handler(request: web.Request) -> web.Response:
        page, size, chosen = parse_list_query(request, filters)
        async with pool_of(request).acquire() as conn:
            total, rows = await fetch(conn, chosen, page=page, page_size=size)
        return listed(rows, read, total=total, page=page, page_size=size)
    return describe(handler, summary=f"A page of {read.__name__.removesuffix('Read').lower()}s (X-Pagination)",
                    query=filters_query(filters), response=list[read],  # type: ignore[valid-type]
                    tags=("management",))


def get_handler(fetch: RowById, *, read: type[BaseModel]) -> Handler:
    """GET of one item by its path id (404 when there is none)."""
    async def handler(request: web.Request) -> web.Response:
        async with pool_of(request).acquire() as conn:
            return one(await fetch(conn, path_id(request)), read)
    return describe(handler, summary=f"One {read.__name__.removesuffix('Read').lower()}", response=read,
                    tags=("management",))


def delete_handler(remove: RowById, *, events: Events) -> Handler:
    """DELETE of one item by its path id, with its events; 204."""
    async def handler(request: web.Request) -> web.Response:
        ident = path_id(request)

        async def work(conn: asyncpg.Connection) -> Row:
            return await remove(conn, ident)

        await run_change(request, work, events)
        return web.Response(status=204)
    return describe(handler, summary="Delete one item", status=204, tags=("management",))
