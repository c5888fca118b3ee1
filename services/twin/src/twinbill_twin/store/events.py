"""Events as stored (bem_events), written by the BEMServer API and by alarm rules alike: the event
and its fan-out row (the outbox the notifier drains) in one transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

EVENT_COLUMNS = ("e.id, e.campaign_scope_id, e.category_id, e.level, e.timestamp, e.source, e.description, "
                 "s.campaign_id AS _campaign")
EVENT_FROM = "bem_events e JOIN bem_campaign_scopes s ON s.id = e.campaign_scope_id"


@dataclass(frozen=True)
class NewEvent:
    """An event to record; `dedup_key` makes recording it again a no-op (an alarm's episode)."""

    campaign_scope_id: int
    category_id: int
    level: int
    timestamp: datetime
    source: str
    description: str | None = None
    dedup_key: str | None = None
    timeseries_ids: tuple[int, ...] = ()
    links: dict[str, tuple[int, ...]] = field(default_factory=dict)  # "site" -> site ids, ...


async def record_event(conn: asyncpg.Connection, event: NewEvent) -> int | None:
    """Insert the event, its links and its fan-out row (call inside a transaction); None when an
    event with the same dedup key is already there."""
    ident: int | None = await conn.fetchval(
        "INSERT INTO bem_events (campaign_scope_id, category_id, level, timestamp, source, description, dedup_key) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
        event.campaign_scope_id, event.category_id, event.level, event.timestamp, event.source,
        event.description, event.dedup_key)
    if ident is None:
        return None
    await conn.execute("INSERT INTO bem_event_fanout (event_id) VALUES ($1)", ident)
    for series in event.timeseries_ids:
        await conn.execute("INSERT INTO bem_timeseries_by_events (event_id, timeseries_id) VALUES ($1, $2) "
                           "ON CONFLICT DO NOTHING", ident, series)
    for level, ids in event.links.items():
        for place in ids:
            await conn.execute(f"INSERT INTO bem_events_by_{level}s (event_id, {level}_id) VALUES ($1, $2) "
                               "ON CONFLICT DO NOTHING", ident, place)
    return ident


async def category_id(conn: asyncpg.Connection, name: str, description: str) -> int:
    """The id of the category with this name, created when absent (alarm rules' own categories)."""
    found: int | None = await conn.fetchval("SELECT id FROM bem_event_categories WHERE name = $1", name)
    if found is not None:
        return found
    created: int = await conn.fetchval(
        "INSERT INTO bem_event_categories (name, description) VALUES ($1, $2) "
        "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id", name, description)
    return created
