"""Seed 002 reads of instances (物实例) and their attributes, and reverse-control writes."""

from __future__ import annotations

from typing import Any

import asyncpg

# An instance belongs to its device's project; one without a device belongs to none.
INSTANCE_IN_PROJECTS = "i.device_id IN (SELECT d.id FROM devices d WHERE d.project_id = ANY({}::int[]))"


def _ms(column: str) -> str:
    return f"COALESCE(floor(extract(epoch FROM {column}) * 1000)::bigint, 0)"


INSTANCE_ROW = f"""
SELECT i.id, i.template_id AS tpl, i.name, i.description AS desp,
       COALESCE((SELECT d.online::int FROM devices d WHERE d.id = i.device_id), i.state) AS state,
       {_ms('i.ctime')} AS ctime, {_ms('i.mtime')} AS mtime, {_ms('i.atime')} AS atime,
       t.name AS tplname,
       (SELECT count(*) FROM attributes a WHERE a.instance_id = i.id)::int AS attrnum
FROM instances i JOIN templates t ON t.id = i.template_id
"""

ATTRIBUTE_ROW = f"""
SELECT a.id, a.name, a.displayname, a.attrtype, a.datatype, a.value, a.unit,
       {_ms('a.ctime')} AS ctime, {_ms('a.mtime')} AS mtime, a.instance_id AS instance,
       a.expectvalue, a.metric,
       CASE WHEN a.measurepoint IS NULL THEN '' ELSE COALESCE(d.device_key, '') END AS deviceid,
       {_ms('a.atime')} AS atime, {_ms('a.stime')} AS stime,
       a.expect_status AS expectstatus, a.expect_code AS expectcode, a.expect_message AS expectmessage,
       {_ms('a.expect_status_at')} AS expecttime
FROM attributes a JOIN instances i ON i.id = a.instance_id LEFT JOIN devices d ON d.id = i.device_id
"""


async def list_instances(conn: asyncpg.Connection, *, name: str, page: int, offset: int,
                         projects: list[int] | None = None) -> tuple[int, list[dict[str, Any]]]:
    """A page of instances whose name contains `name` (all when empty), in id order; only those
    of `projects` when given."""
    clauses: list[str] = []
    args: list[Any] = []
    if name:
        args.append(name)
        clauses.append(f"strpos(i.name, ${len(args)}) > 0")
    if projects is not None:
        args.append(projects)
        clauses.append(INSTANCE_IN_PROJECTS.format(f"${len(args)}"))
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    total = await conn.fetchval(f"SELECT count(*) FROM instances i{where}", *args)
    # Page the ids first: columns (and the attribute count) are computed for the page only.
    rows = await conn.fetch(
        f"WITH page AS (SELECT i.id FROM instances i{where} ORDER BY i.id LIMIT {offset} "
        f"OFFSET {(page - 1) * offset}) {INSTANCE_ROW} JOIN page ON page.id = i.id ORDER BY i.id",
        *args)
    return int(total), [dict(row) for row in rows]


async def instance_details(conn: asyncpg.Connection, ids: list[int]) -> list[dict[str, Any]]:
    """Instances with their `attr` lists, in the order asked; missing ids are left out."""
    rows = await conn.fetch(f"{INSTANCE_ROW} WHERE i.id = ANY($1::bigint[])", ids)
    attrs = await conn.fetch(f"{ATTRIBUTE_ROW} WHERE a.instance_id = ANY($1::bigint[]) "
                             "ORDER BY a.instance_id, a.id", ids)
    by_instance: dict[int, list[dict[str, Any]]] = {}
    for attr in attrs:
        by_instance.setdefault(attr["instance"], []).append(dict(attr))
    found = {row["id"]: {**{k: v for k, v in row.items() if k != "state"},
                         "attr": by_instance.get(row["id"], [])} for row in rows}
    return [found[ident] for ident in ids if ident in found]


async def control_targets(conn: asyncpg.Connection, instance_id: int) -> asyncpg.Record | None:
    """The instance's device keys (None if the instance does not exist)."""
    return await conn.fetchrow(
        "SELECT i.id, p.product_key, d.device_key FROM instances i "
        "LEFT JOIN devices d ON d.id = i.device_id LEFT JOIN products p ON p.id = d.product_id "
        "WHERE i.id = $1", instance_id)


async def attributes_of(conn: asyncpg.Connection, instance_id: int,
                        attribute_ids: list[int]) -> dict[int, asyncpg.Record]:
    """The instance's attributes among `attribute_ids`, locked for the update."""
    rows = await conn.fetch(
        "SELECT id, attrtype, datatype, measurepoint, name FROM attributes "
        "WHERE instance_id = $1 AND id = ANY($2::bigint[]) FOR UPDATE", instance_id, attribute_ids)
    return {row["id"]: row for row in rows}


async def set_expectvalues(conn: asyncpg.Connection, values: dict[int, str], *, request: str | None) -> int:
    """Store expectvalues and the command that sets them (`request`: its message id; None: no
    device to command) and bump each attribute's expect_version; returns the highest version."""
    await conn.execute(
        "UPDATE attributes a SET expectvalue = v.value, expect_version = a.expect_version + 1, "
        "expect_status = 'pending', expect_code = NULL, expect_message = NULL, expect_status_at = now(), "
        "expect_request = $3, mtime = now() FROM unnest($1::bigint[], $2::text[]) AS v(id, value) "
        "WHERE a.id = v.id", list(values), list(values.values()), request)
    version = await conn.fetchval(
        "SELECT max(expect_version) FROM attributes WHERE id = ANY($1::bigint[])", list(values))
    return int(version)
