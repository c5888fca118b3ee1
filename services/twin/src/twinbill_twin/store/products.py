"""Products (thing models), their measurepoints and templates, and the attributes they drive."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from twinbill_common.schemas import MeasurepointModel
from twinbill_twin.domain.attributes import AttributeSpec, attribute_specs
from twinbill_twin.errors import bad_field, conflict, not_found

PRODUCT_COLUMNS = ("p.id, p.product_key, p.name, p.description, p.is_gateway, p.billing_register, "
                   "p.created_at, p.updated_at, t.id AS template_id")


async def load_points(conn: asyncpg.Connection, product_ids: list[int]) -> dict[int, list[MeasurepointModel]]:
    """Measurepoints of the products, in position order."""
    rows = await conn.fetch(
        "SELECT product_id, identifier, name, unit, data_type::text AS data_type, settable "
        "FROM measurepoints WHERE product_id = ANY($1::bigint[]) ORDER BY product_id, position, id",
        product_ids)
    points: dict[int, list[MeasurepointModel]] = {ident: [] for ident in product_ids}
    for row in rows:
        points[row["product_id"]].append(MeasurepointModel(
            identifier=row["identifier"], name=row["name"], unit=row["unit"],
            data_type=json.loads(row["data_type"]), settable=row["settable"]))
    return points


async def _with_points(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    points = await load_points(conn, [row["id"] for row in rows])
    return [{**dict(row), "measurepoints": points[row["id"]]} for row in rows]


async def get_product(conn: asyncpg.Connection, ident: int) -> dict[str, Any]:
    """One product with its measurepoints and template id, or 404."""
    row = await conn.fetchrow(
        f"SELECT {PRODUCT_COLUMNS} FROM products p LEFT JOIN templates t ON t.product_id = p.id "
        "WHERE p.id = $1", ident)
    if row is None:
        raise not_found("product", ident)
    return (await _with_points(conn, [row]))[0]


async def list_products(conn: asyncpg.Connection, filters: dict[str, Any], *, page: int,
                        page_size: int) -> tuple[int, list[dict[str, Any]]]:
    """A page of products (filters: product_key, name contains, is_gateway)."""
    clauses, args = [], []
    for name, value in filters.items():
        args.append(value)
        clauses.append(f"strpos(lower(p.name), lower(${len(args)})) > 0" if name == "name"
                       else f"p.{name} = ${len(args)}")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    total = await conn.fetchval(f"SELECT count(*) FROM products p{where}", *args)
    rows = await conn.fetch(
        f"SELECT {PRODUCT_COLUMNS} FROM products p LEFT JOIN templates t ON t.product_id = p.id"
        f"{where} ORDER BY p.id LIMIT {page_size} OFFSET {(page - 1) * page_size}", *args)
    return int(total), await _with_points(conn, rows)


async def _replace_points(conn: asyncpg.Connection, product_id: int,
                          points: list[MeasurepointModel]) -> None:
    await conn.execute("DELETE FROM measurepoints WHERE product_id = $1", product_id)
    await conn.executemany(
        "INSERT INTO measurepoints (product_id, identifier, name, unit, data_type, settable, position) "
        "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)",
        [(product_id, p.identifier, p.name, p.unit, p.data_type.model_dump_json(exclude_none=True),
          p.settable, position) for position, p in enumerate(points)])


async def create_product(conn: asyncpg.Connection, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a product, its measurepoints and its template (物模板)."""
    points: list[MeasurepointModel] = values.pop("measurepoints")
    try:
        product_id = await conn.fetchval(
            "INSERT INTO products (product_key, name, description, is_gateway, billing_register) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            values["product_key"], values["name"], values["description"], values["is_gateway"],
            values["billing_register"])
    except asyncpg.UniqueViolationError:
        raise conflict(f"productKey {values['product_key']!r} already exists") from None
    await _replace_points(conn, product_id, points)
    await conn.execute("INSERT INTO templates (product_id, name, description) VALUES ($1, $2, $3)",
                       product_id, values["name"], values["description"])
    return await get_product(conn, product_id)


