"""Splitting a run into jobs, and the run summary derived from per-job outcome documents.

Redelivery-safe by construction: the run id and job ids are deterministic, each job's outcome is
written once under its job id, and the summary is a fold over those documents (never `$inc`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from twinbill_billing.context import BillingContext
from twinbill_billing.twin import BillingDevice
from twinbill_common.logging import get_logger
from twinbill_common.schemas.billing import BillingJob, RunBilling
from twinbill_common.topology import BILLING

log = get_logger(__name__)
SAVE_BATCH = 20  # chunk snapshots written per insert_many during a split
LISTED = 1000  # per-device entries a run summary lists; counts are always complete


def job_id(run_id: str, chunk: int) -> str:
    """The deterministic id of a run's chunk."""
    return f"{run_id}:{chunk}"


async def split_run(run: RunBilling, ctx: BillingContext) -> None:
    """List the devices, keep a snapshot per chunk, publish one BillingJob per chunk (confirmed)."""
    existing = await ctx.store.get_run(run.run_id)
    if existing is not None and existing.get("jobs_published"):
        ctx.metrics.runs.labels("duplicate").inc()
        log.info("run already split", run_id=run.run_id)
        await finish_if_done(run.run_id, ctx)
        return
    timezone = await ctx.twin.project_timezone(run.project_id)
    devices: list[BillingDevice] = []
    async for page in ctx.twin.billing_devices(run.project_id, int(run.device_type)):
        devices.extend(page)
    # A redelivery of a run whose split did not complete keeps the snapshots it already saved
    # (their jobs may be queued or done) and chunks only the devices none of them covers.
    kept: list[dict[str, Any]] = []
    if existing is not None:
        kept = sorted(await ctx.store.chunks_of_run(run.run_id), key=lambda c: c["chunk"])
    covered = {int(raw["id"]) for chunk in kept for raw in chunk["devices"]}
    fresh = [device.raw for device in devices if device.id not in covered]
    first = max((c["chunk"] for c in kept), default=-1) + 1
    chunks: list[tuple[int, list[dict[str, Any]], bool]] = [(c["chunk"], c["devices"], False) for c in kept]
    chunks += [
        (first + n, fresh[i : i + ctx.chunk_size], True) for n, i in enumerate(range(0, len(fresh), ctx.chunk_size))
    ]
    counts = {
        "devices_expected": len(covered) + len(fresh),
        "jobs_total": len(chunks),
        "jobs_published": False,
        "status": "running",
    }
    created = existing is None and await ctx.store.create_run(
        {
            "_id": run.run_id,
            "project_id": run.project_id,
            "device_type": int(run.device_type),
            "task_key": run.task_key,
            "period_start": run.period_start,
            "period_end": run.period_end,
            "fire_time": run.fire_time,
            "timezone": timezone,
            "started_at": ctx.clock(),
            **counts,
        }
    )
    if not created:
        await ctx.store.update_run(run.run_id, counts)
    for start in range(0, len(chunks), SAVE_BATCH):  # few large writes, then their jobs
        batch = chunks[start : start + SAVE_BATCH]
        await ctx.store.save_chunks(
            [
                {
                    "_id": job_id(run.run_id, index),
                    "run_id": run.run_id,
                    "chunk": index,
                    "timezone": timezone,
                    "devices": raws,
                }
                for index, raws, new in batch
                if new
            ]
        )
        for index, raws, _ in batch:
            jid = job_id(run.run_id, index)
            job = BillingJob(
                job_id=jid,
                message_id=jid,
                run=run,
                chunk=index,
                chunks=len(chunks),
                device_ids=[int(raw["id"]) for raw in raws],
            )
            await ctx.bus.publish(BILLING, "job.created", job)
    await ctx.store.update_run(run.run_id, {"jobs_published": True})
    ctx.metrics.runs.labels("split").inc()
    log.info("run split", run_id=run.run_id, devices=counts["devices_expected"], jobs=len(chunks))
    await finish_if_done(run.run_id, ctx)


def summarize(run: dict[str, Any], outcomes: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The run summary: counts and (up to LISTED) devices per outcome, from the job outcomes."""
    summary: dict[str, Any] = {
        "devices_expected": run.get("devices_expected", 0),
        "jobs_total": run.get("jobs_total", 0),
        "jobs_done": 0,
        "jobs_dead_lettered": 0,
        "billed": 0,
        "newly_billed": 0,
        "skipped": 0,
        "failed": 0,
        "exceptions": 0,
        "estimated": 0,
        "skipped_devices": [],
        "failed_devices": [],
        "exception_devices": [],
        "estimated_devices": [],
        "dead_lettered_jobs": [],
    }
    for outcome in sorted(outcomes, key=lambda o: o.get("chunk", 0)):
        summary["jobs_done"] += 1
        summary["billed"] += outcome.get("billed", 0) + outcome.get("already_billed", 0)
        summary["newly_billed"] += outcome.get("billed", 0)
        if outcome.get("status") == "dead_lettered":
            summary["jobs_dead_lettered"] += 1
            summary["dead_lettered_jobs"].append({"job_id": outcome["_id"], "reason": outcome.get("reason")})
        for key, listed in (
            ("skipped", "skipped_devices"),
            ("failed", "failed_devices"),
            ("exceptions", "exception_devices"),
            ("estimated", "estimated_devices"),
        ):
            entries = outcome.get(key, [])
            summary[key] += len(entries)
            room = LISTED - len(summary[listed])
            summary[listed].extend(entries[: max(room, 0)])
    summary["finished"] = summary["jobs_done"] >= summary["jobs_total"] and bool(run.get("jobs_published"))
    return summary


async def finish_if_done(run_id: str, ctx: BillingContext) -> None:
    """When every job of a published run has an outcome, store the summary and mark it finished."""
    run = await ctx.store.get_run(run_id)
    if run is None or not run.get("jobs_published") or run.get("status") == "finished":
        return
    if await ctx.store.count_jobs(run_id) < run.get("jobs_total", 0):
        return
    summary = summarize(run, await ctx.store.job_outcomes(run_id))
    now = ctx.clock()
    started = run.get("started_at")
    duration = max((now - started).total_seconds(), 0.0) if isinstance(started, datetime) else 0.0
    if await ctx.store.finish_run(run, {"summary": summary, "finished_at": now, "duration_seconds": duration}):
        ctx.metrics.run_duration.observe(duration)
        troubled = summary["failed"] or summary["exceptions"] or summary["jobs_dead_lettered"]
        ctx.metrics.runs_finished.labels("with_failures" if troubled else "clean").inc()
        log.info(
            "run finished",
            run_id=run_id,
            billed=summary["billed"],
            skipped=summary["skipped"],
            failed=summary["failed"],
            exceptions=summary["exceptions"],
        )
