"""Description attributes of an instance (seed 002's static attributes: a location, a serial
number): created and changed here (management API), read through seed 002 like any attribute.
Issue 12: the registry made only State and Stream attributes, from a product's measurepoints."""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from twinbill_common.apidocs import documented
from twinbill_common.errors import Conflict, NotFound
from twinbill_common.http import json_response
from twinbill_twin.api.common import path_id, read_model, run_change
from twinbill_twin.events import change

COLUMNS = "id, instance_id, name, displayname, attrtype, datatype, unit, value"


class DescriptionCreate(BaseModel):
    """A new Description attribute: a name unique in its instance, its text value."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\s/]+$")
    displayname: str = Field(default="", max_length=128)
    value: str = Field(default="", max_length=4096)
    unit: str = Field(default="", max_length=32)


class DescriptionUpdate(BaseModel):
    """A Description attribute's new text (and display name)."""

    model_config = ConfigDict(extra="forbid")
    value: str = Field(max_length=4096)
    displayname: str | None = Field(default=None, max_length=128)


def _events(action: str) -> Any:
    def build(row: dict[str, Any]) -> list[Any]:
        return [change("instance", "updated", row["instance_id"], data={"attribute": row["id"], "change": action})]
    return build


@documented(summary="Add a Description attribute to an instance", body=DescriptionCreate, status=201,
            tags=("management",))
async def create_description(request: web.Request) -> web.Response:
    """POST /api/v1/instances/{id}/descriptions -> 201 with the attribute."""
    instance_id = path_id(request)
    body = await read_model(request, DescriptionCreate)

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        if not await conn.fetchval("SELECT 1 FROM instances WHERE id = $1", instance_id):
            raise NotFound(f"instance {instance_id} not found")
        try:
            row = await conn.fetchrow(
                "INSERT INTO attributes (instance_id, name, displayname, attrtype, datatype, unit, value) "
                f"VALUES ($1, $2, $3, 'Description', 'String', $4, $5) RETURNING {COLUMNS}",
                instance_id, body.name, body.displayname, body.unit, body.value)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"instance {instance_id} already has an attribute named {body.name!r}") from None
        await conn.execute("UPDATE instances SET mtime = now() WHERE id = $1", instance_id)
        return dict(row)

    return json_response(await run_change(request, work, _events("created")), status=201)


@documented(summary="Change a Description attribute's text", body=DescriptionUpdate, tags=("management",))
async def update_description(request: web.Request) -> web.Response:
    """PUT /api/v1/descriptions/{id}: a Description attribute's value (others are not changed here)."""
    ident = path_id(request)
    body = await read_model(request, DescriptionUpdate)

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        row = await conn.fetchrow(
            "UPDATE attributes SET value = $2, displayname = coalesce($3, displayname), mtime = now() "
            f"WHERE id = $1 AND attrtype = 'Description' RETURNING {COLUMNS}", ident, body.value, body.displayname)
        if row is None:
            raise NotFound(f"Description attribute {ident} not found")
        return dict(row)

    return json_response(await run_change(request, work, _events("updated")))


@documented(summary="Delete a Description attribute", status=204, tags=("management",))
async def delete_description(request: web.Request) -> web.Response:
    """DELETE /api/v1/descriptions/{id} -> 204."""
    ident = path_id(request)

    async def work(conn: asyncpg.Connection) -> dict[str, Any]:
        row = await conn.fetchrow(f"DELETE FROM attributes WHERE id = $1 AND attrtype = 'Description' "
                                  f"RETURNING {COLUMNS}", ident)
        if row is None:
            raise NotFound(f"Description attribute {ident} not found")
        return dict(row)

    await run_change(request, work, _events("deleted"))
    return web.Response(status=204)


def add_description_routes(app: web.Application) -> None:
    """The Description attribute routes."""
    app.router.add_post("/api/v1/instances/{id}/descriptions", create_description)
    app.router.add_put("/api/v1/descriptions/{id}", update_description)
    app.router.add_delete("/api/v1/descriptions/{id}", delete_description)
