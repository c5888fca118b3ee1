"""Management routes of the flat registry resources: projects and the site hierarchy (seed 001)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel

from twinbill_common.apidocs import describe
from twinbill_common.schemas import RegistryChanged
from twinbill_twin import schemas as s
from twinbill_twin.api.common import (
    changes,
    delete_handler,
    get_handler,
    list_handler,
    one,
    path_id,
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

    async def list_rows(self, conn: asyncpg.Connection, filters: dict[str, Any], *, page: int,
                        page_size: int) -> tuple[int, list[dict[str, Any]]]:
        """A page of the table's rows."""
        return await places.list_rows(conn, self.table, filters, page=page, page_size=page_size)

    async def get_row(self, conn: asyncpg.Connection, ident: int) -> dict[str, Any]:
        """One row (404 when absent)."""
        return await places.get_row(conn, self.table, ident)

    async def delete_row(self, conn: asyncpg.Connection, ident: int) -> dict[str, Any]:
        """Delete one row, returning it (404 when absent)."""
        return await places.delete_row(conn, self.table, ident)


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
        app.router.add_get(f"{base}/", list_handler(resource.list_rows, filters=resource.table.filters,
                                                    read=resource.read))
        app.router.add_post(f"{base}/", _creator(resource))
        app.router.add_get(base + "/{id}", get_handler(resource.get_row, read=resource.read))
        app.router.add_put(base + "/{id}", _updater(resource))
        app.router.add_delete(base + "/{id}", delete_handler(resource.delete_row,
                                                             events=_events(resource, "deleted")))


def _creator(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        values = (await read_model(request, resource.create)).model_dump()

        async def work(conn: asyncpg.Connection) -> dict[str, Any]:
            return await places.insert_row(conn, resource.table, values)

        row = await run_change(request, work, _events(resource, "created"))
        return one(row, resource.read, status=201)
    return describe(handler, summary=f"Create a {resource.table.entity}", body=resource.create,
                    response=resource.read, status=201, tags=("management",))


def _updater(resource: Resource) -> Any:
    async def handler(request: web.Request) -> web.Response:
        ident = path_id(request)
        values = changes(await read_model(request, resource.update))

        async def work(conn: asyncpg.Connection) -> dict[str, Any]:
            return await places.update_row(conn, resource.table, ident, values)

        return one(await run_change(request, work, _events(resource, "updated")), resource.read)
    return describe(handler, summary=f"Change a {resource.table.entity} (the fields given)", body=resource.update,
                    response=resource.read, tags=("management",))

