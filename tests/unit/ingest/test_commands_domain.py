"""Reverse control, pure part: the twin's values typed by the thing model, EnOS's set request,
set_reply parsing, and which pending command a newer one replaces."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from twinbill_common.schemas import DataType
from twinbill_ingest.domain.commands import (
    BadCommand,
    Pending,
    device_params,
    encode_set,
    live_params,
    parse_set_reply,
    set_topic,
    stamp,
    supersedes,
)

MODEL: dict[str, DataType] = {
    "setpoint": DataType(type="double"),
    "level": DataType(type="float"),
    "count": DataType(type="int"),
    "valve": DataType(type="bool"),
    "label": DataType(type="string"),
    "mode": DataType(type="enum", values=["auto", "manual"]),
    "speed": DataType(type="enum", values=[1, 2, 3]),
    "at": DataType(type="timestamp"),
    "day": DataType(type="date"),
    "limits": DataType(type="array", item=DataType(type="double")),
    "reading": DataType(type="struct", fields={"value": DataType(type="double"), "quality": DataType(type="int")}),
}


@pytest.mark.parametrize(
    ("identifier", "sent", "expected"),
    [
        ("setpoint", "12.20", Decimal("12.20")),
        ("setpoint", " -0.001 ", Decimal("-0.001")),
        ("level", 3, Decimal(3)),
        ("count", "42", 42),
        ("count", "42.0", 42),
        ("valve", True, True),
        ("valve", "false", False),
        ("valve", "1", True),
        ("label", "open", "open"),
        ("label", Decimal("1.50"), "1.50"),
        ("mode", "manual", "manual"),
        ("speed", "2", 2),
        ("at", "1763712000000", 1763712000000),
        ("day", "2026-11-21", "2026-11-21"),
        ("limits", ["1.5", "2.50"], [Decimal("1.5"), Decimal("2.50")]),
        ("limits", "[1.5, 2.50]", [Decimal("1.5"), Decimal("2.50")]),
        ("reading", {"value": "9.90", "quality": "0"}, {"value": Decimal("9.90"), "quality": 0}),
    ],
)
def test_values_are_typed_by_the_thing_model(identifier: str, sent: Any, expected: Any) -> None:
    """Each model type gets the value the device expects, decimals exact."""
    typed = device_params({identifier: sent}, MODEL)[identifier]
    assert typed == expected
    assert type(typed) is type(expected)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"humidity": "1"}, "unknown measurepoint identifier 'humidity'"),
        ({"setpoint": "twelve"}, "setpoint: 'twelve' is not a number"),
        ({"setpoint": "NaN"}, "setpoint: 'NaN' is not a finite number"),
        ({"count": "1.5"}, "count: '1.5' is not an integer"),
        ({"valve": "maybe"}, "valve: 'maybe' is not a boolean"),
        ({"mode": "turbo"}, "mode: 'turbo' is not one of ['auto', 'manual']"),
        ({"at": "-5"}, "at: '-5' is not a non-negative integer"),
        ({"reading": {"value": "1", "extra": 1}}, "reading: unknown struct field 'extra'"),
        ({"limits": {"a": 1}}, "limits: expected array, got dict"),
        ({"setpoint": None}, "setpoint: null is not a double"),
        ({}, "no values to set"),
    ],
)
def test_a_value_that_cannot_fit_names_what_is_wrong(values: dict[str, Any], reason: str) -> None:
    """BadCommand says which identifier and why."""
    with pytest.raises(BadCommand) as err:
        device_params(values, MODEL)
    assert reason in str(err.value)


def test_the_set_request_is_enos_shape_with_numbers_written_exactly() -> None:
    """{"id", "version": "1.0", "params", "method"}: decimals as JSON numbers with their digits."""
    raw = encode_set("abc", {"setpoint": Decimal("12.20"), "valve": True, "reading": {"value": Decimal("1E+2")}})
    assert raw == (
        b'{"id":"abc","version":"1.0","params":{"setpoint":12.20,"valve":true,"reading":{"value":1E+2}},'
        b'"method":"thing.service.measurepoint.set"}'
    )
    assert json.loads(raw, parse_float=Decimal)["params"]["setpoint"] == Decimal("12.20")
    assert set_topic("pk", "dk") == "/sys/pk/dk/thing/service/measurepoint/set"


def test_set_replies_are_read_and_other_topics_ignored() -> None:
    """The reply names the device by its topic; a malformed body keeps code None."""
    topic = "/sys/pk/dk/thing/service/measurepoint/set_reply"
    reply = parse_set_reply(topic, b'{"id":"abc","code":200,"data":{}}')
    assert reply is not None
    assert (reply.product_key, reply.device_key, reply.request_id, reply.code) == ("pk", "dk", "abc", 200)
    refused = parse_set_reply(topic, b'{"id":7,"code":1204,"message":"bad value"}')
    assert refused is not None
    assert (refused.request_id, refused.code, refused.message) == ("7", 1204, "bad value")
    garbled = parse_set_reply(topic, b"not json")
    assert garbled is not None
    assert garbled.code is None
    assert parse_set_reply("/sys/pk/dk/thing/measurepoint/post_reply", b"{}") is None


def test_a_later_command_supersedes_only_what_it_covers() -> None:
    """A later command replaces an earlier one when it sets all of its identifiers; a partial
    overlap keeps both, and the earlier one then sends only what no later command has reached."""
    v1 = Pending((100, 1), frozenset({"a", "b"}))
    assert supersedes(Pending((200, 2), frozenset({"a", "b", "c"})), v1)
    assert not supersedes(Pending((200, 2), frozenset({"a"})), v1)
    assert not supersedes(Pending((100, 1), frozenset({"a", "b"})), v1)
    assert not supersedes(v1, Pending((200, 2), frozenset({"a"})))
    params = {"a": 1, "b": 2}
    assert live_params(params, order=(100, 1), delivered={"a": (200, 2)}) == {"b": 2}
    assert live_params(params, order=(100, 1), delivered={"a": (100, 1), "b": (100, 1)}) == params  # sent again
    assert live_params(params, order=(100, 1), delivered={"a": (300, 3), "b": (200, 2)}) == {}


def test_the_twins_versions_do_not_order_commands_with_different_identifiers() -> None:
    """The twin's version is the highest attribute counter: {setpoint, limit} can be v5 and a
    later {limit} v2. The later command must win on `limit`: the order is produced_at first."""
    earlier = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    later = earlier + timedelta(milliseconds=1)
    both = Pending(stamp(earlier, 5), frozenset({"setpoint", "limit"}))
    limit_only = Pending(stamp(later, 2), frozenset({"limit"}))
    assert not supersedes(both, limit_only)
    assert live_params({"limit": 1}, order=limit_only.order, delivered={"limit": both.order}) == {"limit": 1}
    assert live_params({"limit": 1, "setpoint": 2}, order=both.order, delivered={"limit": limit_only.order}) == {
        "setpoint": 2
    }
    assert stamp(earlier, 5) < stamp(earlier, 6)  # same instant: the version decides
