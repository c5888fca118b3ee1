"""Settings of `make run` and `twinbill-stack`: where state lives and the local stack's URLs."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from twinbill_common.settings import DEV_SERVICE_KEY


class DevstackSettings(BaseSettings):
    """Env prefix TWINBILL_; `MONGO_URL` (no prefix) names a real MongoDB instead of nx-27017."""

    model_config = SettingsConfigDict(env_prefix="TWINBILL_", extra="ignore", frozen=True)

    state_dir: Path = Path(".stack")
    pg_dsn: str = "postgresql://postgres@127.0.0.1:5432/twinbill"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # The broker the test suite uses, swept of stale test namespaces by `--sweep-test-queues`.
    test_amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    mongo_url: str | None = Field(default=None, validation_alias="MONGO_URL")
    # The services' shared key (TWINBILL_SERVICE_KEY, which they read too): `make run` reads the
    # twin's /internal/ paths with a service token of its own.
    service_key: str = DEV_SERVICE_KEY
    # Ingest gateway processes `make run` starts, sharing the MQTT load through the shared
    # subscription: one per core by default (the first on 8004, then 8104, 8204, ...).
    ingest_processes: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=32)
