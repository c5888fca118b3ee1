"""Check one measurepoint value against its data type in the product's thing model.

A value may be a scalar, an array, a struct, or any of these wrapped with a data quality as
`{"value": ..., "quality": <int>}` (EnOS's quality form). Numbers arrive as `int` or `Decimal`
(the payload is parsed with `parse_float=Decimal`), so the device's decimal text is kept.
Beyond its type, a value must be one the twin can store (twinbill_common.schemas.telemetry:
numbers finite and within a double's range, text without NUL or lone surrogates, no null,
arrays of 1 to 32,767 elements), so a device never gets a 200 for a point that would be
dead-lettered downstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from twinbill_common.schemas import DataType, ProductModel
from twinbill_common.schemas.telemetry import array_problem, number_problem, text_problem
from twinbill_ingest.domain.codes import Code, Rejection

QUALITY_KEYS = frozenset({"value", "quality"})
_NUMBERS = frozenset({"float", "double"})
_INTEGRAL = frozenset({"int", "float", "double"})
CompiledModel = Mapping[str, DataType]

# What a compiled model says of an identifier, for the checks that run on every point: a number
# (float/double: an int or a Decimal), an integer (int), a text (string); anything else goes
# through check_point, which knows every type and says what is wrong.
NUMBER, INTEGER, TEXT, OTHER = 1, 2, 3, 0
_FAST_KINDS = {"float": NUMBER, "double": NUMBER, "int": INTEGER, "string": TEXT}
# Integers strictly inside this bound are finite doubles (the limit is about 1.8e308); larger
# ones go through number_problem.
INT_LIMIT = 10**300


class Model(dict[str, DataType]):
    """A product's measurepoints by identifier, with each identifier's fast check compiled once
    per thing model (`kinds`), not looked up per point."""

    def __init__(self, measurepoints: Mapping[str, DataType]) -> None:
        super().__init__(measurepoints)
        self.kinds: dict[str, int] = compile_kinds(measurepoints)


def compile_kinds(model: Mapping[str, DataType]) -> dict[str, int]:
    """Identifier -> NUMBER / INTEGER / TEXT / OTHER for a model."""
    return {identifier: _FAST_KINDS.get(data_type.type, OTHER) for identifier, data_type in model.items()}


def compile_model(product: ProductModel) -> dict[str, DataType]:
    """The product's measurepoints by identifier, compiled for the per-point checks (a Model;
    typed as the plain mapping validation accepts, which compiles a plain one per request)."""
    return Model({point.identifier: point.data_type for point in product.measurepoints})


def check_point(identifier: str, value: Any, *, model: CompiledModel) -> None:
    """Raise Rejection(1204) unless `value` fits the measurepoint `identifier` of `model`."""
    data_type = model.get(identifier)
    if data_type is None:
        raise Rejection(Code.MODEL_INVALID, f"unknown measurepoint identifier {identifier!r}")
    kind, value_type = data_type.type, type(value)
    # Fast paths (the usual meter reading, an integer, a string); anything else, including a
    # number or text that cannot be stored, goes to check_value, which says what is wrong.
    if (value_type is Decimal and kind in _NUMBERS) or (value_type is int and kind in _INTEGRAL):
        if number_problem(value) is None:
            return
    elif value_type is str and kind == "string" and text_problem(value) is None:
        return
    if isinstance(value, dict) and data_type.type != "struct":
        _check_quality_form(identifier, value, data_type)
        return
    quality_form = isinstance(value, dict) and value.keys() <= QUALITY_KEYS and "value" in value
    if data_type.type == "struct" and quality_form and not _fits_struct(value, data_type):
        _check_quality_form(identifier, value, data_type)  # a struct value wrapped with a quality
        return
    check_value(value, data_type, path=identifier)


def _fits_struct(value: dict[str, Any], data_type: DataType) -> bool:
    return value.keys() <= (data_type.fields or {}).keys()


def _check_quality_form(identifier: str, value: dict[str, Any], data_type: DataType) -> None:
    extra = value.keys() - QUALITY_KEYS
    if extra or "value" not in value:
        what = f"unexpected keys {sorted(extra)}" if extra else "no 'value'"
        raise Rejection(
            Code.MODEL_INVALID,
            f'{identifier}: a {data_type.type} point with quality is {{"value", "quality"}}, got {what}',
        )
    check_value(value["value"], data_type, path=f"{identifier}.value")
    if "quality" in value and not _is_int(value["quality"]):
        raise Rejection(Code.MODEL_INVALID, f"{identifier}.quality: expected int, got {_kind(value['quality'])}")


def check_value(value: Any, data_type: DataType, *, path: str) -> None:
    """Raise Rejection(1204) naming `path` unless `value` has the type `data_type` and can be
    stored."""
    kind = data_type.type
    if kind == "int" or kind == "timestamp":
        ok = _is_int(value) and (kind == "int" or value >= 0)
    elif kind in ("float", "double"):
        ok = _is_int(value) or isinstance(value, Decimal)
    elif kind == "string":
        ok = isinstance(value, str)
    elif kind == "bool":
        ok = isinstance(value, bool) or (_is_int(value) and value in (0, 1))
    elif kind == "enum":
        ok = _is_scalar(value) and (data_type.values is None or _in_enum(value, data_type.values))
    elif kind == "date":
        ok = isinstance(value, str) or (_is_int(value) and value >= 0)
    elif kind == "array":
        if not isinstance(value, list):
            raise Rejection(Code.MODEL_INVALID, f"{path}: expected array, got {_kind(value)}")
        if problem := array_problem(value):
            raise Rejection(Code.MODEL_INVALID, f"{path}: {problem}")
        for index, item in enumerate(value):
            if data_type.item is None:
                if not _is_scalar(item):
                    raise Rejection(Code.MODEL_INVALID, f"{path}[{index}]: expected a scalar, got {_kind(item)}")
                _check_storable(item, path=f"{path}[{index}]")
            else:
                check_value(item, data_type.item, path=f"{path}[{index}]")
        return
    else:  # struct
        if not isinstance(value, dict):
            raise Rejection(Code.MODEL_INVALID, f"{path}: expected struct, got {_kind(value)}")
        fields = data_type.fields or {}
        for name, field_value in value.items():
            field_type = fields.get(name)
            if field_type is None:
                raise Rejection(Code.MODEL_INVALID, f"{path}: unknown struct field {name!r}")
            check_value(field_value, field_type, path=f"{path}.{name}")
        return
    if not ok:
        raise Rejection(Code.MODEL_INVALID, f"{path}: expected {kind}, got {_kind(value)} {_short(value)}")
    _check_storable(value, path=path)


def _check_storable(value: Any, *, path: str) -> None:
    """Raise Rejection(1204) naming `path` if the twin could not store this scalar."""
    problem = None
    if isinstance(value, str):
        problem = text_problem(value)
    elif isinstance(value, Decimal) or _is_int(value):
        problem = number_problem(value)
    if problem is not None:
        raise Rejection(Code.MODEL_INVALID, f"{path}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    """A string, number or bool (null is not a value the twin stores)."""
    return isinstance(value, str | int | Decimal)


def _in_enum(value: Any, values: list[Any]) -> bool:
    return any(value == allowed and type(value) is not bool for allowed in values)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, Decimal) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
