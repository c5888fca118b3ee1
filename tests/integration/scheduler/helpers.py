"""Helpers of the scheduler integration tests: bounded waits and reading the runs queue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aio_pika
import pytest

from twinbill_common.schemas import RunBilling
from twinbill_common.topology import BILLING_RUNS


async def wait_until(check: Callable[[], Awaitable[bool]], *, timeout: float,
                     what: str) -> None:
    """Poll `check` until it holds, failing the test after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def drain_runs(amqp_url: str, namespace: str) -> list[RunBilling]:
    """Every RunBilling waiting on the namespace's billing.runs queue, in queue order."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{namespace}{BILLING_RUNS.name}", ensure=True)
        runs = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            runs.append(RunBilling.model_validate_json(message.body))
        return runs
    finally:
        await connection.close()
