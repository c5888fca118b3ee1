"""Which projects' twins a seed-002 request may see (issue 12): the gateway names the caller's
projects in `X-Twinbill-Projects` for non-administrators (and always drops the header a client
sends); without it the request is an administrator's or comes from inside the platform."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from twinbill_twin.store.instances import INSTANCE_IN_PROJECTS

PROJECTS_HEADER = "X-Twinbill-Projects"


def visible_projects(request: web.Request) -> list[int] | None:
    """The projects the caller may see, or None for all."""
    raw = request.headers.get(PROJECTS_HEADER)
    if raw is None:
        return None
    return sorted({int(part) for part in raw.split(",") if part.strip().isdigit()})


async def instances_visible(conn: asyncpg.Connection, projects: list[int] | None, ids: list[int]) -> set[int]:
    """Those of `ids` the caller may see."""
    if projects is None:
        return set(ids)
    rows = await conn.fetch("SELECT i.id FROM instances i WHERE i.id = ANY($1::bigint[]) AND "
                            + INSTANCE_IN_PROJECTS.format("$2"), ids, projects)
    return {row["id"] for row in rows}


async def attribute_visible(conn: asyncpg.Connection, projects: list[int] | None, attribute_id: int) -> bool:
    """Whether the caller may see the attribute (its instance's device is in one of the projects)."""
    if projects is None:
        return True
    return bool(await conn.fetchval(
        "SELECT 1 FROM attributes a JOIN instances i ON i.id = a.instance_id WHERE a.id = $1 AND "
        + INSTANCE_IN_PROJECTS.format("$2"), attribute_id, projects))
