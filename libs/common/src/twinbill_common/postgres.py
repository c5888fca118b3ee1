"""PostgreSQL: a pool bound to one service schema, and that schema's migrations (yoyo)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from twinbill_common.errors import TRANSIENT_ERRORS as COMMON_TRANSIENT_ERRORS
from twinbill_common.errors import StoreUnavailable
from twinbill_common.settings import PostgresSettings

# What PostgreSQL raises when retrying the same work can succeed: it did not answer, the
# connection went, the server is starting or shutting down, too many clients, or the transaction
# lost a deadlock or a serialization conflict (PostgreSQL rolled it back; running it again is
# the documented remedy), or the server lacks a resource (class 53: disk full, out of memory:
# the fault campaign filled the time-series disk, and points already acknowledged must wait for
# room, not be dead-lettered). A consumer retries these in place, so they never count toward a
# queue's delivery limit. Pass it to the Bus (`Bus(..., transient=TRANSIENT_ERRORS)`).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *COMMON_TRANSIENT_ERRORS,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.InsufficientResourcesError,
)


def _admin_dsn(dsn: str) -> tuple[str, str]:
    parts = urlsplit(dsn)
    database = parts.path.lstrip("/") or "postgres"
    return urlunsplit(parts._replace(path="/postgres")), database


async def ensure_database(dsn: str) -> None:
    """Create the DSN's database if it does not exist (development and test convenience)."""
    admin, database = _admin_dsn(dsn)
    try:
        conn = await asyncpg.connect(admin, timeout=10)
    except (OSError, asyncpg.PostgresError) as err:
        raise StoreUnavailable(f"PostgreSQL did not answer: {err}") from err
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            # Another service may create it at the same moment; PostgreSQL reports the loser of
            # that race as a unique violation on pg_database rather than a duplicate database.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


def _apply_migrations_sync(dsn: str, schema: str, directory: Path) -> list[str]:
    import psycopg
    from yoyo import get_backend, read_migrations

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    url = dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    url += ("&" if "?" in url else "?") + f"schema={schema}"
    backend = get_backend(url)
    migrations = read_migrations(str(directory))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [migration.id for migration in pending]


async def apply_migrations(dsn: str, *, schema: str, directory: Path) -> list[str]:
    """Apply the schema's pending SQL migrations under yoyo's lock; repeatable; returns what ran.

    yoyo keeps its bookkeeping tables inside the service's own schema, so services never share it.
    It is synchronous (psycopg), so it runs in a thread: it happens once, at start-up.
    """
    await ensure_database(dsn)
    return await asyncio.to_thread(_apply_migrations_sync, dsn, schema, directory)


async def keep_session(conn: asyncpg.Connection) -> None:
    """A pool's reset on release that sends nothing: asyncpg has already rolled back a transaction
    left open, and twinbill's code keeps no other session state on a pooled connection (settings
    only by SET LOCAL, advisory locks only per transaction, no LISTEN, cursors only inside a
    transaction). asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) is a
    round trip to PostgreSQL on every release: about a quarter of the twin's time on a short query
    (issue 16)."""


async def create_pool(dsn: str, *, schema: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see the service schema first on their search_path. Floats are
    written as text (`::text`, `array_to_string`) shortest-exact (`extra_float_digits` 1, the
    default since PostgreSQL 12, set here so a server's configuration cannot change answers)."""
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            server_settings={"search_path": f"{schema},public", "timezone": "UTC", "extra_float_digits": "1"},
            timeout=10,
            reset=keep_session,
        )
    except (OSError, asyncpg.PostgresError) as err:
        raise StoreUnavailable(f"PostgreSQL did not answer: {err}") from err
    assert pool is not None
    return pool


async def open_schema(settings: PostgresSettings, *, schema: str, migrations: Path) -> asyncpg.Pool:
    """A PostgreSQL service's start-up: apply its schema's migrations, then open its pool."""
    dsn = settings.pg_dsn.get_secret_value()
    await apply_migrations(dsn, schema=schema, directory=migrations)
    return await create_pool(dsn, schema=schema, min_size=settings.pg_pool_min,
                             max_size=settings.pg_pool_max)
