"""Consumption per bucket of series that are meters' billing registers: the last reading at or
before each bucket boundary (one query for all meters), the meter's lifecycle events, and
twinbill_common.registers' period_consumption, so a bucket counts what a bill for the same
period counts (a reading exactly at a boundary closes the bucket before it, as it closes a bill)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import asyncpg

from twinbill_common.registers import MeterEvent, Reading, period_consumption
from twinbill_twin.bemserver import payloads as p
from twinbill_twin.store.lifecycle import events_for_billing

_METERS = """
SELECT t.id AS timeseries_id, a.id AS attribute_id, d.id AS device_id, d.multiplier, d.register_max
FROM bem_timeseries t
JOIN attributes a ON a.id = t.attribute_id
JOIN instances i ON i.id = a.instance_id
JOIN devices d ON d.id = i.device_id
JOIN products pr ON pr.id = d.product_id AND pr.billing_register = a.measurepoint
WHERE t.id = ANY($1::int[])
"""
# The last reading at or before each boundary, for every meter in one query (an index look-up
# each). Finding its time in the hour rollup first was measured slower (bench_analysis: 2.3 s
# against 0.9 s for 100 meters x 366 days), so the samples are asked directly.
BOUNDARY_READINGS = """
SELECT m.n AS meter, b.n AS bound, s.num, s.ts
FROM unnest($1::bigint[]) WITH ORDINALITY AS m (attribute_id, n)
CROSS JOIN unnest($2::bigint[]) WITH ORDINALITY AS b (at, n)
LEFT JOIN LATERAL (
    SELECT num, ts FROM samples
    WHERE attribute_id = m.attribute_id AND idx = -1 AND ts <= b.at AND num IS NOT NULL
    ORDER BY ts DESC LIMIT 1
) AS s ON true
"""
_FIRST_READING = """
SELECT num, ts FROM samples WHERE attribute_id = $1 AND idx = -1 AND ts > $2 AND num IS NOT NULL
ORDER BY ts LIMIT 1
"""


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _event(item: dict[str, object]) -> MeterEvent:
    def number(name: str) -> Decimal | None:
        value = item.get(name)
        return None if value is None else Decimal(str(value))
    multiplier = number("multiplier") or Decimal(1)
    return MeterEvent(kind=item["kind"], at=datetime.fromisoformat(str(item["at"])),  # type: ignore[arg-type]  # the registry's kinds
                      reading_before=number("reading_before"), reading_after=number("reading_after"),
                      multiplier=multiplier, multiplier_before=number("multiplier_before") or multiplier,
                      register_max=number("register_max"), register_max_before=number("register_max_before"))


async def meter_consumption(conn: asyncpg.Connection, timeseries_ids: list[int],
                            grid: p.Buckets) -> dict[int, list[Decimal]]:
    """For each of the series that is a meter's billing register: its consumption per bucket."""
    if not timeseries_ids or not grid.starts:
        return {}
    meters = await conn.fetch(_METERS, timeseries_ids)
    if not meters:
        return {}
    events = await events_for_billing(conn, [m["device_id"] for m in meters])
    bounds_ms = [*grid.starts, grid.end]
    bounds = [_instant(ms) for ms in bounds_ms]
    found: list[list[Reading | None]] = [[None] * len(bounds_ms) for _ in meters]
    for row in await conn.fetch(BOUNDARY_READINGS, [m["attribute_id"] for m in meters], bounds_ms):
        if row["num"] is not None:
            found[row["meter"] - 1][row["bound"] - 1] = Reading(row["num"], _instant(row["ts"]))
    result: dict[int, list[Decimal]] = {}
    for meter, readings in zip(meters, found, strict=True):
        first = None
        if readings[0] is None:  # read for the first time inside the bounds: count from that reading
            row = await conn.fetchrow(_FIRST_READING, meter["attribute_id"], bounds_ms[0])
            first = None if row is None else Reading(row["num"], _instant(row["ts"]))
        result[meter["timeseries_id"]] = period_consumption(
            bounds, readings, events=[_event(e) for e in events.get(meter["device_id"], [])],
            multiplier=meter["multiplier"], register_max=meter["register_max"], first=first)
    return result
