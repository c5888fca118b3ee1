"""Outcomes other services report, made events: a device's answer to reverse control
(CommandOutcome, from the ingest gateway) and a billing job's meters (BillingJobFinished)."""

from __future__ import annotations

import asyncpg

from twinbill_common.bus import Delivery
from twinbill_common.logging import get_logger
from twinbill_common.schemas import BillingJobFinished, CommandOutcome
from twinbill_twin.domain.levels import LEVELS
from twinbill_twin.store.alarms import (
    device_by_id,
    device_by_key,
    record_device_event,
)

log = get_logger(__name__)

COMMAND_CATEGORY = "Reverse control"
OUTCOME_LEVELS = {"applied": LEVELS["INFO"], "refused": LEVELS["ERROR"], "expired": LEVELS["WARNING"]}


async def handle_command_outcome(delivery: Delivery[CommandOutcome], *, pool: asyncpg.Pool) -> None:
    """Record a device's answer to a command on the desired values it set last (those a newer
    command set since wait for that one's answer) and as an event of the project's Alarms scope.
    The set request's id alone names them, so a reply the gateway replica no longer remembers (it
    restarted since: instance, version and identifiers empty) is recorded all the same."""
    outcome = delivery.message
    async with pool.acquire() as conn, conn.transaction():
        device = await device_by_key(conn, outcome.product_key, outcome.device_key)
        if device is None:
            log.warning("command outcome of an unknown device", product_key=outcome.product_key,
                        device_key=outcome.device_key)
            return
        marked = "UPDATE 0"
        if outcome.request_id is not None:  # the attributes this command set last, wherever it was sent from
            marked = await conn.execute(
                "UPDATE attributes SET expect_status = $3, expect_code = $4, expect_message = $5, "
                "expect_status_at = $6 FROM instances i WHERE i.id = attributes.instance_id "
                "AND i.device_id = $1 AND expect_request = $2",
                device.id, outcome.request_id, outcome.outcome, outcome.code, outcome.reply_message, outcome.at)
        # a command set before its id was kept on the attributes (migration 0406)
        if (marked == "UPDATE 0" and outcome.instance_id is not None and outcome.version is not None
                and outcome.identifiers):
            marked = await conn.execute(
                "UPDATE attributes SET expect_status = $4, expect_code = $5, expect_message = $6, "
                "expect_status_at = $7 WHERE instance_id = $1 AND attrtype = 'State' "
                "AND coalesce(measurepoint, name) = ANY($2::text[]) AND expect_version <= $3",
                outcome.instance_id, outcome.identifiers, outcome.version, outcome.outcome, outcome.code,
                outcome.reply_message, outcome.at)
        what = ", ".join(outcome.identifiers) or "a command"
        detail = {"applied": "applied by the device",
                  "refused": f"refused by the device with code {outcome.code}"
                             + (f" ({outcome.reply_message})" if outcome.reply_message else ""),
                  "expired": "expired before the device came online"}[outcome.outcome]
        version = f" v{outcome.version}" if outcome.version is not None else ""
        await record_device_event(
            conn, device, category=COMMAND_CATEGORY, level=OUTCOME_LEVELS[outcome.outcome], at=outcome.at,
            description=f"desired {what}{version}: {detail}",
            dedup_key=f"command:{outcome.request_id or outcome.message_id}:{outcome.outcome}")
    log.info("command outcome recorded", device_id=device.id, outcome=outcome.outcome, code=outcome.code,
             attributes=marked)


# -- billing outcomes (issue 13) -----------------------------------------------------------------

BILLING_CATEGORY = "Billing"
BILLING_LEVELS = {"failed": LEVELS["ERROR"], "skipped": LEVELS["WARNING"], "estimated": LEVELS["INFO"]}


async def handle_billing_outcome(delivery: Delivery[BillingJobFinished], *, pool: asyncpg.Pool) -> None:
    """One event per meter a billing job failed, skipped or estimated (once per job and meter)."""
    job = delivery.message
    period = f"{job.period_start.isoformat()} - {job.period_end.isoformat()}"
    async with pool.acquire() as conn, conn.transaction():
        for kind in ("failed", "skipped", "estimated"):
            for entry in getattr(job, kind):
                device = await device_by_id(conn, int(entry["device_id"]))
                if device is None:
                    continue
                reason = f": {entry['reason']}" if entry.get("reason") else ""
                await record_device_event(
                    conn, device, category=BILLING_CATEGORY, level=BILLING_LEVELS[kind], at=job.produced_at,
                    description=f"billing run {job.run_id} ({period}): meter {kind}{reason}",
                    dedup_key=f"billing:{job.job_id}:{device.id}:{kind}")
