"""Generic storage for the flat registry tables: projects and the site hierarchy with residents."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from twinbill_twin.errors import bad_field, conflict, not_found


@dataclass(frozen=True)
class Table:
    """A registry table: its columns, how its project is found, and what may filter a list."""

    entity: str                       # event entity name ("site")
    name: str                         # SQL table
    columns: tuple[str, ...]          # read columns (id first)
    parent: tuple[str, str] | None = None     # (foreign key field, parent table) giving project_id
    references: dict[str, str] = field(default_factory=dict)  # other FK field -> table (same project)
    filters: dict[str, type] = field(default_factory=dict)
    has_project: bool = True


def _select(table: Table) -> str:
    return ", ".join(table.columns)


async def get_row(conn: asyncpg.Connection, table: Table, ident: int) -> dict[str, Any]:
    """One row by id, or 404."""
    row = await conn.fetchrow(f"SELECT {_select(table)} FROM {table.name} WHERE id = $1", ident)
    if row is None:
        raise not_found(table.entity, ident)
    return dict(row)


def _where(table: Table, filters: dict[str, Any]) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    for name, value in filters.items():
        args.append(value)
        if name == "name":
            clauses.append(f"strpos(lower(name), lower(${len(args)})) > 0")
        else:
            clauses.append(f"{name} = ${len(args)}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


async def list_rows(conn: asyncpg.Connection, table: Table, filters: dict[str, Any], *,
                    page: int, page_size: int) -> tuple[int, list[dict[str, Any]]]:
    """A page of rows in id order and the total matching."""
    where, args = _where(table, filters)
    total = await conn.fetchval(f"SELECT count(*) FROM {table.name}{where}", *args)
    rows = await conn.fetch(
        f"SELECT {_select(table)} FROM {table.name}{where} ORDER BY id "
        f"LIMIT {page_size} OFFSET {(page - 1) * page_size}", *args)
    return int(total), [dict(row) for row in rows]


async def _project_of(conn: asyncpg.Connection, table: Table, values: dict[str, Any]) -> int | None:
    if not table.has_project:
        return None
    if table.parent is None:
        project_id = values["project_id"]
        if not await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", project_id):
            raise bad_field("project_id", f"project {project_id} does not exist")
        return int(project_id)
    key, parent = table.parent
    project_id = await conn.fetchval(f"SELECT project_id FROM {parent} WHERE id = $1", values[key])
    if project_id is None:
        raise bad_field(key, f"{parent.rstrip('s')} {values[key]} does not exist")
    return int(project_id)


async def _check_references(conn: asyncpg.Connection, table: Table, values: dict[str, Any],
                            project_id: int | None) -> None:
    for key, other in table.references.items():
        if values.get(key) is None:
            continue
        owner = await conn.fetchval(f"SELECT project_id FROM {other} WHERE id = $1", values[key])
        if owner is None:
            raise bad_field(key, f"{other.rstrip('s')} {values[key]} does not exist")
        if owner != project_id:
            raise bad_field(key, f"{other.rstrip('s')} {values[key]} belongs to another project")


def _duplicate(table: Table, err: asyncpg.UniqueViolationError) -> Exception:
    """409 naming the fields that must be unique (PostgreSQL's own text stays out of the answer)."""
    found = re.match(r"Key \(([^)]*)\)=", err.detail or "")
    fields = f" (same {found.group(1)})" if found else ""
    return conflict(f"a {table.entity} with these values already exists{fields}")


async def insert_row(conn: asyncpg.Connection, table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a row (project taken from the parent) and return it as read."""
    project_id = await _project_of(conn, table, values)
    await _check_references(conn, table, values, project_id)
    if table.has_project:
        values = {**values, "project_id": project_id}
    names = list(values)
    marks = ", ".join(f"${i + 1}" for i in range(len(names)))
    try:
        row = await conn.fetchrow(
            f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks}) "
            f"RETURNING {_select(table)}", *values.values())
    except asyncpg.UniqueViolationError as err:
        raise _duplicate(table, err) from None
    assert row is not None
    return dict(row)


async def update_row(conn: asyncpg.Connection, table: Table, ident: int,
                     values: dict[str, Any]) -> dict[str, Any]:
    """Update the given columns of a row (404 if absent) and return it as read."""
    current = await get_row(conn, table, ident)
    await _check_references(conn, table, values, current.get("project_id"))
    if not values:
        return current
    sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(values))
    try:
        row = await conn.fetchrow(
            f"UPDATE {table.name} SET {sets}, updated_at = now() WHERE id = $1 "
            f"RETURNING {_select(table)}", ident, *values.values())
    except asyncpg.UniqueViolationError as err:
        raise _duplicate(table, err) from None
    assert row is not None
    return dict(row)


async def delete_row(conn: asyncpg.Connection, table: Table, ident: int) -> dict[str, Any]:
    """Delete a row (404 if absent; 409 while other rows still depend on it)."""
    current = await get_row(conn, table, ident)
    try:
        await conn.execute(f"DELETE FROM {table.name} WHERE id = $1", ident)
    except asyncpg.ForeignKeyViolationError as err:
        raise conflict(f"{table.entity} {ident} is still in use ({err.detail or err})") from None
    return current


_PLACE = ("id", "project_id", "name", "description", "ifc_id")

PROJECTS = Table("project", "projects", ("id", "name", "timezone", "description"),
                 filters={"name": str}, has_project=False)
SITES = Table("site", "sites", (*_PLACE, "latitude", "longitude"),
              filters={"project_id": int, "name": str})
BUILDINGS = Table("building", "buildings", (*_PLACE, "site_id"), parent=("site_id", "sites"),
                  filters={"project_id": int, "site_id": int, "name": str})
STOREYS = Table("storey", "storeys", (*_PLACE, "building_id"), parent=("building_id", "buildings"),
                filters={"project_id": int, "building_id": int, "name": str})
SPACES = Table("space", "spaces", (*_PLACE, "storey_id", "zone_id"), parent=("storey_id", "storeys"),
               references={"zone_id": "zones"},
               filters={"project_id": int, "storey_id": int, "zone_id": int, "name": str})
ZONES = Table("zone", "zones", _PLACE, filters={"project_id": int, "name": str})
RESIDENTS = Table("resident", "residents", ("id", "project_id", "space_id", "name", "cellphone"),
                  parent=("space_id", "spaces"),
                  filters={"project_id": int, "space_id": int, "name": str})
