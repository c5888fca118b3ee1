"""Reverse control: set desired values on a device. Routing key `set.{productKey}.{deviceKey}`."""

from __future__ import annotations

from typing import Any

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
