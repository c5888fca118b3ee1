"""Billing one job on the meters' chains: snapshot -> ledgers and readings -> decisions -> bills.

Exactly once, whatever order or how often jobs run: each bill claims its chain position (the
unique `chain_key`: meter and `from_time`) as it is inserted, so of two workers extending a
meter's chain from the same bill one wins; the other re-reads the chain and decides again
(its period is then covered, or starts where the winner ended).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from twinbill_billing.bill_documents import bill_document, tariff_snapshot
from twinbill_billing.context import BillingContext
from twinbill_billing.domain.bills import (
    BillDraft,
    ChainHead,
    Meter,
    NotBilled,
    decide_bill,
    ledger_since,
    window_start,
)
from twinbill_billing.domain.ledger import PastBill, Reading, head_of, ledger_complete
from twinbill_billing.domain.periods import Period, to_epoch_ms
from twinbill_billing.domain.pricing import PricingCache, Tariff, pick_tariffs
from twinbill_billing.errors import BadRunInput, ChainContention
from twinbill_billing.events import publish_issued
from twinbill_billing.tariffs import to_domain
from twinbill_billing.twin import BillingDevice
from twinbill_common.logging import get_logger
from twinbill_common.schemas.billing import BillingJob, BillingJobFinished
from twinbill_common.topology import BILLING

log = get_logger(__name__)
CHAIN_ROUNDS = 5  # re-decisions after losing a chain position before the job is retried
Doc = dict[str, Any]


@dataclass
class JobInputs:
    """What one job reads before deciding: meters, their ledgers, readings and tariffs."""

    devices: list[BillingDevice]
    missing: set[int]
    ledgers: dict[int, list[Doc]]
    closings: dict[int, Reading]
    starts: dict[int, Reading]
    tariffs: list[Tariff]
    snapshots: dict[str, dict[str, Any]]
    timezone: str
    pricing: PricingCache = field(default_factory=PricingCache)  # the job's meters share it


@dataclass
class JobResult:
    """What a job did: bills inserted and devices already billed or not billed, with reasons."""

    inserted: list[Doc] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    not_billed: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {"skipped": [], "failed": [], "exception": []})


def past_bills(docs: list[Doc]) -> list[PastBill]:
    """A meter's issued bills: its chain (void ones and their credit notes cancel out, so both
    are left out)."""
    return [PastBill(d["from_time"], d["to_time"], Decimal(d["consumption"]), bool(d.get("estimated")),
                     Decimal(d.get("opening_reading") or 0), Decimal(d["closing_reading"]), d.get("closing_time"),
                     tuple((p["from"], p["to"], Decimal(p["consumption"])) for p in d.get("periods") or ()),
                     tuple((datetime.fromisoformat(w["window_start"]), Decimal(w["consumption"]))
                           for w in (d.get("charge_detail") or {}).get("accumulation") or ()))
            for d in docs if d.get("kind", "bill") == "bill" and d.get("status", "issued") == "issued"]


def chain_head(docs: list[Doc]) -> ChainHead | None:
    """The head of a meter's chain from its ledger documents."""
    return head_of(past_bills(docs))


def chain_origin(docs: list[Doc]) -> Reading | None:
    """Where a meter's chain started when every bill on it was voided: the first bill's opening."""
    bills = [d for d in docs if d.get("kind", "bill") == "bill" and d.get("opening_reading") is not None]
    if not bills:
        return None
    first = min(bills, key=lambda d: d["from_time"])
    return Reading(Decimal(first["opening_reading"]), first["from_time"], "previous_bill")


async def load_inputs(job: BillingJob, ctx: BillingContext) -> JobInputs:
    """The job's device snapshot, their ledgers, readings at the period bounds, the tariffs."""
    run = job.run
    chunk = await ctx.store.load_chunk(job.job_id)
    if chunk is None:
        raise BadRunInput(f"job {job.job_id} has no device snapshot (was its run split?)")
    wanted = set(job.device_ids)
    devices = [BillingDevice.from_json(raw) for raw in chunk["devices"] if int(raw["id"]) in wanted]
    ids = [device.id for device in devices]
    tariff_docs = await ctx.store.tariffs_for(run.project_id, int(run.device_type))
    tariffs = [to_domain(doc) for doc in tariff_docs]
    closings = await ctx.twin.last_readings(ids, at_ms=to_epoch_ms(run.period_end))
    ledgers = await read_ledgers(ctx, run.project_id, devices, period_start=run.period_start, tariffs=tariffs,
                                 closings=closings)
    # A first bill without an installation opens at the last reading at or before the period start.
    need_start = [d.id for d in devices if not ledgers.get(d.id)
                  and not any(e.kind == "installation" for e in d.events)]
    starts = await ctx.twin.last_readings(need_start, at_ms=to_epoch_ms(run.period_start)) if need_start else {}
    return JobInputs(devices, wanted - set(ids), ledgers, closings, starts, tariffs,
                     {str(doc["_id"]): tariff_snapshot(doc) for doc in tariff_docs}, chunk["timezone"])


