"""Settings of `make run` and `twinbill-stack`: where state lives and the local stack's URLs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DevstackSettings(BaseSettings):
    """Env prefix TWINBILL_; `MONGO_URL` (no prefix) names a real MongoDB instead of nx-27017."""

    model_config = SettingsConfigDict(env_prefix="TWINBILL_", extra="ignore", frozen=True)

    state_dir: Path = Path(".stack")
    pg_dsn: str = "postgresql://postgres@127.0.0.1:5432/twinbill"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # The broker the test suite uses, swept of stale test namespaces by `--sweep-test-queues`.
    test_amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongo_url: str | None = Field(default=None, validation_alias="MONGO_URL")
    # Shared by the local gateway and twin (GATEWAY_INTERNAL_TOKEN / TWIN_GATEWAY_INTERNAL_TOKEN) so
    # the twin's notifier may ask which users a campaign scope holds. Local development only.
    internal_token: str = "twinbill-local-internal-token"  # noqa: S105  # a local development default
