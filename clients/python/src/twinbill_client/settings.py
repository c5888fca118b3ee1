"""The CLI's defaults from the environment, read once when the CLI starts (the library reads none)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CliSettings:
    """`TWINBILL_HOST` (default 127.0.0.1:8000), `TWINBILL_EMAIL`, `TWINBILL_PASSWORD`,
    `TWINBILL_TOKEN`, `TWINBILL_REFRESH_TOKEN`, `TWINBILL_API_KEY`."""

    host: str = "127.0.0.1:8000"
    email: str | None = None
    password: str | None = None
    token: str | None = None
    refresh_token: str | None = None
    api_key: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> CliSettings:
        """The settings `environ` (default: this process's environment) gives."""
        env = os.environ if environ is None else environ
        return cls(host=env.get("TWINBILL_HOST", cls.host), email=env.get("TWINBILL_EMAIL"),
                   password=env.get("TWINBILL_PASSWORD"), token=env.get("TWINBILL_TOKEN"),
                   refresh_token=env.get("TWINBILL_REFRESH_TOKEN"), api_key=env.get("TWINBILL_API_KEY"))
