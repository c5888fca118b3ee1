"""Devices and their instances (物实例): one instance per device, attributes from the product."""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

import asyncpg

from twinbill_twin.domain.attributes import attribute_specs
from twinbill_twin.errors import bad_field, conflict, not_found
from twinbill_twin.schemas import check_kind
from twinbill_twin.store.products import add_instance_attributes, load_points

DEVICE_COLUMNS = (
    "d.id, p.product_key, d.device_key, d.name, d.description, d.project_id, d.device_type, d.water_meter_kind, "
    "d.gateway_id, d.space_id, d.multiplier, d.register_max, d.online, d.last_seen, "
    "i.id AS instance_id, d.created_at, d.updated_at")
DEVICE_FROM = ("devices d JOIN products p ON p.id = d.product_id "
               "LEFT JOIN instances i ON i.device_id = d.id")
NEW_DEVICE_FIELDS = ("product_id", "device_key", "name", "description", "secret", "project_id", "device_type",
                     "water_meter_kind", "gateway_id", "space_id", "multiplier", "register_max")
_TYPES = ("bigint", "text", "text", "text", "text", "integer", "smallint", "text", "bigint", "bigint",
          "numeric", "numeric")


def new_secret() -> str:
    """A device secret for the MQTT login (32 hex characters)."""
    return secrets.token_hex(16)


async def get_device(conn: asyncpg.Connection, ident: int) -> dict[str, Any]:
    """One device as read (no secret), or 404."""
    row = await conn.fetchrow(f"SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM} WHERE d.id = $1", ident)
    if row is None:
        raise not_found("device", ident)
    return dict(row)


async def list_devices(conn: asyncpg.Connection, filters: dict[str, Any], *, page: int,
                       page_size: int) -> tuple[int, list[dict[str, Any]]]:
    """A page of devices; filters: project_id, product_key, device_key, device_type, gateway_id,
    space_id, online, name (contains)."""
    clauses, args = [], []
    for name, value in filters.items():
        args.append(value)
        if name == "name":
            clauses.append(f"strpos(lower(d.name), lower(${len(args)})) > 0")
        elif name == "product_key":
            clauses.append(f"p.product_key = ${len(args)}")
        else:
            clauses.append(f"d.{name} = ${len(args)}")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    total = await conn.fetchval(f"SELECT count(*) FROM {DEVICE_FROM}{where}", *args)
    rows = await conn.fetch(f"SELECT {DEVICE_COLUMNS} FROM {DEVICE_FROM}{where} ORDER BY d.id "
                            f"LIMIT {page_size} OFFSET {(page - 1) * page_size}", *args)
    return int(total), [dict(row) for row in rows]


async def check_places(conn: asyncpg.Connection, values: dict[str, Any], project_id: int,
                       *, device_id: int | None = None) -> None:
    """The project, gateway and space a device names exist and agree (422 naming the field)."""
    if not await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", project_id):
        raise bad_field("project_id", f"project {project_id} does not exist")
    if values.get("gateway_id") is not None:
        gateway = await conn.fetchrow("SELECT project_id FROM devices WHERE id = $1", values["gateway_id"])
        if gateway is None:
            raise bad_field("gateway_id", f"device {values['gateway_id']} does not exist")
        if values["gateway_id"] == device_id:
            raise bad_field("gateway_id", "a device cannot be its own gateway")
        if gateway["project_id"] != project_id:
            raise bad_field("gateway_id", "the gateway belongs to another project")
    if values.get("space_id") is not None:
        owner = await conn.fetchval("SELECT project_id FROM spaces WHERE id = $1", values["space_id"])
        if owner is None:
            raise bad_field("space_id", f"space {values['space_id']} does not exist")
        if owner != project_id:
            raise bad_field("space_id", "the space belongs to another project")