async def read_ledgers(ctx: BillingContext, project_id: int, devices: list[BillingDevice], *,
                       period_start: datetime, tariffs: list[Tariff],
                       closings: dict[int, Reading]) -> dict[int, list[Doc]]:
    """The meters' ledgers as their decisions need them: the chain's recent end (bills ending at
    or after ledger_since()) in one read, then whole, device-id range by range, for the meters
    whose decision needs older bills (ledger_complete(): a first bill, a voided head, trailing
    estimates, an estimate's history, a block window from before). What a worker holds per job
    stays the size of the recent end however long the chains grow (the soak bills every minute:
    reading whole chains grew the worker's memory with every run)."""
    since = ledger_since(tariffs, period_start)
    ledgers = await ctx.store.ledgers(project_id, [d.id for d in devices], since=since)
    short: list[int] = []
    for device in devices:
        bills = past_bills(ledgers.get(device.id, []))
        head = head_of(bills)
        closing = closings.get(device.id)
        estimating = closing is None or (head is not None and closing.time <= head.to_time)
        chosen = pick_tariffs(tariffs, water_meter_kind=device.water_meter_kind)
        if not ledger_complete(bills, since=since, estimating=estimating, window_start=partial(window_start, chosen)):
            short.append(device.id)
    wanted = set(short)
    for first, last in id_ranges(short, [d.id for d in devices]):
        whole = await ctx.store.ledgers(project_id, [first, last])
        ledgers.update({device_id: docs for device_id, docs in whole.items() if device_id in wanted})
    return ledgers


def id_ranges(picked: list[int], ids: list[int]) -> list[tuple[int, int]]:
    """`picked` (a subset of `ids`) as runs of neighbours in `ids`' order: (first, last) each."""
    wanted = set(picked)
    ranges: list[tuple[int, int]] = []
    run: list[int] = []
    for device_id in [*sorted(ids), None]:
        if device_id is not None and device_id in wanted:
            run.append(device_id)
            continue
        if run:
            ranges.append((run[0], run[-1]))
            run = []
    return ranges


def period_length(job: BillingJob) -> timedelta:
    """The run's period length: the length of each period a catch-up bill is priced in."""
    return job.run.period_end - job.run.period_start


def decide(device: BillingDevice, inputs: JobInputs, job: BillingJob) -> BillDraft | NotBilled:
    """One meter's decision on its chain (pure, given the inputs)."""
    run = job.run
    ledger = inputs.ledgers.get(device.id, [])
    history = past_bills(ledger)
    meter = Meter(device.id, device.water_meter_kind, device.multiplier, device.register_max, device.events)
    return decide_bill(meter, period=Period(run.period_start, run.period_end), closing=inputs.closings.get(device.id),
                       tariffs=inputs.tariffs, head=head_of(history), start_reading=inputs.starts.get(device.id),
                       history=history, period_length=period_length(job),
                       origin=chain_origin(ledger), cache=inputs.pricing)


async def issue_bills(job: BillingJob, ctx: BillingContext, inputs: JobInputs, now: datetime) -> JobResult:
    """Decide every meter and insert the bills; a lost chain position is re-read and re-decided."""
    result = JobResult()
    pending = list(inputs.devices)
    for _ in range(CHAIN_ROUNDS):
        docs: list[Doc] = []
        for device in pending:
            decision = decide(device, inputs, job)
            if isinstance(decision, NotBilled):
                if decision.outcome == "covered":
                    result.already.append(device.id)
                else:
                    result.not_billed[decision.outcome].append(
                        {"device_id": device.id, "device_key": device.device_key, "reason": decision.reason})
                continue
            docs.append(bill_document(device, decision, job=job, timezone=inputs.timezone,
                                      tariffs=inputs.snapshots, now=now))
        _, lost = await ctx.store.insert_bills(docs)
        result.inserted += [doc for index, doc in enumerate(docs) if index not in lost]
        if not lost:
            return result
        lost_ids = {docs[index]["device_id"] for index in lost}
        pending = [device for device in pending if device.id in lost_ids]
        inputs.ledgers.update(await read_ledgers(ctx, job.run.project_id, pending, period_start=job.run.period_start,
                                                 tariffs=inputs.tariffs, closings=inputs.closings))
        log.info("chain position taken by another worker, deciding again", job_id=job.job_id,
                 devices=len(lost_ids))
    raise ChainContention(f"job {job.job_id}: {len(pending)} meters still contended after {CHAIN_ROUNDS} rounds")


def outcome_document(job: BillingJob, inputs: JobInputs, result: JobResult, now: datetime) -> Doc:
    """The job's outcome, written once under its id."""
    failed = [{"device_id": device_id, "reason": "device not in the job's snapshot"}
              for device_id in sorted(inputs.missing)]
    return {
        "run_id": job.run.run_id,
        "chunk": job.chunk,
        "status": "done",
        "devices": len(job.device_ids),
        "billed": len(result.inserted),
        "already_billed": len(result.already),
        "skipped": result.not_billed["skipped"],
        "failed": failed + result.not_billed["failed"],
        "exceptions": result.not_billed["exception"],
        "estimated": [{"device_id": d["device_id"], "device_key": d["device_key"]}
                      for d in result.inserted if d.get("estimated")],
        "finished_at": now,
    }


