"""Settings base: one pydantic-settings class per service, built once in __main__."""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)


class CommonSettings(BaseSettings):
    """What every service reads; a subclass sets its own env prefix (TWIN_, BILLING_, ...)."""

    model_config = SettingsConfigDict(env_prefix="TWINBILL_", extra="ignore", frozen=True)

    log_level: str = "INFO"
    log_json: bool = False
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    # One log line per HTTP request (twinbill_common.access); <PREFIX>ACCESS_LOG=false turns it off.
    access_log: bool = True
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    # Prefix for every exchange and queue name: tests and parallel stacks isolate themselves with it.
    bus_namespace: str = ""


class BusToolSettings(BaseSettings):
    """What a command-line tool on the bus reads (twinbill-dlq): the stack's broker and namespace."""

    model_config = SettingsConfigDict(env_prefix="TWINBILL_", extra="ignore", frozen=True)

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    bus_namespace: str = ""


class PostgresSettings(CommonSettings):
    """Settings of a service that owns a PostgreSQL schema."""

    pg_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/twinbill")
    pg_pool_min: int = Field(default=1, ge=0)
    pg_pool_max: int = Field(default=10, ge=1)


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings, or stop start-up listing every bad variable at once."""
    try:
        return cls(**overrides)  # type: ignore[arg-type]  # pydantic-settings accepts field overrides
    except ValidationError as err:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"invalid configuration for {cls.__name__}:"]
        for problem in err.errors():
            field = ".".join(str(part) for part in problem["loc"])
            lines.append(f"  {prefix}{field.upper()}: {problem['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
