"""Twin service settings, env prefix TWIN_."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from twinbill_common.settings import PostgresSettings

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
    telemetry_batch_wait: float = 0.05
    # The longest pause between in-place retries of a batch the store refused (PostgreSQL down,
    # disk full): after the store has room again, storing (and ingest's acknowledgements) resume
    # within this.
    retry_max_pause: float = Field(default=5.0, gt=0)
    # Seals device secrets at rest (AES-256-GCM, secretbox.py); changing it makes stored secrets
    # unreadable (no rotation yet).
    device_secret_key: SecretStr = Field(default=SecretStr(DEV_DEVICE_SECRET_KEY), min_length=32)
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
