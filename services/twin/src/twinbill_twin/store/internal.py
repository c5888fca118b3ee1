"""Reads and writes behind the internal endpoints other services code against."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from twinbill_common.schemas import DeviceRecord, ProductModel
from twinbill_twin.store.products import load_points


async def all_products(conn: asyncpg.Connection) -> list[ProductModel]:
    """Every product as the shared ProductModel."""
    rows = await conn.fetch("SELECT id, product_key, name, billing_register, is_gateway "
                            "FROM products ORDER BY id")
    points = await load_points(conn, [row["id"] for row in rows])
    return [ProductModel(product_key=row["product_key"], name=row["name"],
                         measurepoints=points[row["id"]], billing_register=row["billing_register"],
                         is_gateway=row["is_gateway"]) for row in rows]


def _device_filters(after_id: int, project_id: int | None, device_type: int | None) -> tuple[str, list[Any]]:
    clauses, args = ["d.id > $1"], [after_id]
    if project_id is not None:
        args.append(project_id)
        clauses.append(f"d.project_id = ${len(args)}")
    if device_type is not None:
        args.append(device_type)
        clauses.append(f"d.device_type = ${len(args)}")
    return " AND ".join(clauses), args


async def device_records(conn: asyncpg.Connection, *, after_id: int, limit: int,
                         project_id: int | None, device_type: int | None) -> list[DeviceRecord]:
    """Devices after `after_id` in id order, with their gateway's keys, instance id and secret.

    The secret is here for the ingest gateway, which checks sub-device login signatures with it;
    this endpoint is internal and never exposed by the API gateway.
    """
    where, args = _device_filters(after_id, project_id, device_type)
    rows = await conn.fetch(
        "SELECT d.id, p.product_key, d.device_key, d.name, d.project_id, d.device_type, "
        "d.water_meter_kind, d.gateway_id, gp.product_key AS gateway_product_key, "
        "g.device_key AS gateway_device_key, d.online, d.last_seen, i.id AS instance_id, d.secret "
        "FROM devices d JOIN products p ON p.id = d.product_id "
        "LEFT JOIN devices g ON g.id = d.gateway_id LEFT JOIN products gp ON gp.id = g.product_id "
        f"LEFT JOIN instances i ON i.device_id = d.id WHERE {where} ORDER BY d.id LIMIT {limit}",
        *args)
    return [DeviceRecord.model_validate(dict(row)) for row in rows]


async def billing_devices(conn: asyncpg.Connection, *, after_id: int, limit: int,
                          project_id: int | None, device_type: int | None) -> list[dict[str, Any]]:
    """Devices with what a bill prints: house address [site, building, storey, zone, space] and
    the residents of the device's space."""
    where, args = _device_filters(after_id, project_id, device_type)
    rows = await conn.fetch(
        "SELECT d.id, p.product_key, d.device_key, d.name, d.device_type, d.water_meter_kind, "
        "d.multiplier, d.register_max, p.billing_register, "
        "COALESCE(si.name, '') AS site, COALESCE(b.name, '') AS building, "
        "COALESCE(st.name, '') AS storey, COALESCE(z.name, '') AS zone, "
        "COALESCE(sp.name, '') AS space, "
        "COALESCE((SELECT json_agg(json_build_object('name', r.name, 'cellphone', r.cellphone) "
        "          ORDER BY r.id) FROM residents r WHERE r.space_id = d.space_id), '[]')::text "
        "  AS residents "
        "FROM devices d JOIN products p ON p.id = d.product_id "
        "LEFT JOIN spaces sp ON sp.id = d.space_id LEFT JOIN zones z ON z.id = sp.zone_id "
        "LEFT JOIN storeys st ON st.id = sp.storey_id LEFT JOIN buildings b ON b.id = st.building_id "
        f"LEFT JOIN sites si ON si.id = b.site_id WHERE {where} ORDER BY d.id LIMIT {limit}", *args)
    return [{
        "id": row["id"], "product_key": row["product_key"], "device_key": row["device_key"],
        "name": row["name"], "device_type": row["device_type"],
        "water_meter_kind": row["water_meter_kind"], "multiplier": str(row["multiplier"]),
        "register_max": None if row["register_max"] is None else str(row["register_max"]),
        "billing_register": row["billing_register"],
        "house_address": [row["site"], row["building"], row["storey"], row["zone"], row["space"]],
        "residents": json.loads(row["residents"]),
    } for row in rows]


async def update_status(conn: asyncpg.Connection,
                        statuses: list[tuple[str, str, bool, datetime | None]]) -> list[asyncpg.Record]:
    """Set online/last_seen of devices by keys (a newer last_seen never goes back); returns the
    updated devices. Runs inside the caller's transaction, which holds the row locks until it
    commits."""
    keys = ([s[0] for s in statuses], [s[1] for s in statuses])
    # Lock the rows in id order first, as the telemetry consumer does (timeseries/writer.py,
    # LOCK_DEVICES): without it the UPDATE below locked them in plan order and deadlocked with it.
    await conn.execute(
        "SELECT d.id FROM devices d JOIN products p ON d.product_id = p.id "
        "JOIN unnest($1::text[], $2::text[]) AS s(product_key, device_key) "
        "  ON p.product_key = s.product_key AND d.device_key = s.device_key "
        "ORDER BY d.id FOR NO KEY UPDATE OF d", *keys)
    return list(await conn.fetch(
        "UPDATE devices d SET online = s.online, "
        "last_seen = GREATEST(d.last_seen, s.last_seen), updated_at = now() "
        "FROM unnest($1::text[], $2::text[], $3::boolean[], $4::timestamptz[]) "
        "  AS s(product_key, device_key, online, last_seen), products p "
        "WHERE p.product_key = s.product_key AND d.product_id = p.id AND d.device_key = s.device_key "
        "RETURNING d.id, d.project_id, p.product_key, d.device_key, d.online, d.last_seen",
        *keys, [s[2] for s in statuses], [s[3] for s in statuses]))
