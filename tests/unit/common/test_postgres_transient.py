"""Which PostgreSQL errors a consumer retries in place (never counted toward the delivery limit)."""

from __future__ import annotations

import asyncpg
import pytest

from twinbill_common.postgres import TRANSIENT_ERRORS


@pytest.mark.parametrize("error", [
    asyncpg.DeadlockDetectedError, asyncpg.SerializationError, asyncpg.AdminShutdownError,
    asyncpg.DiskFullError, asyncpg.OutOfMemoryError, asyncpg.TooManyConnectionsError,
])
def test_a_store_that_can_succeed_later_is_transient(error: type[Exception]) -> None:
    """Deadlocks, shutdowns and a lack of resources (a full disk) are retried, not dead-lettered."""
    assert issubclass(error, TRANSIENT_ERRORS)


@pytest.mark.parametrize("error", [asyncpg.DataError, asyncpg.UniqueViolationError, asyncpg.UndefinedTableError])
def test_a_refused_value_or_a_bug_is_not_transient(error: type[Exception]) -> None:
    """A value PostgreSQL refuses, or a schema error, would fail the same way again."""
    assert not issubclass(error, TRANSIENT_ERRORS)
