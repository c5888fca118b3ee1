"""Billing one job: device snapshot -> openings, closings, tariffs -> bills (insert_many) -> outcome."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from bson import ObjectId

from twinbill_billing.domain.bills import (
    BillDraft,
    Meter,
    NotBilled,
    Reading,
    canonical,
    decide_bill,
)
from twinbill_billing.domain.periods import Period, to_epoch_ms
from twinbill_billing.domain.pricing import CENT
from twinbill_billing.errors import BadRunInput
from twinbill_billing.events import publish_issued
from twinbill_billing.runs import BillingContext, finish_if_done
from twinbill_billing.tariffs import to_domain
from twinbill_billing.twin import BillingDevice
from twinbill_common.logging import get_logger
from twinbill_common.schemas.billing import BillingJob

log = get_logger(__name__)


def bill_document(
    device: BillingDevice,
    draft: BillDraft,
    *,
    job: BillingJob,
    timezone: str,
    tariffs: dict[str, dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    """The stored bill: registry snapshot, readings, consumption, charge, tariff parts, period, run."""
    run = job.run
    raw = device.raw
    return {
        "_id": ObjectId(),
        "project_id": run.project_id,
        "device_id": device.id,
        "device_key": device.device_key,
        "product_key": raw.get("product_key"),
        "device_name": raw.get("name"),
        "device_type": int(run.device_type),
        "water_meter_kind": device.water_meter_kind,
        "house_address": list(raw.get("house_address") or ["", "", "", "", ""]),
        "residents": list(raw.get("residents") or []),
        "multiplier": canonical(device.multiplier),
        "register_max": None if device.register_max is None else canonical(device.register_max),
        "opening_reading": canonical(draft.opening.value),
        "opening_time": draft.opening.time,
        "opening_source": draft.opening.source,
        "closing_reading": canonical(draft.closing.value),
        "closing_time": draft.closing.time,
        "register_delta": canonical(draft.usage.register_delta),
        "rolled_over": draft.usage.rolled_over,
        "consumption": canonical(draft.usage.consumption),
        "charge": canonical(draft.charge.amount),
        "charge_minor": int(draft.charge.amount / CENT),
        "tariff": [
            {
                **tariffs[part.tariff_id],
                "share": f"{part.share.numerator}/{part.share.denominator}",
                "from": part.start,
                "to": part.end,
                "consumption": canonical(part.consumption),
                "amount": canonical(part.amount),
            }
            for part in draft.charge.parts
        ],
        "charge_detail": draft.charge.to_document(),  # block lines, charges, snapshot, year-to-date
        "estimated": False,
        "timezone": timezone,
        "from_time": run.period_start,
        "to_time": run.period_end,
        "created_at": now,
        "run_id": run.run_id,
        "job_id": job.job_id,
    }


def _tariff_snapshot(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "name": doc.get("name", ""),
        "kind": doc["kind"],
        "unit_price": doc.get("unit_price"),
        "blocks": doc.get("blocks", []),
        "water_meter_kind": doc.get("water_meter_kind"),
        "effective_from": doc["effective_from"],
        "effective_to": doc.get("effective_to"),
    }


async def bill_job(job: BillingJob, ctx: BillingContext) -> dict[str, Any]:
    """Bill every device of a job and record the job's outcome once; returns the outcome."""
    started = time.perf_counter()
    run = job.run
    chunk = await ctx.store.load_chunk(job.job_id)
    if chunk is None:
        raise BadRunInput(f"job {job.job_id} has no device snapshot (was its run split?)")
    wanted = set(job.device_ids)
    devices = [BillingDevice.from_json(raw) for raw in chunk["devices"] if int(raw["id"]) in wanted]
    missing = wanted - {device.id for device in devices}
    period = Period(run.period_start, run.period_end)
    ids = [device.id for device in devices]
    previous = await ctx.store.previous_closings(run.project_id, ids, before=period.start)
    closings = await ctx.twin.last_readings(ids, at_ms=to_epoch_ms(period.end))
    need_start = [i for i in ids if i not in previous and i in closings]
    starts = await ctx.twin.last_readings(need_start, at_ms=to_epoch_ms(period.start)) if need_start else {}
    tariff_docs = await ctx.store.tariffs_for(run.project_id, int(run.device_type))
    tariffs = [to_domain(doc) for doc in tariff_docs]
    snapshots = {str(doc["_id"]): _tariff_snapshot(doc) for doc in tariff_docs}
    now = ctx.clock()
    docs: list[dict[str, Any]] = []
    not_billed: dict[str, list[dict[str, Any]]] = {"skipped": [], "failed": [], "exception": []}
    not_billed["failed"] += [
        {"device_id": device_id, "reason": "device not in the job's snapshot"} for device_id in sorted(missing)
    ]
    for device in devices:
        opening = previous.get(device.id)
        if opening is None and device.id in starts:
            start = starts[device.id]
            opening = Reading(start.value, start.time, source="period_start_reading")
        meter = Meter(device.id, device.water_meter_kind, device.multiplier, device.register_max)
        decision = decide_bill(meter, period=period, opening=opening, closing=closings.get(device.id), tariffs=tariffs)
        if isinstance(decision, NotBilled):
            not_billed[decision.outcome].append(
                {"device_id": device.id, "device_key": device.device_key, "reason": decision.reason}
            )
            continue
        docs.append(bill_document(device, decision, job=job, timezone=chunk["timezone"], tariffs=snapshots, now=now))
    inserted, duplicates = await ctx.store.insert_bills(docs)
    if ctx.publish_issued:
        await announce(job, ctx, [doc for index, doc in enumerate(docs) if index not in duplicates],
                       redelivered=[docs[index]["device_id"] for index in sorted(duplicates)])
    outcome = {
        "run_id": run.run_id,
        "chunk": job.chunk,
        "status": "done",
        "devices": len(wanted),
        "billed": inserted,
        "already_billed": len(duplicates),
        "skipped": not_billed["skipped"],
        "failed": not_billed["failed"],
        "exceptions": not_billed["exception"],
        "finished_at": now,
    }
    if await ctx.store.record_job(job.job_id, outcome):
        ctx.metrics.jobs.labels("done").inc()
    else:
        ctx.metrics.jobs.labels("redelivered").inc()
    for label, count in (
        ("billed", inserted),
        ("already_billed", len(duplicates)),
        ("skipped", len(not_billed["skipped"])),
        ("failed", len(not_billed["failed"])),
        ("exception", len(not_billed["exception"])),
    ):
        if count:
            ctx.metrics.bills.labels(label).inc(count)
    ctx.metrics.job_duration.observe(time.perf_counter() - started)
    await finish_if_done(run.run_id, ctx)
    return outcome


