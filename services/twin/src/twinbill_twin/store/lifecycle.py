"""Meter lifecycle events in PostgreSQL: recorded in time order, read by billing with its devices."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import asyncpg

EVENT_COLUMNS = """id, device_id, kind, at, final_reading, initial_reading, reading, multiplier,
    multiplier_before, register_digits, register_digits_before, meter_number, note, created_at"""


async def device_for_event(conn: asyncpg.Connection, device_id: int) -> asyncpg.Record | None:
    """The device's current multiplier and register, locked until the transaction ends (events
    of one device are recorded one at a time, each checked against the ones before it)."""
    return await conn.fetchrow(
        "SELECT id, project_id, multiplier, register_max FROM devices WHERE id = $1 FOR UPDATE", device_id)


async def events_of(conn: asyncpg.Connection, device_id: int) -> list[dict[str, Any]]:
    """A device's events, oldest first."""
    rows = await conn.fetch(f"SELECT {EVENT_COLUMNS} FROM meter_events WHERE device_id = $1 ORDER BY at",
                            device_id)
    return [dict(row) for row in rows]


async def insert_event(conn: asyncpg.Connection, values: dict[str, Any]) -> dict[str, Any]:
    """Record an event and make its multiplier and register size the device's current ones."""
    names = list(values)
    row = await conn.fetchrow(
        f"INSERT INTO meter_events ({', '.join(names)}) VALUES "
        f"({', '.join(f'${i}' for i in range(1, len(names) + 1))}) RETURNING {EVENT_COLUMNS}",
        *values.values())
    digits = values.get("register_digits")
    await conn.execute(
        "UPDATE devices SET multiplier = $2, register_max = COALESCE($3::numeric, register_max), "
        "updated_at = now() WHERE id = $1",
        values["device_id"], values["multiplier"], None if digits is None else Decimal(10) ** int(digits))
    assert row is not None  # INSERT ... RETURNING
    return dict(row)


async def delete_latest_event(conn: asyncpg.Connection, device_id: int, event_id: int) -> dict[str, Any] | None:
    """Delete a device's latest event (a mistaken entry), restoring the parameters before it."""
    events = await events_of(conn, device_id)
    if not events or events[-1]["id"] != event_id:
        return None
    last = events[-1]
    await conn.execute("DELETE FROM meter_events WHERE id = $1", event_id)
    before = last["register_digits_before"]
    await conn.execute(
        "UPDATE devices SET multiplier = $2, register_max = COALESCE($3::numeric, register_max), "
        "updated_at = now() WHERE id = $1", device_id, last["multiplier_before"],
        None if before is None else Decimal(10) ** int(before))
    return last


async def events_for_billing(conn: asyncpg.Connection, device_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Each device's events in the billing contract's shape (decimals as text, times ISO)."""
    rows = await conn.fetch(f"SELECT {EVENT_COLUMNS} FROM meter_events WHERE device_id = ANY($1::bigint[]) "
                            "ORDER BY device_id, at", list(device_ids))
    found: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(row["device_id"], []).append(billing_event(dict(row)))
    return found


def _text(value: Any) -> str | None:
    return None if value is None else format(value, "f")


def billing_event(row: dict[str, Any]) -> dict[str, Any]:
    """One event as billing reads it: readings before/after, parameters before/after."""
    kind = row["kind"]
    before = row["reading"] if kind == "multiplier_change" else row["final_reading"]
    after = row["reading"] if kind == "multiplier_change" else row["initial_reading"]
    digits, digits_before = row["register_digits"], row["register_digits_before"]
    return {
        "id": row["id"], "kind": kind, "at": row["at"].isoformat(),
        "reading_before": _text(before), "reading_after": _text(after),
        "multiplier": _text(row["multiplier"]), "multiplier_before": _text(row["multiplier_before"]),
        "register_max": None if digits is None else str(10 ** digits),
        "register_max_before": None if digits_before is None else str(10 ** digits_before),
    }