async def insert_devices(conn: asyncpg.Connection, devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert devices, their instances and attributes in bulk; returns (id, device_key, product_id,
    instance_id) per device in input order. Duplicate keys raise UniqueViolationError."""
    columns = [[device.get(name) for device in devices] for name in NEW_DEVICE_FIELDS]
    description = NEW_DEVICE_FIELDS.index("description")
    columns[description] = [v or "" for v in columns[description]]
    multiplier = NEW_DEVICE_FIELDS.index("multiplier")
    columns[multiplier] = [Decimal(str(v)) if v is not None else Decimal(1) for v in columns[multiplier]]
    unnest = ", ".join(f"${i + 1}::{kind}[]" for i, kind in enumerate(_TYPES))
    rows = await conn.fetch(
        f"INSERT INTO devices ({', '.join(NEW_DEVICE_FIELDS)}) SELECT * FROM unnest({unnest}) "
        "RETURNING id, product_id, device_key, name", *columns)
    ids = [row["id"] for row in rows]
    instances = await conn.fetch(
        "INSERT INTO instances (template_id, device_id, name, description) "
        "SELECT t.id, d.id, d.name, d.description FROM devices d JOIN templates t ON t.product_id = d.product_id "
        "WHERE d.id = ANY($1::bigint[]) ORDER BY d.id RETURNING id, device_id, template_id", ids)
    by_template: dict[int, list[int]] = {}
    product_of = {row["id"]: row["product_id"] for row in rows}
    template_product: dict[int, int] = {}
    for inst in instances:
        by_template.setdefault(inst["template_id"], []).append(inst["id"])
        template_product[inst["template_id"]] = product_of[inst["device_id"]]
    points = await load_points(conn, list(set(template_product.values())))
    for template_id, instance_ids in by_template.items():
        specs = attribute_specs(points[template_product[template_id]])
        await add_instance_attributes(conn, instance_ids, specs)
    instance_of = {inst["device_id"]: inst["id"] for inst in instances}
    by_key = {(row["product_id"], row["device_key"]): row for row in rows}
    return [{"id": by_key[(d["product_id"], d["device_key"])]["id"],
             "device_key": d["device_key"], "product_id": d["product_id"],
             "instance_id": instance_of.get(by_key[(d["product_id"], d["device_key"])]["id"])}
            for d in devices]


async def create_device(conn: asyncpg.Connection, values: dict[str, Any]) -> dict[str, Any]:
    """Insert one device with its instance; 409 if the productKey/deviceKey pair exists."""
    product_id = await conn.fetchval("SELECT id FROM products WHERE product_key = $1",
                                     values["product_key"])
    if product_id is None:
        raise bad_field("product_key", f"product {values['product_key']!r} does not exist")
    await check_places(conn, values, values["project_id"])
    secret = values.get("secret") or new_secret()
    new = {**values, "product_id": product_id, "secret": secret}
    try:
        created = await insert_devices(conn, [new])
    except asyncpg.UniqueViolationError:
        raise conflict(f"deviceKey {values['device_key']!r} already exists for productKey "
                       f"{values['product_key']!r}") from None
    return {**await get_device(conn, created[0]["id"]), "secret": secret}


async def update_device(conn: asyncpg.Connection, ident: int, values: dict[str, Any]) -> dict[str, Any]:
    """Update a device; its instance follows a rename."""
    current = await get_device(conn, ident)
    await check_places(conn, values, values.get("project_id", current["project_id"]), device_id=ident)
    check_kind(values.get("device_type", current["device_type"]),
               values.get("water_meter_kind", current["water_meter_kind"]))
    if values:
        sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(values))
        await conn.execute(f"UPDATE devices SET {sets}, updated_at = now() WHERE id = $1",
                           ident, *values.values())
    if "name" in values or "description" in values:
        await conn.execute("UPDATE instances i SET name = d.name, description = d.description, "
                           "mtime = now() FROM devices d WHERE d.id = $1 AND i.device_id = d.id", ident)
    return await get_device(conn, ident)


async def delete_device(conn: asyncpg.Connection, ident: int) -> dict[str, Any]:
    """Delete a device (its instance and attributes go with it; sub-devices lose their gateway)."""
    current = await get_device(conn, ident)
    await conn.execute("DELETE FROM devices WHERE id = $1", ident)
    return current
