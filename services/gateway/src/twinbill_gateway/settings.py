"""Gateway settings, env prefix GATEWAY_."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from twinbill_common.settings import PostgresSettings


class GatewaySettings(PostgresSettings):
    """Settings of the API gateway."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore", frozen=True)
    DEVELOPMENT_DEFAULTS: ClassVar[tuple[str, ...]] = (*PostgresSettings.DEVELOPMENT_DEFAULTS,
                                                       "jwt_secret", "admin_password")
    USES_BUS: ClassVar[bool] = False  # it talks to the services over HTTP only

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
    # Sign-in lockout (signin.py): this many failed passwords within the window lock the account
    # (lower-cased email) or the client address for the lockout time.
    login_account_failures: int = Field(default=5, ge=1)
    login_address_failures: int = Field(default=50, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    # Trusted proxies in front of the gateway that append to X-Forwarded-For (an Ingress: 1); 0
    # takes the TCP peer as the client's address.
    forwarded_hops: int = Field(default=0, ge=0, le=10)
    # /metrics listens here, not on HTTP_PORT (which clients reach through the Ingress); 0 (the
    # default: in-process tests start many gateways) serves none. `make run` uses 8009.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
