"""Tariff schemas (TariffCreate / TariffRead / TariffUpdate) and their MongoDB and domain forms.

Field-level rules live on the models (pydantic names the field); rules across fields are checked
by `rule_problems`, which names each field it blames, so a client sees `reset_day` or
`seasons[1].blocks`, never a bare "_schema".
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from twinbill_billing.domain.bills import canonical
from twinbill_billing.domain.periods import zone
from twinbill_billing.domain.pricing import Block, Season, Tariff
from twinbill_common.errors import ValidationFailed
from twinbill_common.http import INT32_MAX, parse_model
from twinbill_common.schemas.registry import DeviceType

Money = Decimal
M = TypeVar("M", bound="TariffUpdate")


class BlockModel(BaseModel):
    """A graduated block: cumulative consumption up to `up_to` (null on the last block) at `price`."""

    model_config = ConfigDict(extra="forbid")

    up_to: Decimal | None = Field(default=None, gt=0)
    price: Money = Field(ge=0)


class SeasonModel(BaseModel):
    """Prices for the months `from_month`..`to_month` (inclusive; 10..5 wraps over the new year)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    from_month: int = Field(ge=1, le=12)
    to_month: int = Field(ge=1, le=12)
    unit_price: Money | None = Field(default=None, ge=0)
    blocks: list[BlockModel] = Field(default_factory=list, max_length=50)


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
    accumulation_period: Literal["billing_period", "month", "quarter", "year"] = "billing_period"
    reset_month: int | None = Field(default=None, ge=1, le=12)
    reset_day: int | None = Field(default=None, ge=1, le=28)
    timezone: str | None = Field(default=None, max_length=64)
    standing_charge: Money = Field(default=Decimal(0), ge=0)
    seasons: list[SeasonModel] = Field(default_factory=list, max_length=12)
    rounding: Literal["total", "line"] = "total"
    rounding_mode: Literal["half_up", "half_even", "down", "up"] = "half_up"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            zone(value)  # PeriodError (a ValueError) names the zone
        return value

    @property
    def needs_zone(self) -> bool:
        """Whether local dates matter: a window's reset date or a season's months."""
        return self.accumulation_period != "billing_period" or bool(self.seasons)


class TariffCreate(TariffUpdate):
    """A new tariff for a project's device type (and water-meter kind)."""

    project_id: int = Field(ge=1, le=INT32_MAX)
    device_type: DeviceType


def _price_problems(kind: str, unit_price: Decimal | None, blocks: list[BlockModel], where: str,
                    found: dict[str, list[str]]) -> None:
    """A flat price needs unit_price and no blocks; a tiered one graduated blocks and no unit_price."""
    def note(field: str, why: str) -> None:
        found.setdefault(f"{where}{field}", []).append(why)

    if kind == "flat":
        if unit_price is None:
            note("unit_price", "a flat tariff needs unit_price")
        if blocks:
            note("blocks", "a flat tariff has no blocks")
        return
    if unit_price is not None:
        note("unit_price", "a tiered tariff has no unit_price (each block has its price)")
    if not blocks:
        note("blocks", "a tiered tariff needs at least one block")
        return
    limits = [b.up_to for b in blocks]
    if limits[-1] is not None:
        note("blocks", "the last block must have up_to null (no upper limit)")
    bounded = [u for u in limits[:-1] if u is not None]
    if len(bounded) != len(limits) - 1:
        note("blocks", "only the last block may have up_to null")
    if any(b <= a for a, b in itertools.pairwise(bounded)):
        note("blocks", "block up_to limits must increase")


def rule_problems(body: TariffUpdate) -> dict[str, list[str]]:
    """Rules across fields, each problem under the field it concerns ({} when the tariff is sound)."""
    found: dict[str, list[str]] = {}
    if body.seasons:
        if body.unit_price is not None:
            found["unit_price"] = ["with seasons, each season has its unit_price"]
        if body.blocks:
            found["blocks"] = ["with seasons, each season has its blocks"]
        owner: dict[int, str] = {}
        for index, season in enumerate(body.seasons):
            _price_problems(body.kind, season.unit_price, season.blocks, f"seasons[{index}].", found)
            for month in sorted(Season(season.name, season.from_month, season.to_month).months):
                if month in owner:
                    found.setdefault("seasons", []).append(
                        f"month {month} is in both {owner[month]!r} and {season.name!r}")
                owner.setdefault(month, season.name)
        if uncovered := [m for m in range(1, 13) if m not in owner]:
            found.setdefault("seasons", []).append(
                f"months {', '.join(map(str, uncovered))} are in no season (seasons must cover the year)")
    else:
        _price_problems(body.kind, body.unit_price, body.blocks, "", found)
    period = body.accumulation_period
    if period == "billing_period":
        for field in ("reset_month", "reset_day"):
            if getattr(body, field) is not None:
                found[field] = ["only a month, quarter or year accumulation_period has a reset date"]
    else:
        if body.reset_day is None:
            found["reset_day"] = [f"accumulation_period {period} needs a reset date: reset_day (1-28)"]
        if period == "month" and body.reset_month is not None:
            found["reset_month"] = ["a monthly window resets every month: give reset_day only"]
        if period in ("quarter", "year") and body.reset_month is None:
            found["reset_month"] = [f"accumulation_period {period} needs a reset date: reset_month (1-12)"]
    if body.effective_to is not None and body.effective_to <= body.effective_from:
        found["effective_to"] = ["effective_to must be after effective_from"]
    if isinstance(body, TariffCreate) and body.water_meter_kind is not None and body.device_type != DeviceType.WATER:
        found["water_meter_kind"] = ["water_meter_kind applies to water meters (device_type 1) only"]
    return found


