"""Billing messages: the scheduler's command, the worker's per-chunk jobs, issued bills, audited changes."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, Field

from twinbill_common.schemas.base import Message
from twinbill_common.schemas.registry import DeviceType


class RunBilling(Message):
    """Bill a project's devices of one type for the period (period_start, period_end].

    The period comes from the schedule (previous fire time, this fire time), never from the clock
    at run time. `run_id` is deterministic: f"{task_key}:{fire epoch seconds}". Routing key
    `run.requested`.
    """

    run_id: str
    project_id: int
    device_type: DeviceType
    task_key: str
    period_start: AwareDatetime
    period_end: AwareDatetime
    fire_time: AwareDatetime


class BillingJob(Message):
    """One chunk of a run: the device ids to bill. Routing key `job.created`."""

    job_id: str
    run: RunBilling
    device_ids: list[int] = Field(min_length=1)
    chunk: int
    chunks: int


class BillIssued(Message):
    """A bill was written. Routing key `bill.issued`."""

    bill_id: str
    run_id: str
    project_id: int
    device_id: int
    device_type: DeviceType
    period_start: AwareDatetime
    period_end: AwareDatetime
    consumption: str
    charge: str
    outcome: Literal["billed", "estimated"] = "billed"


class BillingChanged(Message):
    """Something in billing was changed by someone (a bill voided, a tariff updated, ...): the fact,
    as written to the billing audit. Routing key `changed.{entity}.{action}`; `message_id` is the
    audit entry id, so a consumer deduplicates on it.
    """

    audit_id: str
    project_id: int | None = None
    actor: str
    action: str = Field(min_length=1)
    entity: str = Field(min_length=1)
    entity_id: str
    reason: str
    data: dict[str, Any] = Field(default_factory=dict)
    changed_at: AwareDatetime


class BillingJobFinished(Message):
    """A billing job's meters that were not simply billed: skipped (with the reason), failed
    (with the reason) or estimated. Routing key `job.finished`; published before the job's outcome
    is recorded, so at least once; `message_id` is `job:{job_id}`, so a consumer deduplicates on
    it. Sent only when one of the lists is not empty."""

    run_id: str
    job_id: str
    project_id: int
    device_type: DeviceType
    period_start: AwareDatetime
    period_end: AwareDatetime
    status: Literal["done", "dead_lettered"] = "done"
    skipped: list[dict[str, Any]] = Field(default_factory=list)
    failed: list[dict[str, Any]] = Field(default_factory=list)
    estimated: list[dict[str, Any]] = Field(default_factory=list)
