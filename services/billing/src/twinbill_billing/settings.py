"""Billing service settings, env prefix BILLING_."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from twinbill_common.redelivery import RETRY_BUDGET_SECONDS
from twinbill_common.settings import CommonSettings


class BillingSettings(CommonSettings):
    """Settings of the billing worker and its read API."""

    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore", frozen=True)
    DEVELOPMENT_DEFAULTS: ClassVar[tuple[str, ...]] = (*CommonSettings.DEVELOPMENT_DEFAULTS, "mongo_url")

    http_port: int = 8003
    mongo_url: str = "mongodb://127.0.0.1:27017"
    mongo_db: str = "billing"
    twin_url: str = "http://127.0.0.1:8001"
    twin_timeout: float = Field(default=30.0, gt=0)
    # How long a project's time zone read from the twin is reused (a zone change shows within it).
    zone_cache_seconds: float = Field(default=300.0, ge=0)
    # Devices per job: one twin readings call (<= 5,000 ids) and one insert_many per job.
    chunk_size: int = Field(default=500, ge=1, le=5000)
    # Jobs a replica holds unacknowledged at once (the bounded prefetch of billing.jobs).
    job_prefetch: int = Field(default=2, ge=1, le=100)
    consume_runs: bool = True
    consume_jobs: bool = True
    # Drain billing.jobs.dlq into the run records (deadletters.py); every replica may.
    consume_dead_letters: bool = True
    # Publish a BillIssued (routing key bill.issued) per new bill (events.py).
    publish_issued: bool = True
    # How long a consumer retries a transient failure in place before requeueing (a redelivery
    # counts toward the delivery limit); the platform's default.
    retry_budget: float = Field(default=RETRY_BUDGET_SECONDS, ge=0)
    queue_depth_interval: float = Field(default=5.0, gt=0)
    # Audit entries whose BillingChanged was not confirmed are re-published this long after they
    # were written, checked every audit_relay_interval seconds (audit.py).
    audit_relay_after: float = Field(default=60.0, gt=0)
    audit_relay_interval: float = Field(default=30.0, gt=0)