def parse_tariff(model: type[M], data: object) -> M:
    """Validate a tariff body: field rules, then the rules across fields; 422 naming each field."""
    body = parse_model(model, data)
    if problems := rule_problems(body):
        raise ValidationFailed(problems, data={"location": "json"})
    return body


def _blocks_doc(blocks: list[BlockModel]) -> list[dict[str, str | None]]:
    return [{"up_to": None if b.up_to is None else canonical(b.up_to), "price": canonical(b.price)} for b in blocks]


def to_document(body: TariffUpdate, *, now: datetime, timezone: str | None) -> dict[str, Any]:
    """The stored form: decimals as canonical strings, instants in UTC, the zone local dates use."""
    return {
        "name": body.name,
        "kind": body.kind,
        "unit_price": None if body.unit_price is None else canonical(body.unit_price),
        "blocks": _blocks_doc(body.blocks),
        "effective_from": body.effective_from.astimezone(UTC),
        "effective_to": None if body.effective_to is None else body.effective_to.astimezone(UTC),
        "water_meter_kind": body.water_meter_kind,
        "description": body.description,
        "accumulation_period": body.accumulation_period,
        "reset_month": body.reset_month,
        "reset_day": body.reset_day,
        "timezone": timezone,
        "standing_charge": canonical(body.standing_charge),
        "seasons": [
            {
                "name": s.name,
                "from_month": s.from_month,
                "to_month": s.to_month,
                "unit_price": None if s.unit_price is None else canonical(s.unit_price),
                "blocks": _blocks_doc(s.blocks),
            }
            for s in body.seasons
        ],
        "rounding": body.rounding,
        "rounding_mode": body.rounding_mode,
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
        "accumulation_period": doc.get("accumulation_period", "billing_period"),
        "reset_month": doc.get("reset_month"),
        "reset_day": doc.get("reset_day"),
        "timezone": doc.get("timezone"),
        "standing_charge": doc.get("standing_charge", "0"),
        "seasons": doc.get("seasons", []),
        "rounding": doc.get("rounding", "total"),
        "rounding_mode": doc.get("rounding_mode", "half_up"),
    }


def _blocks(raw: list[dict[str, Any]]) -> tuple[Block, ...]:
    return tuple(Block(None if b.get("up_to") is None else Decimal(b["up_to"]), Decimal(b["price"])) for b in raw)


def to_domain(doc: dict[str, Any]) -> Tariff:
    """The pricing form of a stored tariff (documents stored before these fields price as before)."""
    return Tariff(
        id=str(doc["_id"]),
        kind=doc["kind"],
        effective_from=_utc(doc["effective_from"]),
        effective_to=None if doc.get("effective_to") is None else _utc(doc["effective_to"]),
        unit_price=None if doc.get("unit_price") is None else Decimal(doc["unit_price"]),
        blocks=_blocks(doc.get("blocks", [])),
        water_meter_kind=doc.get("water_meter_kind"),
        name=doc.get("name", ""),
        accumulation_period=doc.get("accumulation_period", "billing_period"),
        reset_month=doc.get("reset_month"),
        reset_day=doc.get("reset_day"),
        timezone=doc.get("timezone") or "UTC",
        standing_charge=Decimal(doc.get("standing_charge") or "0"),
        seasons=tuple(
            Season(
                s["name"],
                int(s["from_month"]),
                int(s["to_month"]),
                None if s.get("unit_price") is None else Decimal(s["unit_price"]),
                _blocks(s.get("blocks", [])),
            )
            for s in doc.get("seasons", [])
        ),
        rounding=doc.get("rounding", "total"),
        rounding_mode=doc.get("rounding_mode", "half_up"),
    )


def overlaps(a_from: datetime, a_to: datetime | None, b_from: datetime, b_to: datetime | None) -> bool:
    """Whether two [from, to) spans (to None = open) share an instant."""
    return (a_to is None or b_from < a_to) and (b_to is None or a_from < b_to)