async def bill_job(job: BillingJob, ctx: BillingContext) -> Doc:
    """Bill every meter of a job on its chain and record the job's outcome once; returns it."""
    started = time.perf_counter()
    inputs = await load_inputs(job, ctx)
    now = ctx.clock()
    result = await issue_bills(job, ctx, inputs, now)
    if ctx.publish_issued:
        await announce(job, ctx, result.inserted, redelivered=result.already)
    outcome = outcome_document(job, inputs, result, now)
    await announce_finished(job, ctx, outcome)
    recorded = await ctx.store.record_job(job.job_id, outcome)
    ctx.metrics.jobs.labels("done" if recorded else "redelivered").inc()
    for label, count in (
        ("billed", outcome["billed"]),
        ("already_billed", outcome["already_billed"]),
        ("skipped", len(outcome["skipped"])),
        ("failed", len(outcome["failed"])),
        ("exception", len(outcome["exceptions"])),
        ("estimated", len(outcome["estimated"])),  # also counted as billed: a subset of it
    ):
        if count:
            ctx.metrics.bills.labels(label).inc(count)
    ctx.metrics.job_duration.observe(time.perf_counter() - started)
    return outcome


async def announce_finished(job: BillingJob, ctx: BillingContext, outcome: Doc) -> None:
    """BillingJobFinished for the meters skipped, failed or estimated (issue 13: events), before
    the outcome is recorded, so a lost publish is retried with the job (at least once). Raises
    BusUnavailable (transient)."""
    skipped, failed = outcome["skipped"], outcome["failed"] + outcome["exceptions"]
    estimated = outcome.get("estimated", [])
    if not (skipped or failed or estimated) or not ctx.publish_issued:
        return
    run = job.run
    event = BillingJobFinished(
        message_id=f"job:{job.job_id}", run_id=run.run_id, job_id=job.job_id, project_id=run.project_id,
        device_type=run.device_type, period_start=run.period_start, period_end=run.period_end,
        status=outcome["status"], skipped=skipped, failed=failed, estimated=estimated)
    await ctx.bus.publish(BILLING, "job.finished", event)


async def announce(job: BillingJob, ctx: BillingContext, fresh: list[Doc], *, redelivered: list[int]) -> None:
    """Publish BillIssued for the bills just inserted and, on a redelivery, again for the bills
    this job inserted on an earlier attempt (their events may not have gone out: at-least-once).
    Raises BusUnavailable (transient: the job is retried, its outcome not yet recorded)."""
    bills = list(fresh)
    if redelivered:
        bills += await ctx.store.job_bills(job.run.project_id, redelivered, job_id=job.job_id)
    if bills:
        await publish_issued(ctx.bus, bills)


async def record_dead_letter(job: BillingJob, ctx: BillingContext, *, reason: str) -> bool:
    """A job that will never succeed: the run says so (the caller then finishes the run).

    Its devices whose chain reaches the period end (this job inserted the bill before it failed,
    or it was there already) count as billed; every other one is `failed` with the reason. The
    bills this job inserted get their BillIssued events first (they may not have gone out).
    Idempotent: a job already recorded (done or dead-lettered) is left as it is. True when this
    call recorded it.
    """
    if await ctx.store.job_outcome(job.job_id) is not None:
        return False
    run = job.run
    ledgers = await ctx.store.ledgers(run.project_id, job.device_ids, since=run.period_end)
    own = await ctx.store.job_bills(run.project_id, job.device_ids, job_id=job.job_id)
    if own and ctx.publish_issued:
        await publish_issued(ctx.bus, own)
    billed = {device_id for device_id, docs in ledgers.items()
              if (head := chain_head(docs)) is not None and head.to_time >= run.period_end}
    billed |= {int(bill["device_id"]) for bill in own}  # a removed meter's bill ends before the period
    failed = [{"device_id": device_id, "reason": f"job dead-lettered: {reason}"}
              for device_id in job.device_ids if device_id not in billed]
    outcome = {
        "run_id": run.run_id,
        "chunk": job.chunk,
        "status": "dead_lettered",
        "reason": reason,
        "devices": len(job.device_ids),
        "billed": len(own),
        "already_billed": len(billed) - len(own),
        "skipped": [],
        "failed": failed,
        "exceptions": [],
        "finished_at": ctx.clock(),
    }
    await announce_finished(job, ctx, outcome)
    recorded = await ctx.store.record_job(job.job_id, outcome)
    if recorded:
        ctx.metrics.jobs.labels("dead_lettered").inc()
        if failed:
            ctx.metrics.bills.labels("failed").inc(len(failed))
        log.warning("job dead-lettered", job_id=job.job_id, reason=reason, failed=len(failed), billed=len(billed))
    return recorded
