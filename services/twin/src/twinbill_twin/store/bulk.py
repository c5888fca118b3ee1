"""The CSV import in one transaction: places found or created by name, devices created in bulk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from twinbill_common.schemas import RegistryChanged
from twinbill_twin.domain.csv_rows import ParsedFile
from twinbill_twin.events import change
from twinbill_twin.store.devices import insert_devices, new_secret


async def _upsert(conn: asyncpg.Connection, sql: str, project_id: int,
                  *arrays: list[Any]) -> list[asyncpg.Record]:
    return list(await conn.fetch(sql, project_id, *arrays))


async def check_against_store(conn: asyncpg.Connection, parsed: ParsedFile, project_id: int) -> None:
    """Add to `parsed.errors` what only the database knows: unknown products, taken device keys,
    gateways that exist nowhere."""
    devices = {line: row for line, row in parsed.rows.items() if row.device_key}
    keys = {row.product_key for row in devices.values()} | {
        row.gateway_product_key for row in devices.values() if row.gateway}
    known = {r["product_key"] for r in await conn.fetch(
        "SELECT product_key FROM products WHERE product_key = ANY($1::text[])", list(keys))}
    taken = {(r["product_key"], r["device_key"]) for r in await conn.fetch(
        "SELECT p.product_key, d.device_key FROM devices d JOIN products p ON p.id = d.product_id "
        "JOIN unnest($1::text[], $2::text[]) AS u(pk, dk) ON p.product_key = u.pk AND d.device_key = u.dk",
        [r.product_key for r in devices.values()], [r.device_key for r in devices.values()])}
    gateways = {row.gateway for row in devices.values() if row.gateway}
    stored_gateways = {(r["product_key"], r["device_key"]): r["project_id"] for r in await conn.fetch(
        "SELECT p.product_key, d.device_key, d.project_id FROM devices d "
        "JOIN products p ON p.id = d.product_id JOIN unnest($1::text[], $2::text[]) AS u(pk, dk) "
        "ON p.product_key = u.pk AND d.device_key = u.dk",
        [g[0] for g in gateways], [g[1] for g in gateways])}
    in_file = {(row.product_key, row.device_key) for row in devices.values()}
    for line, row in devices.items():
        if row.product_key not in known:
            parsed.add(line, "product_key", f"product {row.product_key!r} does not exist")
        if (row.product_key, row.device_key) in taken:
            parsed.add(line, "device_key", f"device {row.product_key}/{row.device_key} already exists")
        if row.gateway and row.gateway not in in_file:
            if row.gateway not in stored_gateways:
                parsed.add(line, "gateway_device_key",
                           f"gateway {row.gateway[0]}/{row.gateway[1]} is neither in the file nor stored")
            elif stored_gateways[row.gateway] != project_id:
                parsed.add(line, "gateway_device_key", "the gateway belongs to another project")
        if row.gateway == (row.product_key, row.device_key):
            parsed.add(line, "gateway_device_key", "a device cannot be its own gateway")


BULK_EVENT_IDS = 1000


def bulk_created(entity: str, ids: list[int], project_id: int) -> list[RegistryChanged]:
    """`{entity}.created` events for a bulk import: one per 1,000 ids, id "csv:<first>-<last>",
    the ids in data["ids"]. (One event per row would make a 10,000-device import spend most of
    its time publishing; caches reload on the signal anyway.)"""
    return [change(entity, "created", f"csv:{chunk[0]}-{chunk[-1]}", project_id=project_id,
                   data={"ids": chunk, "bulk": True})
            for chunk in (ids[n:n + BULK_EVENT_IDS] for n in range(0, len(ids), BULK_EVENT_IDS))]


def _created(rows: list[asyncpg.Record], entity: str, project_id: int) -> list[RegistryChanged]:
    return bulk_created(entity, [row["id"] for row in rows if row["inserted"]], project_id)


async def import_rows(conn: asyncpg.Connection, parsed: ParsedFile, project_id: int, *,
                      seal: Callable[[str], str]) -> tuple[dict[str, int], list[RegistryChanged]]:
    """Write a checked file (inside the caller's transaction); returns counts and the events."""
    rows = list(parsed.rows.values())
    events: list[RegistryChanged] = []
    sites: dict[str, tuple[float | None, float | None]] = {}
    for row in rows:
        if row.site:
            lat, lon = sites.get(row.site, (None, None))
            sites[row.site] = (row.latitude if row.latitude is not None else lat,
                               row.longitude if row.longitude is not None else lon)
    site_rows = await _upsert(conn, (
        "INSERT INTO sites (project_id, name, latitude, longitude) "
        "SELECT $1, * FROM unnest($2::text[], $3::float8[], $4::float8[]) "
        "ON CONFLICT (project_id, name) DO UPDATE SET "
        "latitude = COALESCE(EXCLUDED.latitude, sites.latitude), "
        "longitude = COALESCE(EXCLUDED.longitude, sites.longitude) "
        "RETURNING id, name, (xmax = 0) AS inserted"),
        project_id, list(sites), [v[0] for v in sites.values()], [v[1] for v in sites.values()]
    ) if sites else []
    site_id = {r["name"]: r["id"] for r in site_rows}
    events += _created(site_rows, "site", project_id)

    buildings = list(dict.fromkeys((row.site, row.building) for row in rows if row.building))
    building_rows = await _upsert(conn, (
        "INSERT INTO buildings (project_id, site_id, name) SELECT $1, * FROM unnest($2::bigint[], $3::text[]) "
        "ON CONFLICT (site_id, name) DO UPDATE SET name = EXCLUDED.name "
        "RETURNING id, site_id, name, (xmax = 0) AS inserted"),
        project_id, [site_id[s] for s, _ in buildings], [b for _, b in buildings]) if buildings else []
    building_id = {(r["site_id"], r["name"]): r["id"] for r in building_rows}
    events += _created(building_rows, "building", project_id)

    storeys = list(dict.fromkeys((row.site, row.building, row.storey) for row in rows if row.storey))
    storey_rows = await _upsert(conn, (
        "INSERT INTO storeys (project_id, building_id, name) SELECT $1, * FROM unnest($2::bigint[], $3::text[]) "
        "ON CONFLICT (building_id, name) DO UPDATE SET name = EXCLUDED.name "
        "RETURNING id, building_id, name, (xmax = 0) AS inserted"),
        project_id, [building_id[(site_id[s], b)] for s, b, _ in storeys],
        [f for _, _, f in storeys]) if storeys else []
    storey_id = {(r["building_id"], r["name"]): r["id"] for r in storey_rows}
    events += _created(storey_rows, "storey", project_id)

    zones = list(dict.fromkeys(row.zone for row in rows if row.zone))
    zone_rows = await _upsert(conn, (
        "INSERT INTO zones (project_id, name) SELECT $1, * FROM unnest($2::text[]) "
        "ON CONFLICT (project_id, name) DO UPDATE SET name = EXCLUDED.name "
        "RETURNING id, name, (xmax = 0) AS inserted"), project_id, zones) if zones else []
    zone_id = {r["name"]: r["id"] for r in zone_rows}
    events += _created(zone_rows, "zone", project_id)

    def storey_of(row: Any) -> int:
        return int(storey_id[(building_id[(site_id[row.site], row.building)], row.storey)])

    spaces: dict[tuple[int, str], int | None] = {}
    for row in rows:
        if row.space:
            key = (storey_of(row), row.space)
            spaces[key] = zone_id[row.zone] if row.zone else spaces.get(key)
    space_rows = await _upsert(conn, (
        "INSERT INTO spaces (project_id, storey_id, name, zone_id) "
        "SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::bigint[]) "
        "ON CONFLICT (storey_id, name) DO UPDATE SET zone_id = COALESCE(EXCLUDED.zone_id, spaces.zone_id) "
        "RETURNING id, storey_id, name, (xmax = 0) AS inserted"),
        project_id, [k[0] for k in spaces], [k[1] for k in spaces], list(spaces.values())) if spaces else []
    space_id = {(r["storey_id"], r["name"]): r["id"] for r in space_rows}
    events += _created(space_rows, "space", project_id)

    residents = list(dict.fromkeys(
        (space_id[(storey_of(row), row.space)], row.resident_name, row.resident_cellphone)
        for row in rows if row.resident_name))
    resident_rows = await _upsert(conn, (
        "INSERT INTO residents (project_id, space_id, name, cellphone) "
        "SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[]) "
        "ON CONFLICT (space_id, name, cellphone) DO NOTHING RETURNING id, name, true AS inserted"),
        project_id, [r[0] for r in residents], [r[1] for r in residents], [r[2] for r in residents]
    ) if residents else []
    events += _created(resident_rows, "resident", project_id)

    device_rows = [row for row in rows if row.device_key]
    product_id = {r["product_key"]: r["id"] for r in await conn.fetch(
        "SELECT id, product_key FROM products WHERE product_key = ANY($1::text[])",
        list({row.product_key for row in device_rows}))}
    new = [{"product_id": product_id[row.product_key], "device_key": row.device_key,
            "name": row.device_name or row.device_key, "secret": seal(row.secret or new_secret()),
            "project_id": project_id, "device_type": row.device_type,
            "water_meter_kind": row.water_meter_kind,
            "space_id": space_id[(storey_of(row), row.space)] if row.space else None,
            "multiplier": row.multiplier, "register_max": row.register_max} for row in device_rows]
    created = await insert_devices(conn, new) if new else []
    await _link_gateways(conn, device_rows, created)
    events += bulk_created("device", [d["id"] for d in created], project_id)
    events += bulk_created("instance", [d["instance_id"] for d in created if d["instance_id"]], project_id)
    counts = {"rows": len(rows), "sites": len(site_rows), "buildings": len(building_rows),
              "storeys": len(storey_rows), "zones": len(zone_rows), "spaces": len(space_rows),
              "residents": len(resident_rows), "devices": len(created)}
    return counts, events


async def _link_gateways(conn: asyncpg.Connection, device_rows: list[Any],
                         created: list[dict[str, Any]]) -> None:
    links = [(d["id"], row.gateway_product_key, row.gateway_device_key)
             for row, d in zip(device_rows, created, strict=True) if row.gateway]
    if links:
        await conn.execute(
            "UPDATE devices d SET gateway_id = g.id FROM unnest($1::bigint[], $2::text[], $3::text[]) "
            "AS u(id, pk, dk) JOIN products gp ON gp.product_key = u.pk "
            "JOIN devices g ON g.product_id = gp.id AND g.device_key = u.dk WHERE d.id = u.id",
            [link[0] for link in links], [link[1] for link in links], [link[2] for link in links])
