"""Management routes of the flat registry resources: projects and the site hierarchy (seed 001)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from twinbill_common.schemas import RegistryChanged
from twinbill_twin import schemas as s
from twinbill_twin.api.common import (
    changes,
    listed,
    one,
    parse_list_query,
    path_id,
    pool_of,
    read_model,
    run_change,
)
from twinbill_twin.events import change
from twinbill_twin.store import places
from twinbill_twin.store.places import Table


@dataclass(frozen=True)
class Resource:
    """A management resource: its URL name, table and schemas."""

    path: str
    table: Table
    create: type[BaseModel]
    update: type[BaseModel]
    read: type[BaseModel]


RESOURCES = (
    Resource("projects", places.PROJECTS, s.ProjectCreate, s.ProjectUpdate, s.ProjectRead),
    Resource("sites", places.SITES, s.SiteCreate, s.SiteUpdate, s.SiteRead),
    Resource("buildings", places.BUILDINGS, s.BuildingCreate, s.BuildingUpdate, s.BuildingRead),
    Resource("storeys", places.STOREYS, s.StoreyCreate, s.StoreyUpdate, s.StoreyRead),
    Resource("spaces", places.SPACES, s.SpaceCreate, s.SpaceUpdate, s.SpaceRead),
    Resource("zones", places.ZONES, s.ZoneCreate, s.ZoneUpdate, s.ZoneRead),
    Resource("residents", places.RESIDENTS, s.ResidentCreate, s.ResidentUpdate, s.ResidentRead),
)


def _events(resource: Resource, action: str) -> Any:
    def build(row: dict[str, Any]) -> list[RegistryChanged]:
        project = row["id"] if resource.table.name == "projects" else row.get("project_id")
        data = resource.read.model_validate(row).model_dump(mode="json")
        return [change(resource.table.entity, action, row["id"], project_id=project, data=data)]
    return build


def add_place_routes(app: web.Application) -> None:
    """GET/POST /api/v1/<resource>/ and GET/PUT/DELETE /api/v1/<resource>/{id}."""
    for resource in RESOURCES:
        base = f"/api/v1/{resource.path}"
        app.router.add_get(f"{base}/", _lister(resource))
        app.router.add_post(f"{base}/", _creator(resource))
        app.router.add_get(base + "/{id}", _getter(resource))
        app.router.add_put(base + "/{id}", _updater(resource))
        app.router.add_delete(base + "/{id}", _deleter(resource))


def _lister(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        page, size, filters = parse_list_query(request, resource.table.filters)
        async with pool_of(request).acquire() as conn:
            total, rows = await places.list_rows(conn, resource.table, filters, page=page, page_size=size)
        return listed(rows, resource.read, total=total, page=page, page_size=size)
    return handler


def _getter(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        async with pool_of(request).acquire() as conn:
            return one(await places.get_row(conn, resource.table, path_id(request)), resource.read)
    return handler


def _creator(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        values = (await read_model(request, resource.create)).model_dump()

        async def work(conn: asyncpg.Connection) -> dict[str, Any]:
            return await places.insert_row(conn, resource.table, values)

        row = await run_change(request, work, _events(resource, "created"))
        return one(row, resource.read, status=201)
    return handler


def _updater(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        ident = path_id(request)
        values = changes(await read_model(request, resource.update))

        async def work(conn: asyncpg.Connection) -> dict[str, Any]:
            return await places.update_row(conn, resource.table, ident, values)

        return one(await run_change(request, work, _events(resource, "updated")), resource.read)
    return handler


def _deleter(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        ident = path_id(request)

        async def work(conn: asyncpg.Connection) -> dict[str, Any]:
            return await places.delete_row(conn, resource.table, ident)

        await run_change(request, work, _events(resource, "deleted"))
        return web.Response(status=204)
    return handler
