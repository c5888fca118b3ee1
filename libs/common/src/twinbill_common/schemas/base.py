"""The envelope every bus message shares: schema version, message id, production time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


def new_message_id() -> str:
    """A fresh random message id (32 hex characters)."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every bus message. Subclasses bump `schema_version` when their shape changes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = 1
    message_id: str = Field(default_factory=new_message_id, min_length=1, max_length=128)
    produced_at: AwareDatetime = Field(default_factory=utc_now)
