"""Twin service settings, env prefix TWIN_."""

from __future__ import annotations

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
    # time series upkeep (issue 16): monthly partitions made this many months ahead, raw-grade
    # data kept this many days by default (0: forever; a project's own in ts_retention wins),
    # one pass every this many seconds
    timeseries_partitions_ahead: int = 2
    raw_retention_days: int = 0
    timeseries_maintenance_interval: float = 3600.0
