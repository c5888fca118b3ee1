"""Seed 000's history endpoints against the seed's own examples (tests/fixtures), field by field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from bson import json_util
from yarl import URL

from tests.rawhttp import raw_get

from .conftest import Billing

FIXTURES = Path(__file__).parents[2] / "fixtures"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


async def insert_bills(billing: Billing, fixture: dict[str, Any]) -> None:
    docs = json_util.loads(json.dumps(fixture["bills"]))
    await billing.db.bills.insert_many(docs)


async def get(billing: Billing, path: str) -> tuple[int, dict[str, Any]]:
    url = billing.url + quote(path, safe="/?&=.:-")
    async with billing.http.get(url) as response:
        body: dict[str, Any] = await response.json()
        return response.status, body


# Keys twinbill adds after the seed's own in each bill item (issue 11: bills and credit notes with
# their links); the seed's keys, their order and their values stay exactly as the seed shows them.
ADDED = {"kind": "bill", "status": "issued", "credits_bill_id": None, "credit_note_id": None,
         "estimated": False}


def assert_same(actual: Any, expected: Any, where: str = "") -> None:
    """Field-by-field comparison naming the first differing path (and key order of objects); a bill
    item (it has an `id`) carries the seed's keys in order, then exactly the ADDED keys."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        if "id" in expected and "to_time" in expected:
            assert list(actual) == [*expected, *ADDED], f"{where}: keys {list(actual)}"
            assert {key: actual[key] for key in ADDED} == ADDED, where
            actual = {key: actual[key] for key in expected}
        assert list(actual) == list(expected), f"{where}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}"
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{where}[{index}]")
    else:
        assert actual == expected and type(actual) is type(expected), f"{where}: {actual!r} != {expected!r}"


async def test_history_page_matches_seed_example(billing: Billing) -> None:
    """GET /history/ page 2 of 4, newest first, ids are the bills' ObjectIds, two decimals."""
    fixture = load("seed000_history.json")
    await insert_bills(billing, fixture)
    status, body = await get(billing, fixture["request"])
    assert status == 200
    assert_same(body, fixture["response"])
    status, first = await get(billing, fixture["request"].replace("page=2", "page=1"))
    assert first["data"]["next"] is True and first["data"]["previous"] is None
    assert [r["id"] for r in first["data"]["results"]] == ["5c892dd4a90d784b33b9002e",
                                                           "5c892dd3a90d784b33b9002d"]
    status, everything = await get(billing, "/api/v1/scheduler/history/?project_id=42&device_type=0")
    assert everything["data"]["count"] == 6 and everything["data"]["page_size"] == 10


async def test_history_time_matches_seed_example(billing: Billing) -> None:
    """GET /history/time/: dates like 2019-9-21, its own device-type codes, previous readings."""
    fixture = load("seed000_history_time.json")
    await insert_bills(billing, fixture)
    status, body = await get(billing, fixture["request"])
    assert status == 200
    assert_same(body, fixture["response"])
    status, verbatim = await get(billing, fixture["verbatim_request"])
    assert status == 200 and verbatim == {"meta": {"code": 0, "message": "success"}, "data": []}
    status, by_id = await get(billing, fixture["request"].replace("000090502121", "7001"))
    assert [item["id"] for item in by_id["data"]] == [i["id"] for i in fixture["response"]["data"]]


async def test_history_time_device_type_codes_and_wm_type(billing: Billing) -> None:
    """10 = all, 1 = water (filtered by wm_type), 0 = electricity; the response uses those codes."""
    fixture = load("seed000_history_time.json")
    await insert_bills(billing, fixture)
    base = "/api/v1/scheduler/history/time/?project_id=28&start_date=2019-10-1&end_date=2019-11-1"
    _, water = await get(billing, base + "&device_type=1&wm_type=自来水表")
    assert [(i["device_id"], i["device_type"]) for i in water["data"]] == [("000090503333", 1)]
    _, purified = await get(billing, base + "&device_type=1&wm_type=纯净水表")
    assert purified["data"] == []
    _, everything = await get(billing, base + "&device_type=10")
    assert sorted(i["device_type"] for i in everything["data"]) == [0, 0, 0, 1]


async def test_history_time_seed_query_verbatim_with_raw_utf8(billing: Billing) -> None:
    """curl sends the seed's `wm_type=自来水表` unencoded: answered, not refused by the parser."""
    await insert_bills(billing, load("seed000_history_time.json"))
    url = URL(billing.url)
    assert url.host is not None and url.port is not None
    target = ("/api/v1/scheduler/history/time/?project_id=28&start_date=2019-10-1&end_date=2019-11-1"
              "&device_type=1&wm_type=自来水表").encode()
    status, body = await raw_get(url.host, url.port, target)
    assert status == 200, body
    assert [(i["device_id"], i["device_type"]) for i in body["data"]] == [("000090503333", 1)]


@pytest.mark.parametrize(("query", "bad_fields"), [
    ("/history/?project_id=1&device_type=0&page=9223372036854775807", {"page"}),
    ("/history/?project_id=9223372036854775808&device_type=0", {"project_id"}),
    ("/history/?project_id=-1&device_type=0", {"project_id"}),
    ("/history/?project_id=1&device_type=0&device_id=a%00b", {"device_id"}),
    ("/history/time/?project_id=2147483648&device_type=10&start_date=2019-10-1&end_date=2019-10-2",
     {"project_id"}),
])
async def test_history_limits_are_named_not_crashed_on(billing: Billing, query: str, bad_fields: set[str]) -> None:
    status, body = await get(billing, "/api/v1/scheduler" + query.replace("%00", "\x00"))
    assert status == 400, body
    assert set(body["data"]["errors"]) == bad_fields


async def test_history_bad_input_names_the_field(billing: Billing) -> None:
    """Missing or wrong parameters: seed-000 envelope with a non-zero code naming each field."""
    status, body = await get(billing, "/api/v1/scheduler/history/?device_type=5&page=0")
    assert status == 400 and body["meta"]["code"] == 400
    assert set(body["data"]["errors"]) == {"project_id", "device_type", "page"}
    status, body = await get(billing, "/api/v1/scheduler/history/time/?project_id=1&device_type=2"
                                      "&start_date=2019-13-1&wm_type=x")
    assert status == 400
    assert set(body["data"]["errors"]) == {"device_type", "start_date", "end_date", "wm_type"}
