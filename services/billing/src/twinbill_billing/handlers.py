"""Bus deliveries -> run splitting, job billing and dead-letter draining; decides retry (transient)
or dead-letter (permanent). Every consumer's decode -> domain -> effects -> ack/nack is here.

A job that fails on its last allowed delivery (x-delivery-count reached the queue's delivery limit)
is recorded as dead-lettered on its run before it goes to the DLQ with its reason, so the run
finishes and says which devices failed and why.
"""

from __future__ import annotations

from aio_pika.abc import AbstractIncomingMessage, HeadersType
from pydantic import ValidationError

from twinbill_billing.context import BillingContext
from twinbill_billing.jobs import bill_job, record_dead_letter
from twinbill_billing.runs import finish_if_done, split_run
from twinbill_common.bus import REASON_HEADER, Bus, Delivery
from twinbill_common.deadletters import death_reason, header_text
from twinbill_common.errors import PermanentError, TransientError
from twinbill_common.logging import get_logger
from twinbill_common.redelivery import settle
from twinbill_common.schemas.billing import BillingJob, RunBilling
from twinbill_common.topology import BILLING_JOBS, DEAD_LETTER

log = get_logger(__name__)
PARKED = f"{BILLING_JOBS.name}.parked"
DEAD_JOBS = f"{BILLING_JOBS.name}.dlq"


def delivery_count(delivery: Delivery[BillingJob]) -> int:
    """How many times the broker has delivered this message before (quorum queues count it)."""
    value = (delivery.raw.headers or {}).get("x-delivery-count", 0)
    try:
        return int(value)  # type: ignore[arg-type,unused-ignore]  # AMQP header values are loosely typed
    except (TypeError, ValueError):
        return 0


async def handle_run(delivery: Delivery[RunBilling], *, ctx: BillingContext) -> None:
    """Split a RunBilling into jobs; errors keep Bus.consume's meaning (retry / dead-letter)."""
    await split_run(delivery.message, ctx)


async def handle_job(delivery: Delivery[BillingJob], *, ctx: BillingContext) -> None:
    """Bill one job; on a permanent error or the last allowed attempt, record it on the run first."""
    job = delivery.message
    last_attempt = delivery_count(delivery) >= ctx.delivery_limit
    try:
        await bill_job(job, ctx)
    except PermanentError as err:
        await record_dead_letter(job, ctx, reason=str(err))
        await finish_if_done(job.run.run_id, ctx)
        raise
    except Exception as err:
        if not last_attempt:
            ctx.metrics.jobs.labels("retried").inc()
            if isinstance(err, TransientError):
                raise
            log.exception("job failed, will retry", job_id=job.job_id)
            raise TransientError(f"job {job.job_id} failed: {err!r}") from err
        reason = f"gave up after {ctx.delivery_limit + 1} deliveries: {err!r}"
        await record_dead_letter(job, ctx, reason=reason)
        await finish_if_done(job.run.run_id, ctx)
        raise PermanentError(reason) from err
    await finish_if_done(job.run.run_id, ctx)


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
    await finish_if_done(job.run.run_id, ctx)
    await settle(raw, ack=True, queue=DEAD_JOBS)
    ctx.metrics.dead_letters.labels("recorded" if recorded else "already_recorded").inc()
    log.info("dead letter drained", job_id=job.job_id, recorded=recorded, reason=reason)
