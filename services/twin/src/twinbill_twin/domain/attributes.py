"""How a product's measurepoints become the attributes of its devices' instances (seed 002)."""

from __future__ import annotations

from dataclasses import dataclass

from twinbill_common.schemas import DataType, MeasurepointModel

NUMBER_TYPES = frozenset({"int", "float", "double", "timestamp"})


def attribute_datatype(data_type: DataType) -> str:
    """Seed 002's datatype for an EnOS data type: String, Boolean, Number, Json Object, Json Array."""
    if data_type.type in NUMBER_TYPES:
        return "Number"
    if data_type.type == "bool":
        return "Boolean"
    if data_type.type == "struct":
        return "Json Object"
    if data_type.type == "array":
        return "Json Array"
    if data_type.type == "enum":
        values = data_type.values or []
        numeric = bool(values) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        )
        return "Number" if numeric else "String"
    return "String"


@dataclass(frozen=True)
class AttributeSpec:
    """What an instance attribute mirrors of one measurepoint."""

    name: str
    displayname: str
    attrtype: str
    datatype: str
    unit: str
    measurepoint: str
    metric: str


def attribute_spec(point: MeasurepointModel) -> AttributeSpec:
    """A settable measurepoint is a State attribute (it takes an expectvalue); others are Streams."""
    return AttributeSpec(
        name=point.identifier,
        displayname=point.name,
        attrtype="State" if point.settable else "Stream",
        datatype=attribute_datatype(point.data_type),
        unit=point.unit,
        measurepoint=point.identifier,
        metric=point.identifier,
    )


def attribute_specs(points: list[MeasurepointModel]) -> list[AttributeSpec]:
    """The attribute list of a product's template, in measurepoint order."""
    return [attribute_spec(point) for point in points]
