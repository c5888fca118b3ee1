"""Twin service settings, env prefix TWIN_."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
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

    # Weather download (PUT /bemserver/sites/{id}/download_weather_data): off unless a provider
    # is named. "oikolab" speaks the API BEMServer uses (Oikolab's /weather).
    weather_provider: Literal["", "oikolab"] = ""
    weather_api_url: str = ""
    weather_api_key: SecretStr = SecretStr("")
    weather_timeout: float = 60.0  # seconds; BEMServer allows a provider 60 s too
