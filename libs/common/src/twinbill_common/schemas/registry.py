"""Registry data other services cache (thing models, devices) and the events that keep caches fresh."""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from twinbill_common.schemas.base import Message


class DeviceType(IntEnum):
    """Seed 000's task and history device types (the history/time endpoint has its own codes)."""

    WATER = 1
    ELECTRICITY = 2


class DataType(BaseModel):
    """A measurepoint's data type as an EnOS thing model writes it.

    `array` has `item`; `struct` has `fields` (e.g. {"value": int, "quality": int});
    `enum` has `values` (the allowed values).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["int", "float", "double", "string", "bool", "enum", "date", "timestamp", "array", "struct"]
    item: DataType | None = None
    fields: dict[str, DataType] | None = None
    values: list[Any] | None = None


class MeasurepointModel(BaseModel):
    """One measurepoint of a product's thing model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    identifier: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
    name: str = ""
    unit: str = ""
    data_type: DataType
    settable: bool = False


class ProductModel(BaseModel):
    """A product (thing model): its measurepoints, which one is the billing register."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    product_key: str
    name: str
    measurepoints: list[MeasurepointModel]
    billing_register: str | None = None
    is_gateway: bool = False


class DeviceRecord(BaseModel):
    """What another service needs to know of a device."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    product_key: str
    device_key: str
    name: str
    project_id: int
    device_type: DeviceType | None = None
    water_meter_kind: Literal["tap", "purified"] | None = None
    gateway_id: int | None = None
    gateway_product_key: str | None = None
    gateway_device_key: str | None = None
    online: bool = False
    last_seen: AwareDatetime | None = None
    instance_id: int | None = None
    # The device secret, on the internal registry endpoint only: the ingest gateway checks
    # sub-device login signatures with it (EnOS combine.login). Never on a public surface.
    secret: str | None = None


class RegistryChanged(Message):
    """A registry entity was created, updated or deleted. Routing key `{entity}.{action}`."""

    entity: Literal["project", "product", "device", "site", "building", "storey", "space", "zone",
                    "resident", "template", "instance", "tariff"]
    action: Literal["created", "updated", "deleted"]
    id: str
    project_id: int | None = None
    data: dict[str, Any] = Field(default_factory=dict)
