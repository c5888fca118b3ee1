"""The simulated gateway's side of reverse control: read a set request, answer it, report it."""

from __future__ import annotations

import json

from twinbill_simulator.commands import applied_entry, parse_set, set_reply, set_topic
from twinbill_simulator.gateway import _Sub
from twinbill_simulator.meters import Meter


def test_a_set_request_is_answered_200_with_its_id_and_reported() -> None:
    topic = set_topic("demo_water_meter", "m1")
    assert topic == "/sys/demo_water_meter/m1/thing/service/measurepoint/set"
    request = parse_set(topic, b'{"id":"42","version":"1.0","params":{"flow_limit":12.2,"valve":true},'
                               b'"method":"thing.service.measurepoint.set"}')
    assert request is not None and request.request_id == "42"
    assert request.params == {"flow_limit": 12.2, "valve": True}
    reply_topic, body = set_reply(request)
    assert reply_topic == f"{topic}_reply"
    assert json.loads(body) == {"id": "42", "code": 200, "data": {}, "message": ""}
    entry = json.loads(applied_entry(request, at_ms=1_700_000_000_000))
    assert entry == {"productKey": "demo_water_meter", "deviceKey": "m1",
                     "measurepoints": {"flow_limit": 12.2, "valve": True}, "time": 1_700_000_000_000}


def test_other_topics_and_bodies_are_not_set_requests() -> None:
    topic = set_topic("p", "d")
    assert parse_set(f"{topic}_reply", b'{"id":"1","params":{}}') is None
    assert parse_set("/sys/p/d/thing/measurepoint/post_reply", b'{"id":"1","params":{}}') is None
    assert parse_set(topic, b"not json") is None
    assert parse_set(topic, b'{"params":{"a":1}}') is None  # no id to answer
    assert parse_set(topic, b'{"id":"1","params":[1]}') is None


def test_a_meter_with_a_reading_struct_reports_it_beside_the_register() -> None:
    import random
    from decimal import Decimal

    meter = Meter("water", Decimal("10.5"), daily_mean=1.0, rng=random.Random(1))
    plain = _Sub("p", "d", "s", "total", meter)
    mirrored = _Sub("p", "d", "s", "total", meter, reading_point="reading")
    assert json.loads(plain.measurepoints(Decimal("10.5"))) == {"total": 10.5}
    assert json.loads(mirrored.measurepoints(Decimal("10.5"))) == {
        "total": 10.5, "reading": {"value": 10.5, "quality": 0}}