async def update_product(conn: asyncpg.Connection, ident: int, values: dict[str, Any]) -> dict[str, Any]:
    """Update a product; new measurepoints re-sync the attributes of every instance of it."""
    current = await get_product(conn, ident)
    points: list[MeasurepointModel] | None = values.pop("measurepoints", None)
    identifiers = {p.identifier for p in (points if points is not None else current["measurepoints"])}
    register = values.get("billing_register", current["billing_register"])
    if register is not None and register not in identifiers:
        field = "billing_register" if "billing_register" in values else "measurepoints"
        raise bad_field(field, f"billing_register {register!r} is not one of the measurepoints")
    if values:
        sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(values))
        await conn.execute(f"UPDATE products SET {sets}, updated_at = now() WHERE id = $1",
                           ident, *values.values())
    if "name" in values or "description" in values:
        await conn.execute(
            "UPDATE templates SET name = p.name, description = p.description, mtime = now() "
            "FROM products p WHERE templates.product_id = p.id AND p.id = $1", ident)
    if points is not None:
        await _replace_points(conn, ident, points)
        await sync_template_attributes(conn, current["template_id"], attribute_specs(points))
    return await get_product(conn, ident)


async def delete_product(conn: asyncpg.Connection, ident: int) -> dict[str, Any]:
    """Delete a product and its template; 409 while devices use it."""
    current = await get_product(conn, ident)
    if await conn.fetchval("SELECT 1 FROM devices WHERE product_id = $1 LIMIT 1", ident):
        raise conflict(f"product {ident} still has devices")
    await conn.execute("DELETE FROM products WHERE id = $1", ident)
    return current


def _spec_arrays(specs: list[AttributeSpec]) -> list[list[str]]:
    return [[getattr(spec, name) for spec in specs]
            for name in ("name", "displayname", "attrtype", "datatype", "unit", "measurepoint", "metric")]


_UPSERT = """
INSERT INTO attributes (instance_id, name, displayname, attrtype, datatype, unit, measurepoint, metric)
SELECT i.id, s.* FROM instances i
CROSS JOIN unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) AS s
WHERE {scope}
ON CONFLICT (instance_id, name) DO UPDATE SET
    displayname = EXCLUDED.displayname, attrtype = EXCLUDED.attrtype, datatype = EXCLUDED.datatype,
    unit = EXCLUDED.unit, measurepoint = EXCLUDED.measurepoint, metric = EXCLUDED.metric, mtime = now()
WHERE (attributes.displayname, attributes.attrtype, attributes.datatype, attributes.unit,
       attributes.measurepoint, attributes.metric)
   IS DISTINCT FROM (EXCLUDED.displayname, EXCLUDED.attrtype, EXCLUDED.datatype, EXCLUDED.unit,
                     EXCLUDED.measurepoint, EXCLUDED.metric)
"""


async def add_instance_attributes(conn: asyncpg.Connection, instance_ids: list[int],
                                  specs: list[AttributeSpec]) -> None:
    """Give new instances the attributes of their template's measurepoints."""
    if specs and instance_ids:
        await conn.execute(_UPSERT.format(scope="i.id = ANY($1::bigint[])"),
                           instance_ids, *_spec_arrays(specs))


async def sync_template_attributes(conn: asyncpg.Connection, template_id: int,
                                   specs: list[AttributeSpec]) -> None:
    """Keep every instance of a template in step with its measurepoints (add, change, drop)."""
    await conn.execute(
        "DELETE FROM attributes a USING instances i WHERE a.instance_id = i.id AND i.template_id = $1 "
        "AND a.measurepoint IS NOT NULL AND NOT (a.measurepoint = ANY($2::text[]))",
        template_id, [spec.measurepoint for spec in specs])
    if specs:
        await conn.execute(_UPSERT.format(scope="i.template_id = $1"), template_id, *_spec_arrays(specs))
    await conn.execute("UPDATE instances SET mtime = now() WHERE template_id = $1", template_id)
    await conn.execute("UPDATE templates SET mtime = now() WHERE id = $1", template_id)
