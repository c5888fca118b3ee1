"""Schema migrations run automatically, in the service's own schema, and are repeatable."""

from __future__ import annotations

import asyncpg

from twinbill_common.postgres import apply_migrations
from twinbill_twin.app import MIGRATIONS


async def test_twin_migrations_apply_once_and_repeat_cleanly(pg_dsn: str) -> None:
    first = await apply_migrations(pg_dsn, schema="twin_mig_probe", directory=MIGRATIONS)
    second = await apply_migrations(pg_dsn, schema="twin_mig_probe", directory=MIGRATIONS)
    assert "0001_registry_core" in first
    assert second == []
    conn = await asyncpg.connect(pg_dsn)
    try:
        tables = {r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'twin_mig_probe'")}
    finally:
        await conn.close()
    assert {"projects", "products", "devices", "instances", "attributes", "_yoyo_migration"} <= tables
