"""HTTP schemas of the management API (seed 001 style): <Entity>Create / <Entity>Read / <Entity>Update."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from twinbill_common.errors import ValidationFailed
from twinbill_common.schemas import MeasurepointModel

Name = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(max_length=2000)]
Key = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Cellphone = Annotated[str, Field(max_length=32, pattern=r"^[0-9+\- ]*$")]
PositiveDecimal = Annotated[Decimal, Field(gt=0, max_digits=30, decimal_places=10)]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r}") from None
    return value


Timezone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_timezone)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- projects ---------------------------------------------------------------------------------

class ProjectCreate(_In):
    name: Name
    timezone: Timezone = "Asia/Shanghai"
    description: Text = ""


class ProjectUpdate(_In):
    name: Name | None = None
    timezone: Timezone | None = None
    description: Text | None = None


class ProjectRead(_Out):
    id: int
    name: str
    timezone: str
    description: str


# --- products ---------------------------------------------------------------------------------

def check_points(points: list[MeasurepointModel] | None, register: str | None) -> None:
    """Measurepoint identifiers are unique and the billing register is one of them (422 naming
    the field otherwise)."""
    if points is None:
        return
    seen: set[str] = set()
    for n, point in enumerate(points):
        if point.identifier in seen:
            raise ValidationFailed({f"measurepoints.{n}.identifier": [
                f"measurepoint identifier {point.identifier!r} is repeated"]})
        seen.add(point.identifier)
    if register is not None and register not in seen:
        raise ValidationFailed({"billing_register": [
            f"billing_register {register!r} is not one of the measurepoints"]})


def check_kind(device_type: int | None, kind: str | None) -> None:
    """water_meter_kind only on water meters."""
    if kind is not None and device_type not in (None, 1):
        raise ValidationFailed({"water_meter_kind": [
            "water_meter_kind is only for water meters (device_type 1)"]})


class ProductCreate(_In):
    product_key: Key
    name: Name
    description: Text = ""
    is_gateway: bool = False
    billing_register: str | None = None
    measurepoints: list[MeasurepointModel] = Field(default_factory=list, max_length=500)


class ProductUpdate(_In):
    """Replacing `measurepoints` re-syncs every instance of the product's devices."""

    name: Name | None = None
    description: Text | None = None
    is_gateway: bool | None = None
    billing_register: str | None = None
    measurepoints: list[MeasurepointModel] | None = Field(default=None, max_length=500)


class ProductRead(_Out):
    id: int
    product_key: str
    name: str
    description: str
    is_gateway: bool
    billing_register: str | None
    measurepoints: list[MeasurepointModel]
    template_id: int | None
    created_at: datetime
    updated_at: datetime


# --- devices ----------------------------------------------------------------------------------

class DeviceCreate(_In):
    product_key: Key
    device_key: Key
    name: Name
    description: Text = ""
    project_id: Id
    secret: Annotated[str, Field(min_length=8, max_length=128)] | None = None
    device_type: Literal[1, 2] | None = None
    water_meter_kind: Literal["tap", "purified"] | None = None
    gateway_id: Id | None = None
    space_id: Id | None = None
    multiplier: PositiveDecimal = Decimal(1)
    register_max: PositiveDecimal | None = None


class DeviceUpdate(_In):
    name: Name | None = None
    description: Text | None = None
    project_id: Id | None = None
    secret: Annotated[str, Field(min_length=8, max_length=128)] | None = None
    device_type: Literal[1, 2] | None = None
    water_meter_kind: Literal["tap", "purified"] | None = None
    gateway_id: Id | None = None
    space_id: Id | None = None
    multiplier: PositiveDecimal | None = None
    register_max: PositiveDecimal | None = None


class DeviceRead(_Out):
    id: int
    product_key: str
    device_key: str
    name: str
    description: str
    project_id: int
    device_type: int | None
    water_meter_kind: str | None
    gateway_id: int | None
    space_id: int | None
    multiplier: Decimal
    register_max: Decimal | None
    online: bool
    last_seen: datetime | None
    instance_id: int | None
    created_at: datetime
    updated_at: datetime


class DeviceCreated(DeviceRead):
    """The create answer: the only time the secret is returned."""

    secret: str


# --- site hierarchy (seed 001) ----------------------------------------------------------------

class _Place(_In):
    name: Name
    description: Text = ""
    ifc_id: Annotated[str, Field(max_length=128)] = ""


class _PlaceUpdate(_In):
    name: Name | None = None
    description: Text | None = None
    ifc_id: Annotated[str, Field(max_length=128)] | None = None


class _PlaceRead(_Out):
    id: int
    project_id: int
    name: str
    description: str
    ifc_id: str


class SiteCreate(_Place):
    project_id: Id
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None


class SiteUpdate(_PlaceUpdate):
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None


class SiteRead(_PlaceRead):
    latitude: float | None
    longitude: float | None


class BuildingCreate(_Place):
    site_id: Id


class BuildingUpdate(_PlaceUpdate):
    pass


class BuildingRead(_PlaceRead):
    site_id: int


class StoreyCreate(_Place):
    building_id: Id


class StoreyUpdate(_PlaceUpdate):
    pass


class StoreyRead(_PlaceRead):
    building_id: int


class SpaceCreate(_Place):
    storey_id: Id
    zone_id: Id | None = None


class SpaceUpdate(_PlaceUpdate):
    zone_id: Id | None = None


class SpaceRead(_PlaceRead):
    storey_id: int
    zone_id: int | None


class ZoneCreate(_Place):
    project_id: Id


class ZoneUpdate(_PlaceUpdate):
    pass


class ZoneRead(_PlaceRead):
    pass


class ResidentCreate(_In):
    space_id: Id
    name: Name
    cellphone: Cellphone = ""


class ResidentUpdate(_In):
    name: Name | None = None
    cellphone: Cellphone | None = None


class ResidentRead(_Out):
    id: int
    project_id: int
    space_id: int
    name: str
    cellphone: str
