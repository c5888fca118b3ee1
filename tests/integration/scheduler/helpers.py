"""Helpers of the scheduler integration tests: reading the runs queue (waits: tests.conditions)."""

from __future__ import annotations

import aio_pika

from twinbill_common.schemas import RunBilling
from twinbill_common.topology import BILLING_RUNS


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
