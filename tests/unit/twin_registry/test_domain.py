"""Pure registry rules: measurepoint -> attribute mapping, paging, expectvalue typing, CSV rows."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from twinbill_common.paging import page_total, smorest_pagination
from twinbill_common.schemas import DataType, MeasurepointModel
from twinbill_twin.domain.attributes import attribute_datatype, attribute_spec
from twinbill_twin.domain.control import BadExpectValue, typed_expectvalue
from twinbill_twin.domain.csv_rows import COLUMNS, parse_csv


@pytest.mark.parametrize(("data_type", "expected"), [
    ({"type": "int"}, "Number"), ({"type": "float"}, "Number"), ({"type": "double"}, "Number"),
    ({"type": "timestamp"}, "Number"), ({"type": "string"}, "String"), ({"type": "date"}, "String"),
    ({"type": "bool"}, "Boolean"),
    ({"type": "struct", "fields": {"value": {"type": "double"}, "quality": {"type": "int"}}}, "Json Object"),
    ({"type": "array", "item": {"type": "int"}}, "Json Array"),
    ({"type": "enum", "values": [0, 1, 2]}, "Number"), ({"type": "enum", "values": ["on", "off"]}, "String"),
])
def test_datatype_mapping(data_type: dict[str, Any], expected: str) -> None:
    """Every EnOS data type maps to one of seed 002's five datatypes."""
    assert attribute_datatype(DataType.model_validate(data_type)) == expected


def test_settable_points_are_state_others_stream() -> None:
    """Settable -> State (takes an expectvalue); otherwise Stream; metric is the identifier."""
    point = MeasurepointModel(identifier="valve", name="阀门", unit="", data_type=DataType(type="bool"),
                              settable=True)
    spec = attribute_spec(point)
    assert (spec.attrtype, spec.datatype, spec.metric, spec.measurepoint, spec.displayname) == (
        "State", "Boolean", "valve", "valve", "阀门")
    assert attribute_spec(point.model_copy(update={"settable": False})).attrtype == "Stream"


@pytest.mark.parametrize(("total", "size", "pages"), [(0, 10, 0), (1, 10, 1), (10, 10, 1), (11, 10, 2)])
def test_page_total(total: int, size: int, pages: int) -> None:
    """pageTotal rounds up."""
    assert page_total(total, size) == pages


def test_smorest_pagination_header() -> None:
    """X-Pagination as flask-smorest writes it: no previous on the first page, no next on the last."""
    assert smorest_pagination(total=25, page=1, page_size=10) == {
        "total": 25, "total_pages": 3, "first_page": 1, "last_page": 3, "page": 1, "next_page": 2}
    assert smorest_pagination(total=0, page=1, page_size=10) == {"total": 0, "total_pages": 0}


@pytest.mark.parametrize(("text", "datatype", "value"), [
    ("12.20", "Number", Decimal("12.20")), ("true", "Boolean", True), ("0", "Boolean", False),
    ('{"a": 1}', "Json Object", {"a": 1}), ("[1, 2]", "Json Array", [1, 2]), ("x", "String", "x"),
])
def test_expectvalue_typing(text: str, datatype: str, value: Any) -> None:
    """expectvalue strings become the device's typed value (decimals stay exact)."""
    assert typed_expectvalue(text, datatype=datatype) == value


@pytest.mark.parametrize(("text", "datatype"), [
    ("abc", "Number"), ("NaN", "Number"), ("yes", "Boolean"), ("[1]", "Json Object"), ("{", "Json Array")])
def test_bad_expectvalues(text: str, datatype: str) -> None:
    """An expectvalue that does not fit is refused with the reason."""
    with pytest.raises(BadExpectValue):
        typed_expectvalue(text, datatype=datatype)


def test_csv_rows_are_checked_one_by_one_and_across_the_file() -> None:
    """Every bad row is named by line and column; repeats across rows are caught."""
    text = ("site,building,storey,space,zone,product_key,device_key,device_type,water_meter_kind\n"
            "A,B,1F,101,,pk,d1,1,tap\n"
            "A,,1F,101,,pk,d2,2,\n"
            "A,B,1F,101,,pk,d1,1,\n"
            "A,B,1F,102,,pk,d3,2,tap\n"
            ",,,,,,,,\n"
            "A,B,1F,,Z,,,,\n")
    parsed = parse_csv(text)
    assert list(parsed.rows) == [2]
    assert parsed.errors == {
        "3._row": ["storey needs a building"],
        "4.device_key": ["repeats the device of line 2"],
        "5._row": ["water_meter_kind is only for water meters (device_type 1)"],
        "6._row": ["a row needs a site or a device"],
        "7._row": ["zone needs a space"],
    }


def test_csv_header_is_required_and_known() -> None:
    """Unknown columns and an empty file are refused at line 1."""
    assert "1._header" in parse_csv("").errors
    assert "1._header" in parse_csv("site,colour\nA,red\n").errors
    assert not parse_csv(",".join(COLUMNS) + "\n").errors
