"""Tariff schemas (TariffCreate / TariffRead / TariffUpdate) and their MongoDB and domain forms."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from twinbill_billing.domain.bills import canonical
from twinbill_billing.domain.pricing import Block, Tariff
from twinbill_common.http import INT32_MAX
from twinbill_common.schemas.registry import DeviceType

Money = Decimal


class BlockModel(BaseModel):
    """A graduated block: cumulative consumption up to `up_to` (null on the last block) at `price`."""

    model_config = ConfigDict(extra="forbid")

    up_to: Decimal | None = Field(default=None, gt=0)
    price: Money = Field(ge=0)


class TariffUpdate(BaseModel):
    """A tariff's full definition (PUT replaces it)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    kind: Literal["flat", "tiered"]
    unit_price: Money | None = Field(default=None, ge=0)
    blocks: list[BlockModel] = Field(default_factory=list, max_length=50)
    effective_from: AwareDatetime
    effective_to: AwareDatetime | None = None
    water_meter_kind: Literal["tap", "purified"] | None = None
    description: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _consistent(self) -> TariffUpdate:
        if self.kind == "flat":
            if self.unit_price is None:
                raise ValueError("a flat tariff needs unit_price")
            if self.blocks:
                raise ValueError("a flat tariff has no blocks")
        else:
            if not self.blocks:
                raise ValueError("a tiered tariff needs at least one block")
            if self.unit_price is not None:
                raise ValueError("a tiered tariff has no unit_price (each block has its price)")
            limits = [b.up_to for b in self.blocks]
            if limits[-1] is not None:
                raise ValueError("the last block must have up_to null (no upper limit)")
            bounded = [u for u in limits[:-1] if u is not None]
            if len(bounded) != len(limits) - 1:
                raise ValueError("only the last block may have up_to null")
            if any(b <= a for a, b in itertools.pairwise(bounded)):
                raise ValueError("block up_to limits must increase")
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError("effective_to must be after effective_from")
        return self


class TariffCreate(TariffUpdate):
    """A new tariff for a project's device type (and water-meter kind)."""

    project_id: int = Field(ge=1, le=INT32_MAX)
    device_type: DeviceType

    @model_validator(mode="after")
    def _kind_for_water(self) -> TariffCreate:
        if self.water_meter_kind is not None and self.device_type != DeviceType.WATER:
            raise ValueError("water_meter_kind applies to water meters (device_type 1) only")
        return self


def to_document(body: TariffUpdate, *, now: datetime) -> dict[str, Any]:
    """The stored form: decimals as canonical strings, instants in UTC."""
    return {
        "name": body.name,
        "kind": body.kind,
        "unit_price": None if body.unit_price is None else canonical(body.unit_price),
        "blocks": [
            {"up_to": None if b.up_to is None else canonical(b.up_to), "price": canonical(b.price)} for b in body.blocks
        ],
        "effective_from": body.effective_from.astimezone(UTC),
        "effective_to": None if body.effective_to is None else body.effective_to.astimezone(UTC),
        "water_meter_kind": body.water_meter_kind,
        "description": body.description,
        "updated_at": now,
    }


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def to_read(doc: dict[str, Any]) -> dict[str, Any]:
    """TariffRead: the JSON a client gets back (id is the ObjectId's hex)."""
    return {
        "id": str(doc["_id"]),
        "project_id": doc["project_id"],
        "device_type": doc["device_type"],
        "water_meter_kind": doc.get("water_meter_kind"),
        "name": doc.get("name", ""),
        "kind": doc["kind"],
        "unit_price": doc.get("unit_price"),
        "blocks": doc.get("blocks", []),
        "effective_from": _utc(doc["effective_from"]).isoformat(),
        "effective_to": None if doc.get("effective_to") is None else _utc(doc["effective_to"]).isoformat(),
        "description": doc.get("description", ""),
    }


def to_domain(doc: dict[str, Any]) -> Tariff:
    """The pricing form of a stored tariff."""
    return Tariff(
        id=str(doc["_id"]),
        kind=doc["kind"],
        effective_from=_utc(doc["effective_from"]),
        effective_to=None if doc.get("effective_to") is None else _utc(doc["effective_to"]),
        unit_price=None if doc.get("unit_price") is None else Decimal(doc["unit_price"]),
        blocks=tuple(
            Block(None if b.get("up_to") is None else Decimal(b["up_to"]), Decimal(b["price"]))
            for b in doc.get("blocks", [])
        ),
        water_meter_kind=doc.get("water_meter_kind"),
    )


def overlaps(a_from: datetime, a_to: datetime | None, b_from: datetime, b_to: datetime | None) -> bool:
    """Whether two [from, to) spans (to None = open) share an instant."""
    return (a_to is None or b_from < a_to) and (b_to is None or a_from < b_to)
