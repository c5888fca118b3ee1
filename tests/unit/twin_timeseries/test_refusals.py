"""The twin's record of PostgreSQL refusing time-series writes (issue 17, disk full)."""

from __future__ import annotations

import time

import asyncpg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from twinbill_twin.refusals import WriteRefusals, refuses_writes

DISK_FULL = asyncpg.DiskFullError('could not extend file "base/1/2": No space left on device')


def test_class_53_refuses_writes_but_too_many_connections_does_not() -> None:
    assert refuses_writes(DISK_FULL)
    assert refuses_writes(asyncpg.OutOfMemoryError("out of memory"))
    assert not refuses_writes(asyncpg.TooManyConnectionsError("sorry, too many clients already"))
    assert not refuses_writes(asyncpg.DeadlockDetectedError("deadlock detected"))


async def test_refusing_until_the_held_batch_is_stored_whatever_other_batches_do() -> None:
    registry = CollectorRegistry()
    refusals = WriteRefusals(registry)
    assert refusals.writable
    await refusals.check()

    refusals.refused(DISK_FULL, batch=1)
    assert not refusals.writable
    with pytest.raises(RuntimeError, match=r"disk full \(SQLSTATE 53100\)"):
        await refusals.check()
    assert b"twin_store_refusing_writes 1.0" in generate_latest(registry)
    assert b'twin_store_refused_writes_total{sqlstate="53100"} 1.0' in generate_latest(registry)
    status = refusals.status()
    assert status["writable"] is False and status["sqlstate"] == "53100" and status["since"]

    refusals.stored(batch=2)  # another batch fitted in a page's free space: still refusing
    assert not refusals.writable
    refusals.stored(batch=1)  # the held batch is stored: room again
    assert refusals.writable
    await refusals.check()
    assert b"twin_store_refusing_writes 0.0" in generate_latest(registry)
    assert refusals.status() == {"writable": True, "reason": None, "sqlstate": None, "since": None}


def test_a_batch_given_back_to_the_queue_stops_counting_after_a_while() -> None:
    refusals = WriteRefusals(stale_after=0.05)
    refusals.refused(DISK_FULL, batch=1)
    assert not refusals.writable
    time.sleep(0.1)  # no retry of batch 1 since: it went back to the queue
    assert refusals.writable
