"""Shared request plumbing of the management API: list queries, bodies, changes with events."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from twinbill_common.errors import ValidationFailed
from twinbill_common.http import json_response, parse_model, read_json
from twinbill_common.schemas import RegistryChanged
from twinbill_twin.domain.paging import smorest_pagination
from twinbill_twin.events import OUTBOX, enqueue

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
POOL_KEY = "pool"
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 1000
# Columns a client may set to null on update; every other column refuses null.
NULLABLE = frozenset({"latitude", "longitude", "zone_id", "gateway_id", "space_id", "device_type",
                      "water_meter_kind", "register_max", "billing_register"})


def pool_of(request: web.Request) -> asyncpg.Pool:
    """The app's PostgreSQL pool."""
    from twinbill_twin.app import POOL  # app.py imports this package's routes at build time

    return request.app[POOL]


def _int(value: str, *, minimum: int = 1, maximum: int = 2**31 - 1) -> int:
    number = int(value)
    if not minimum <= number <= maximum:
        raise ValueError
    return number


def parse_list_query(request: web.Request, filters: dict[str, type]) -> tuple[int, int, dict[str, Any]]:
    """page, page_size and filters from the query string; 422 names each bad or unknown parameter."""
    errors: dict[str, list[str]] = {}
    page, page_size = 1, DEFAULT_PAGE_SIZE
    chosen: dict[str, Any] = {}
    for name, raw in request.query.items():
        try:
            if name == "page":
                page = _int(raw)
            elif name == "page_size":
                page_size = _int(raw, maximum=MAX_PAGE_SIZE)
            elif name in filters:
                kind = filters[name]
                if kind is bool:
                    if raw.lower() not in ("true", "false", "1", "0"):
                        raise ValueError
                    chosen[name] = raw.lower() in ("true", "1")
                else:
                    chosen[name] = _int(raw) if kind is int else raw
            else:
                errors.setdefault(name, []).append("Unknown field.")
        except ValueError:
            bound = f" between 1 and {MAX_PAGE_SIZE}" if name == "page_size" else ""
            errors.setdefault(name, []).append(f"Not a valid {kind_name(filters.get(name, int))}{bound}.")
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    return page, page_size, chosen


def kind_name(kind: type) -> str:
    """How a query parameter's type is named in an error."""
    return {int: "integer", bool: "boolean"}.get(kind, "string")


def path_id(request: web.Request) -> int:
    """The {id} of the path as an integer (404 when it cannot name a row)."""
    try:
        return _int(request.match_info["id"])
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
