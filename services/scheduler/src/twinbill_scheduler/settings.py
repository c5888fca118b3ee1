"""Scheduler settings, env prefix SCHEDULER_."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from twinbill_common.settings import PostgresSettings


class SchedulerSettings(PostgresSettings):
    """Settings of the scheduler service (API and firing loop in one process)."""

    model_config = SettingsConfigDict(env_prefix="SCHEDULER_", extra="ignore", frozen=True)

    http_port: int = Field(default=8002, ge=0, le=65535)
    schema_name: str = Field(default="scheduler", pattern=r"^[a-z_][a-z0-9_]*$")
    default_timezone: str = "Asia/Shanghai"
    # Where project time zones come from (the twin service); 404 -> default zone, unreachable -> 503.
    twin_url: str = "http://127.0.0.1:8001"
    zone_cache_seconds: float = Field(default=300.0, ge=0)
    # Consume `registry` project events (a project's zone changed).
    registry_events: bool = True
    # Firing loop.
    firing_enabled: bool = True
    replica_id: str = ""  # empty: hostname-pid
    claim_batch: int = Field(default=1000, ge=1, le=10000)
    poll_interval: float = Field(default=0.2, gt=0)
    lease_seconds: float = Field(default=30.0, gt=0)
    publish_concurrency: int = Field(default=2000, ge=1)
    max_inflight: int = Field(default=4, ge=1)  # claimed batches awaiting confirms
