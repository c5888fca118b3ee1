"""The dead-letter watcher: drains `billing.jobs.dlq` into the run records.

A job reaches the DLQ two ways. The job handler gives up (a permanent error, or its last allowed
delivery failed): it records the job on its run first and adds `x-twinbill-reason`. Or the broker
dead-letters it without the handler seeing it: a worker process that dies on every delivery of the
same job exhausts the quorum queue's delivery limit, and RabbitMQ adds `x-death` /
`x-first-death-reason` (`delivery_limit`). Either way the watcher records the job (idempotently:
`record_dead_letter` leaves a job already recorded as done or dead-lettered alone), lets the run
finish, and acks. The message itself is not kept: its record in MongoDB is the durable trace.

Every replica runs a watcher; the DLQ is a quorum queue, so each message goes to one of them.
A DLQ message that is not a BillingJob (a malformed body the job consumer dead-lettered) is
parked, not dropped: republished (confirmed) to `billing.jobs.parked` with the reason, then acked,
so it neither blocks the watcher nor loops. Nothing consumes the parked queue; an operator reads it.
"""

from __future__ import annotations

import asyncio

from aio_pika.abc import AbstractIncomingMessage, HeadersType
from pydantic import ValidationError

from twinbill_billing.jobs import record_dead_letter
from twinbill_billing.runs import BillingContext
from twinbill_common.bus import REASON_HEADER, Bus
from twinbill_common.deadletters import death_reason, header_text
from twinbill_common.logging import get_logger
from twinbill_common.redelivery import settle
from twinbill_common.schemas.billing import BillingJob
from twinbill_common.topology import BILLING_JOBS, DEAD_LETTER

log = get_logger(__name__)
DEAD_JOBS = f"{BILLING_JOBS.name}.dlq"
PARKED = f"{BILLING_JOBS.name}.parked"
RETRY_PAUSE = 1.0  # seconds before a message whose recording failed (MongoDB, RabbitMQ) is requeued


async def declare_parking(bus: Bus) -> None:
    """The quorum queue for DLQ messages that are not BillingJobs, bound on the dead-letter exchange."""
    queue = await bus.channel.declare_queue(
        bus.name(PARKED), durable=True, arguments={"x-queue-type": "quorum"}
    )
    await queue.bind(bus.name(DEAD_LETTER), routing_key=bus.name(PARKED))


async def park(bus: Bus, raw: AbstractIncomingMessage, reason: str) -> None:
    """Republish a message to billing.jobs.parked with the reason (confirmed), then ack it."""
    headers: HeadersType = {REASON_HEADER: reason[:1000]}
    if (raw.headers or {}).get(REASON_HEADER):
        headers["x-twinbill-original-reason"] = header_text((raw.headers or {})[REASON_HEADER])[:1000]
    await bus.publish_raw(
        DEAD_LETTER, bus.name(PARKED), raw.body, message_id=raw.message_id or "unknown", headers=headers
    )
    await settle(raw, ack=True, queue=DEAD_JOBS)  # lost with its channel: parked again, never lost
    log.error("dead letter parked", queue=PARKED, message_id=raw.message_id, reason=reason)


async def handle_dead_job(raw: AbstractIncomingMessage, ctx: BillingContext) -> None:
    """Record one dead-lettered job on its run (or park a malformed message), then ack it."""
    try:
        job = BillingJob.model_validate_json(raw.body)
    except (ValidationError, ValueError) as err:
        await park(ctx.bus, raw, f"not a valid BillingJob: {err}")
        ctx.metrics.dead_letters.labels("parked").inc()
        return
    reason = death_reason(raw.headers)
    recorded = await record_dead_letter(job, ctx, reason=reason)
    await settle(raw, ack=True, queue=DEAD_JOBS)
    ctx.metrics.dead_letters.labels("recorded" if recorded else "already_recorded").inc()
    log.info("dead letter drained", job_id=job.job_id, recorded=recorded, reason=reason)


async def watch_dead_letters(ctx: BillingContext, *, prefetch: int = 10) -> None:
    """Consume billing.jobs.dlq forever; a failure to record requeues the message after a pause,
    so the watcher itself never dies of one message."""
    bus = ctx.bus
    queue = await bus.consumer_queue(DEAD_JOBS, prefetch)  # restored after a broker restart

    async def on_message(raw: AbstractIncomingMessage) -> None:
        try:
            await handle_dead_job(raw, ctx)
        except Exception as err:  # noqa: BLE001  # recorded nothing: the message stays in the DLQ
            log.warning("dead letter not recorded, requeued", message_id=raw.message_id, error=repr(err))
            await asyncio.sleep(RETRY_PAUSE)
            await settle(raw, ack=False, queue=DEAD_JOBS)

    await queue.consume(on_message)
    await asyncio.Future()  # consume until cancelled
