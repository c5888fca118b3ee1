"""Measurements the ingest gateway accepted: one message per device request, routing key
`mp.{productKey}.{deviceKey}` of the device that published it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from twinbill_common.schemas.base import Message


class DevicePoints(BaseModel):
    """The validated measurepoints of one device at one instant (epoch milliseconds, UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_key: str
    device_key: str
    time: int = Field(description="epoch milliseconds")
    measurepoints: dict[str, Any]


class MeasurementsAccepted(Message):
    """Points from one MQTT request, accepted after validation against the thing model.

    `message_id` is derived from (publisher, request id, payload) by the gateway, so a device's
    retry of the same request carries the same id and downstream stores it once.
    """

    product_key: str = Field(description="the publishing device or gateway")
    device_key: str
    request_id: str | None = None
    method: str
    received_at: int = Field(description="epoch milliseconds when the gateway received the request")
    points: list[DevicePoints]
