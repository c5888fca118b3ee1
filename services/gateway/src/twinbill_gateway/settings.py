"""Gateway settings, env prefix GATEWAY_."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from twinbill_common.settings import PostgresSettings


class GatewaySettings(PostgresSettings):
    """Settings of the API gateway."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)

    http_port: int = 8000
    schema_name: str = "identity"
    # Signs access and refresh tokens. The default is for local development only.
    jwt_secret: SecretStr = Field(default=SecretStr("twinbill-local-development-only-change-me"), min_length=32)
    access_ttl_seconds: int = Field(default=900, ge=30)
    refresh_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    twin_url: str = "http://127.0.0.1:8001"
    scheduler_url: str = "http://127.0.0.1:8002"
    billing_url: str = "http://127.0.0.1:8003"
    # Created at start-up when no user exists yet, so a fresh platform can be logged into.
    admin_email: str = "admin@twinbill.local"
    admin_password: SecretStr = SecretStr("twinbill-admin")
    upstream_timeout: float = 30.0
    # Shared with the twin (TWIN_GATEWAY_INTERNAL_TOKEN): the twin asks which users a campaign
    # scope's groups hold, to notify them of events. Empty: the internal endpoints answer 404.
    internal_token: SecretStr = SecretStr("")
