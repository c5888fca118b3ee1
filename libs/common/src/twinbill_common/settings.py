"""Settings base: one pydantic-settings class per service, built once in __main__.

`TWINBILL_ENV` says where a process runs. In `production` a service refuses to start while a
setting that guards something (a signing key, a password, the broker's guest account, a store on
localhost) still holds its development default, naming each one (exit 2, like any bad setting);
in `development` (the default) it starts and logs a warning naming them.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound=BaseSettings)

Environment = Literal["development", "production"]
# Development-only values. Each is public (it is in this file), so none may guard production.
DEV_SERVICE_KEY = "twinbill-local-development-service-key-change-me"
DEV_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEV_PG_DSN = "postgresql://postgres@127.0.0.1:5432/twinbill"


class EnvironmentSettings(BaseSettings):
    """Where the process runs, and the defaults it must not keep in production.

    A subclass lists in DEVELOPMENT_DEFAULTS the fields whose default is a development-only value
    (a field still equal to its default is reported); `development_defaults` may add others."""

    # populate_by_name: tests and tools pass `env=`/`service_key=` by name; the environment
    # spells them TWINBILL_ENV / TWINBILL_SERVICE_KEY whatever the service's prefix.
    model_config = SettingsConfigDict(env_prefix="TWINBILL_", extra="ignore", frozen=True,
                                      populate_by_name=True)
    DEVELOPMENT_DEFAULTS: ClassVar[tuple[str, ...]] = ()

    env: Environment = Field(default="development", validation_alias="TWINBILL_ENV")

    def development_defaults(self) -> list[str]:
        """The environment variables of the settings that still hold a development-only value."""
        found: list[str] = []
        for name in self.DEVELOPMENT_DEFAULTS:
            field = type(self).model_fields[name]
            if _plain(getattr(self, name)) == _plain(field.default):
                found.append(setting_variable(type(self), name))
        return found


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def setting_variable(cls: type[BaseSettings], name: str) -> str:
    """The environment variable a field is read from (its alias, else prefix + NAME)."""
    field = cls.model_fields[name]
    if isinstance(field.validation_alias, str):
        return field.validation_alias
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def guest_broker_url(url: str) -> bool:
    """True when an AMQP URL logs in as RabbitMQ's built-in guest account (or names no user,
    which means guest too)."""
    parts = urlsplit(url)
    return parts.username in (None, "", "guest")


class CommonSettings(EnvironmentSettings):
    """What every service reads; a subclass sets its own env prefix (TWIN_, BILLING_, ...)."""

    DEVELOPMENT_DEFAULTS: ClassVar[tuple[str, ...]] = ("service_key",)
    # A service that never opens the bus (the gateway) is not held to a production broker URL.
    USES_BUS: ClassVar[bool] = True

    log_level: str = "INFO"
    log_json: bool = False
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=0, le=65535)
    # One log line per HTTP request (twinbill_common.access); <PREFIX>ACCESS_LOG=false turns it off.
    access_log: bool = True
    amqp_url: SecretStr = SecretStr(DEV_AMQP_URL)
    # Prefix for every exchange and queue name: tests and parallel stacks isolate themselves with it.
    bus_namespace: str = ""
    # AMQP heartbeat, seconds (a `heartbeat=` in amqp_url wins): a link that drops everything is
    # given up after about 3 x (heartbeat + 1) s and the client reconnects (twinbill_common.bus).
    amqp_heartbeat: int = Field(default=5, ge=1, le=600)
    # Signs and checks the service tokens of calls between services (twinbill_common.servicetokens);
    # one key shared by every service of a platform.
    service_key: SecretStr = Field(default=SecretStr(DEV_SERVICE_KEY), min_length=32,
                                   validation_alias="TWINBILL_SERVICE_KEY")

    def development_defaults(self) -> list[str]:
        found = super().development_defaults()
        if self.USES_BUS and guest_broker_url(self.amqp_url.get_secret_value()):
            found.append(setting_variable(type(self), "amqp_url"))
        return found


class BusToolSettings(BaseSettings):
    """What a command-line tool on the bus reads (twinbill-dlq): the stack's broker and namespace."""

    model_config = SettingsConfigDict(env_prefix="TWINBILL_", extra="ignore", frozen=True)

    amqp_url: SecretStr = SecretStr(DEV_AMQP_URL)
    bus_namespace: str = ""


class MemoryDebugSettings(BaseSettings):
    """The soak's memory report (twinbill_common.memdebug), the same variables for every service:
    off unless `TWINBILL_MEMDEBUG_DIR` names a directory. `FRAMES`: tracemalloc's depth (0: no
    tracing, counts only); `GARBAGE`: each report lists what a full collection finds."""

    model_config = SettingsConfigDict(env_prefix="TWINBILL_MEMDEBUG_", extra="ignore", frozen=True)

    dir: str = ""
    every: float = Field(default=60.0, gt=0)  # seconds between reports
    baseline: float = Field(default=120.0, ge=0)  # seconds after start-up before the baseline
    frames: int = Field(default=8, ge=0)
    garbage: bool = False


class PostgresSettings(CommonSettings):
    """Settings of a service that owns a PostgreSQL schema."""

    DEVELOPMENT_DEFAULTS: ClassVar[tuple[str, ...]] = (*CommonSettings.DEVELOPMENT_DEFAULTS, "pg_dsn")

    pg_dsn: SecretStr = SecretStr(DEV_PG_DSN)
    pg_pool_min: int = Field(default=1, ge=0)
    pg_pool_max: int = Field(default=10, ge=1)


def load_settings(cls: type[S], **overrides: object) -> S:
    """Build settings, or stop start-up listing every bad variable at once (exit 2); in
    production, development defaults are bad variables too."""
    prefix = cls.model_config.get("env_prefix", "")
    try:
        settings = cls(**overrides)  # type: ignore[arg-type]  # pydantic-settings accepts field overrides
    except ValidationError as err:
        lines = [f"invalid configuration for {cls.__name__}:"]
        for problem in err.errors():
            field = ".".join(str(part) for part in problem["loc"])
            lines.append(f"  {_variable(cls, field, prefix)}: {problem['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
    if isinstance(settings, EnvironmentSettings) and settings.env == "production":
        defaults = settings.development_defaults()
        if defaults:
            lines = [f"invalid configuration for {cls.__name__} (TWINBILL_ENV=production):"]
            lines += [f"  {name}: still the development default; set a production value"
                      for name in defaults]
            print("\n".join(lines), file=sys.stderr)
            raise SystemExit(2)
    return settings


def _variable(cls: type[BaseSettings], field: str, prefix: str) -> str:
    if field in cls.model_fields:
        return setting_variable(cls, field)
    aliases = {info.validation_alias for info in cls.model_fields.values()}
    return field.upper() if field in aliases else f"{prefix}{field}".upper()