async def announce(job: BillingJob, ctx: BillingContext, fresh: list[dict[str, Any]], *,
                   redelivered: list[int]) -> None:
    """Publish BillIssued for the bills just inserted and, on a redelivery, again for the bills
    this job inserted on an earlier attempt (their events may not have gone out: at-least-once).
    Raises BusUnavailable (transient: the job is retried, its outcome not yet recorded)."""
    bills = list(fresh)
    if redelivered:
        run = job.run
        earlier = await ctx.store.period_bills(run.project_id, redelivered, start=run.period_start,
                                               end=run.period_end)
        bills += [bill for bill in earlier if bill.get("job_id") == job.job_id]
    if bills:
        await publish_issued(ctx.bus, bills)


async def record_dead_letter(job: BillingJob, ctx: BillingContext, *, reason: str) -> bool:
    """A job that will never succeed: the run says so, and finishes.

    Its devices that have a bill for the period (this job inserted it before it failed, or it was
    there already) count as billed; every other one is `failed` with the reason. The bills this job
    inserted get their BillIssued events first (they may not have gone out). Idempotent: a job
    already recorded (done or dead-lettered) is left as it is. True when this call recorded it.
    """
    recorded = False
    if await ctx.store.job_outcome(job.job_id) is None:
        run = job.run
        bills = await ctx.store.period_bills(run.project_id, job.device_ids, start=run.period_start,
                                             end=run.period_end)
        own = [bill for bill in bills if bill.get("job_id") == job.job_id]
        if own and ctx.publish_issued:
            await publish_issued(ctx.bus, own)
        billed = {int(bill["device_id"]) for bill in bills}
        failed = [{"device_id": device_id, "reason": f"job dead-lettered: {reason}"}
                  for device_id in job.device_ids if device_id not in billed]
        outcome = {
            "run_id": run.run_id,
            "chunk": job.chunk,
            "status": "dead_lettered",
            "reason": reason,
            "devices": len(job.device_ids),
            "billed": len(own),
            "already_billed": len(bills) - len(own),
            "skipped": [],
            "failed": failed,
            "exceptions": [],
            "finished_at": ctx.clock(),
        }
        recorded = await ctx.store.record_job(job.job_id, outcome)
        if recorded:
            ctx.metrics.jobs.labels("dead_lettered").inc()
            if failed:
                ctx.metrics.bills.labels("failed").inc(len(failed))
            log.warning("job dead-lettered", job_id=job.job_id, reason=reason, failed=len(failed),
                        billed=len(bills))
    await finish_if_done(job.run.run_id, ctx)
    return recorded
