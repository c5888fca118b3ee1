"""Time-series upkeep: monthly partitions created ahead of the data, and raw retention per
project. Raw-grade data (the samples, their sealed hours packed in sample_hours, the 10 s rollup,
the hours' sorted values) older than a project's horizon is deleted, or whole month partitions
dropped where every project's horizon has passed them; the minute and hour rollups (rollup_1m,
its sealed hours packed in rollup_1m_hours, rollup_1h) stay. A project's horizon
(`raw_kept_from`) is recorded before its data goes, so a query never mistakes deleted data for
no data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from twinbill_twin.store.samples import PartitionManager, month_of

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# (table, time column) of the raw-grade tables: what raw retention deletes
RAW_GRADE = (("samples", "ts"), ("rollup_10s", "bucket"), ("values_1h", "bucket"), ("sample_hours", "bucket"))

_PROJECTS = """
SELECT p.id, coalesce(r.raw_days, $1::integer) AS days, coalesce(r.raw_kept_from, 0) AS kept_from
FROM projects p LEFT JOIN ts_retention r ON r.project_id = p.id
ORDER BY p.id
"""

_RECORD = """
INSERT INTO ts_retention (project_id, raw_kept_from) VALUES ($1, $2)
ON CONFLICT (project_id) DO UPDATE SET raw_kept_from = greatest(ts_retention.raw_kept_from, EXCLUDED.raw_kept_from)
"""

_PARTITIONS = """
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = to_regclass($1)
"""


@dataclass(frozen=True)
class RetentionPass:
    """What one pass did: projects whose horizon moved, rows deleted, partitions dropped."""

    projects: int
    rows: int
    dropped: list[str]


def months_ahead(now_ms: int, count: int) -> list[tuple[int, int]]:
    """(year, month) of the current UTC month and the `count` months after it."""
    year, month = month_of(now_ms)
    found = []
    for _ in range(count + 1):
        found.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


async def create_ahead(conn: asyncpg.Connection, partitions: PartitionManager, *, now_ms: int, months: int) -> None:
    """The partitions of this month and the next `months`, before any data needs them."""
    await partitions.ensure(conn, months_ahead(now_ms, months))


def horizon(now_ms: int, days: int) -> int:
    """The raw horizon `days` before now, floored to a whole UTC hour (so the hour rollups and
    the hours' values are whole on both sides of it)."""
    cutoff = now_ms - days * DAY_MS
    return cutoff - cutoff % HOUR_MS


async def apply_retention(conn: asyncpg.Connection, *, now_ms: int, default_days: int | None) -> RetentionPass:
    """One retention pass over every project (`default_days` for those without their own; None:
    keep forever). Partitions wholly before every project's horizon are dropped when every
    project has a retention (series of no project go with them); the rest is deleted by project."""
    projects = await conn.fetch(_PROJECTS, default_days)
    cutoffs = {r["id"]: horizon(now_ms, r["days"]) for r in projects if r["days"] is not None}
    moved = {pid: cut for pid, cut in cutoffs.items()
             if cut > next(r["kept_from"] for r in projects if r["id"] == pid)}
    for project_id, cutoff in moved.items():  # the horizon first: readers stop asking for it
        await conn.execute(_RECORD, project_id, cutoff)
    dropped: list[str] = []
    if default_days is not None and cutoffs and len(cutoffs) == len(projects):
        everyone = min(cutoffs.values())
        for table, _ in RAW_GRADE:
            for part in await conn.fetch(_PARTITIONS, table):
                upper = int(re.findall(r"-?\d+", part["bound"])[-1])  # FOR VALUES FROM ('a') TO ('b')
                if upper <= everyone:
                    await conn.execute(f'DROP TABLE IF EXISTS "{part["relname"]}"')
                    dropped.append(part["relname"])
    rows = 0
    for project_id, cutoff in moved.items():
        keys = [r["series_key"] for r in await conn.fetch(
            "SELECT series_key FROM series_projects WHERE project_id = $1", project_id)]
        if not keys:
            continue
        for table, column in RAW_GRADE:
            status = await conn.execute(
                f"DELETE FROM {table} WHERE attribute_id = ANY($1::bigint[]) AND {column} < $2", keys, cutoff)
            rows += int(status.split()[-1])
    return RetentionPass(len(moved), rows, dropped)


def iso(ms: int) -> str:
    """An epoch-ms time as ISO 8601 UTC, for messages."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")
