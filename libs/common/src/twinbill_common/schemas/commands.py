"""Reverse control: set desired values on a device. Routing key `set.{productKey}.{deviceKey}`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, Field

from twinbill_common.schemas.base import Message


class SetMeasurepoints(Message):
    """Desired values for settable measurepoints, versioned, delivered until `expires_at`."""

    product_key: str
    device_key: str
    instance_id: int
    version: int = Field(ge=1)
    values: dict[str, Any]
    expires_at: AwareDatetime


class CommandOutcome(Message):
    """What became of a command at the device: `applied` (set_reply code 200), `refused` (any
    other code, kept in `code`/`reply_message`), or `expired` (never delivered before
    `expires_at`). Routing key `outcome.{productKey}.{deviceKey}` on `commands`; published by the
    ingest gateway, recorded by the twin on the desired values and as an event.

    `instance_id`, `version` and `identifiers` are those of the command the reply answers; they
    are None / empty when the gateway no longer remembers it (a reply after its restart).
    """

    product_key: str
    device_key: str
    request_id: str | None = None
    outcome: Literal["applied", "refused", "expired"]
    code: int | None = None
    reply_message: str | None = None
    instance_id: int | None = None
    version: int | None = None
    identifiers: list[str] = Field(default_factory=list)
    at: AwareDatetime
