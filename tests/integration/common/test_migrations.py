"""Schema migrations run automatically, in the service's own schema, and are repeatable."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from twinbill_common.postgres import apply_migrations, ensure_database
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


async def test_services_starting_together_create_the_database_once(pg_dsn: str) -> None:
    """Several services racing to create a missing database all succeed (as `make run` starts them)."""
    name = f"twinbill_race_{uuid.uuid4().hex[:8]}"
    dsn = pg_dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        await asyncio.gather(*(ensure_database(dsn) for _ in range(6)))
        conn = await asyncpg.connect(dsn)
        assert await conn.fetchval("SELECT current_database()") == name
        await conn.close()
    finally:
        admin = await asyncpg.connect(pg_dsn.rsplit("/", 1)[0] + "/postgres")
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
