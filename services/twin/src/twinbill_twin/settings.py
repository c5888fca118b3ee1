"""Twin service settings, env prefix TWIN_."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from twinbill_common.settings import PostgresSettings
from twinbill_twin.secretbox import DeviceSecrets, parse_old_keys

DEV_DEVICE_SECRET_KEY = "twinbill-local-development-device-secret-key"  # noqa: S105  # public on purpose: production refuses it


class TwinSettings(PostgresSettings):
    """Settings of the twin service."""

    model_config = SettingsConfigDict(env_prefix="TWIN_", extra="ignore", frozen=True)
    DEVELOPMENT_DEFAULTS: ClassVar[tuple[str, ...]] = (*PostgresSettings.DEVELOPMENT_DEFAULTS,
                                                       "device_secret_key")

    http_port: int = 8001
    schema_name: str = "twin"
    default_timezone: str = "Asia/Shanghai"
    outbox_relay_interval: float = 5.0  # seconds between retries of unpublished registry events
    telemetry_batch: int = 500
    # Seconds between full garbage collections in a process that consumes telemetry (its
    # collector thresholds are raised for throughput: handlers/telemetry.py); 0 turns them off.
    gc_full_collect_interval: float = Field(default=60.0, ge=0)
    telemetry_batch_wait: float = 0.05
    # The longest pause between in-place retries of a batch the store refused (PostgreSQL down,
    # disk full): after the store has room again, storing (and ingest's acknowledgements) resume
    # within this.
    retry_max_pause: float = Field(default=5.0, gt=0)
    # Seals device secrets at rest (AES-256-GCM, secretbox.py) under its id; old keys (`id:key,...`)
    # only open what they sealed, until `python -m twinbill_twin.reseal` re-seals it (rotation).
    device_secret_key: SecretStr = Field(default=SecretStr(DEV_DEVICE_SECRET_KEY), min_length=32)
    device_secret_key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    device_secret_old_keys: SecretStr = SecretStr("")

    @field_validator("device_secret_old_keys")
    @classmethod
    def _old_keys(cls, value: SecretStr) -> SecretStr:
        keys = parse_old_keys(value.get_secret_value())
        if any(len(key) < 32 for key in keys.values()):
            raise ValueError("each old device secret key has at least 32 characters")
        return value

    def device_secrets(self) -> DeviceSecrets:
        """The sealing keys these settings name."""
        return DeviceSecrets(self.device_secret_key.get_secret_value(), key_id=self.device_secret_key_id,
                             old_keys=parse_old_keys(self.device_secret_old_keys.get_secret_value()))
    # time series upkeep (issue 16): monthly partitions made this many months ahead, raw-grade
    # data kept this many days by default (0: forever; a project's own in ts_retention wins),
    # one pass every this many seconds
    timeseries_partitions_ahead: int = 2
    raw_retention_days: int = 0
    timeseries_maintenance_interval: float = 3600.0

    # Weather download (PUT /bemserver/sites/{id}/download_weather_data): off unless a provider
    # is named. "oikolab" speaks the API BEMServer uses (Oikolab's /weather).
    weather_provider: Literal["", "oikolab"] = ""
    weather_api_url: str = ""
    weather_api_key: SecretStr = SecretStr("")
    weather_timeout: float = 60.0  # seconds; BEMServer allows a provider 60 s too
    # Events (issue 13): the notifier fans events out to users' notifications and webhooks.
    notifier_enabled: bool = True
    notifier_interval: float = Field(default=1.0, gt=0)  # seconds between polls of an empty outbox
    # Who a campaign scope's users are: the gateway's internal endpoint (asked with a service
    # token). While it does not answer, users' notifications wait (webhooks do not).
    gateway_url: str = "http://127.0.0.1:8000"
    # Alarm rules (issue 13): a consumer of its own queue on the telemetry exchange (twin.alarms),
    # and the offline sweep. Off on a replica that should only store samples, and vice versa.
    alarms_enabled: bool = True
    telemetry_enabled: bool = True
    alarm_batch: int = Field(default=500, ge=1)  # messages per batch
    # Batches evaluated at once on a replica (from different shards, so never one device's).
    alarm_parallel: int = Field(default=2, ge=1)
    # Shard leases: a replica renews its own every `alarm_balance_interval` seconds; a dead
    # replica's shards are taken over once its leases are `alarm_lease_ttl` seconds old.
    alarm_lease_ttl: float = Field(default=15.0, gt=0)
    alarm_balance_interval: float = Field(default=3.0, gt=0)
    alarm_sweep_interval: float = Field(default=30.0, gt=0)  # seconds between offline sweeps
    alarm_rules_ttl: float = Field(default=5.0, ge=0)  # a rule change applies within this
    # Devices whose rule states a replica keeps in memory between batches (about 1.2 KB each with
    # three rules; 0: none, every batch reads and locks its rows). PostgreSQL stays the record
    # (handlers/alarms.py); a replica's devices beyond this are read and locked every batch.
    alarm_state_cache: int = Field(default=50_000, ge=0)
    # BEMServer's check services (issue 13; twinbill_twin.checks): missing data, outliers,
    # cleanup, weather downloads, for the campaigns (sites) whose st_* row is enabled. Every
    # replica looks every `checks_interval` seconds; a period is checked once (claimed in
    # PostgreSQL). The period checked is the last whole day in the campaign's zone (or hour).
    checks_enabled: bool = True
    checks_interval: float = Field(default=60.0, gt=0)
    checks_period: Literal["hour", "day"] = "day"
    check_min_completeness: float = Field(default=0.9, ge=0, le=1)  # missing at or below this ratio
    check_min_correctness: float = Field(default=0.9, ge=0, le=1)   # outliers: share inside Min/Max below this
    # Webhook deliveries (issue 13).
    webhooks_enabled: bool = True
    webhook_interval: float = Field(default=0.5, gt=0)  # seconds between polls when nothing is due
    webhook_lease: float = Field(default=60.0, gt=0)  # a claimed delivery is retried after this
    webhook_timeout: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=12, ge=1)
    webhook_first_retry: float = Field(default=2.0, gt=0)  # seconds, doubling per attempt, at most an hour
    webhook_concurrency: int = Field(default=50, ge=1)

    @model_validator(mode="after")
    def _leases_outlive_renewals(self) -> TwinSettings:
        if self.alarm_balance_interval * 2 > self.alarm_lease_ttl:
            raise ValueError(
                f"TWIN_ALARM_LEASE_TTL ({self.alarm_lease_ttl:g} s) must be at least twice "
                f"TWIN_ALARM_BALANCE_INTERVAL ({self.alarm_balance_interval:g} s): leases would lapse between renewals")
        return self
