"""Twin service settings, env prefix TWIN_."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from twinbill_common.settings import PostgresSettings


class TwinSettings(PostgresSettings):
    """Settings of the twin service."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", extra="ignore", frozen=True)

    http_port: int = 8001
    schema_name: str = "twin"
    default_timezone: str = "Asia/Shanghai"
    outbox_relay_interval: float = 5.0  # seconds between retries of unpublished registry events
    telemetry_batch: int = 500
    telemetry_batch_wait: float = 0.05
    # Events (issue 13): the notifier fans events out to users' notifications and webhooks.
    notifier_enabled: bool = True
    notifier_interval: float = Field(default=1.0, gt=0)  # seconds between polls of an empty outbox
    # Who a campaign scope's users are: the gateway's internal endpoint, with the token it shares
    # (GATEWAY_INTERNAL_TOKEN). Without one, users' notifications wait (webhooks do not).
    gateway_url: str = "http://127.0.0.1:8000"
    gateway_internal_token: SecretStr = SecretStr("")
    # Alarm rules (issue 13): a consumer of its own queue on the telemetry exchange (twin.alarms),
    # and the offline sweep. Off on a replica that should only store samples, and vice versa.
    alarms_enabled: bool = True
    telemetry_enabled: bool = True
    alarm_batch: int = Field(default=500, ge=1)  # messages per batch
    # Batches in flight at once. 1 keeps each device's points in queue order; with more (or more
    # replicas) a device's points may be split between batches and the older ones of a race are
    # skipped by the order-sensitive rules (safe: no duplicate alarms, no lost state).
    alarm_parallel: int = Field(default=1, ge=1)
    alarm_sweep_interval: float = Field(default=30.0, gt=0)  # seconds between offline sweeps
    alarm_rules_ttl: float = Field(default=5.0, ge=0)  # a rule change applies within this
    # Webhook deliveries (issue 13).
    webhooks_enabled: bool = True
    webhook_interval: float = Field(default=0.5, gt=0)  # seconds between polls when nothing is due
    webhook_lease: float = Field(default=60.0, gt=0)  # a claimed delivery is retried after this
    webhook_timeout: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=12, ge=1)
    webhook_first_retry: float = Field(default=2.0, gt=0)  # seconds, doubling per attempt, at most an hour
    webhook_concurrency: int = Field(default=50, ge=1)
