"""Tariff management over HTTP (seed-001 style): create, list, get, update, delete, validation."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Billing

WATER_TIERED = {
    "project_id": 7, "device_type": 1, "water_meter_kind": "tap", "name": "tap water",
    "kind": "tiered", "effective_from": "2024-01-01T00:00:00+08:00",
    "blocks": [{"up_to": "10", "price": "3.50"}, {"up_to": "20", "price": "4.55"},
               {"up_to": None, "price": "6.10"}],
}


async def call(billing: Billing, method: str, path: str, body: Any = None) -> tuple[int, Any, Any]:
    async with billing.http.request(method, billing.url + path, json=body) as response:
        payload = None if response.status == 204 else await response.json()
        return response.status, payload, response.headers


async def test_tariff_lifecycle(billing: Billing) -> None:
    """Create (201) -> get -> list with X-Pagination -> update -> delete (204) -> 404."""
    status, created, _ = await call(billing, "POST", "/api/v1/tariffs/", WATER_TIERED)
    assert status == 201, created
    assert created["blocks"] == [{"up_to": "10", "price": "3.50"}, {"up_to": "20", "price": "4.55"},
                                 {"up_to": None, "price": "6.10"}]
    assert created["effective_from"] == "2023-12-31T16:00:00+00:00"
    tid = created["id"]
    status, got, _ = await call(billing, "GET", f"/api/v1/tariffs/{tid}")
    assert status == 200 and got == created
    status, listed, headers = await call(billing, "GET", "/api/v1/tariffs/?project_id=7&page_size=1")
    assert status == 200 and [t["id"] for t in listed] == [tid]
    assert json.loads(headers["X-Pagination"]) == {"total": 1, "total_pages": 1, "first_page": 1,
                                                    "last_page": 1, "page": 1}
    update = {k: v for k, v in WATER_TIERED.items() if k not in ("project_id", "device_type")}
    update.update(kind="flat", unit_price="3.80", blocks=[], effective_to="2030-01-01T00:00:00Z")
    status, updated, _ = await call(billing, "PUT", f"/api/v1/tariffs/{tid}", update)
    assert status == 200 and updated["kind"] == "flat" and updated["unit_price"] == "3.80"
    status, again, _ = await call(billing, "GET", f"/api/v1/tariffs/{tid}")
    assert again["effective_to"] == "2030-01-01T00:00:00+00:00" and again["blocks"] == []
    assert again["effective_from"] == "2023-12-31T16:00:00+00:00"
    status, _, _ = await call(billing, "DELETE", f"/api/v1/tariffs/{tid}")
    assert status == 204
    status, missing, _ = await call(billing, "GET", f"/api/v1/tariffs/{tid}")
    assert status == 404 and missing["code"] == 404 and missing["status"] == "Not Found"


async def test_tariff_validation_names_each_field(billing: Billing) -> None:
    """422 with errors.json.{field: [...]} for each problem."""
    status, body, _ = await call(billing, "POST", "/api/v1/tariffs/",
                                 {"device_type": 3, "kind": "tiered", "unit_price": "-1",
                                  "effective_from": "2024-01-01T00:00:00"})
    assert status == 422 and body["status"] == "Unprocessable Entity"
    assert {"project_id", "device_type", "unit_price", "effective_from"} <= set(body["errors"]["json"])
    bad_blocks = {**WATER_TIERED, "blocks": [{"up_to": "10", "price": "1"}, {"up_to": "5", "price": "2"},
                                             {"up_to": None, "price": "3"}]}
    status, body, _ = await call(billing, "POST", "/api/v1/tariffs/", bad_blocks)
    assert status == 422 and "must increase" in json.dumps(body["errors"])
    electricity_kind = {**WATER_TIERED, "device_type": 2}
    status, body, _ = await call(billing, "POST", "/api/v1/tariffs/", electricity_kind)
    assert status == 422 and "water meters" in json.dumps(body["errors"])
    for path in ("/api/v1/tariffs/", "/api/v1/tariffs/preview"):  # a body that is not UTF-8 (schemathesis)
        async with billing.http.post(billing.url + path, data=b"\x8f9\xdcb\xfe/", headers={
                "Content-Type": "application/json"}) as response:
            assert response.status == 422, path
            assert "not valid JSON" in json.dumps((await response.json())["errors"]), path


async def test_overlapping_tariffs_conflict(billing: Billing) -> None:
    """Two tariffs for the same project, type and kind in force at once: 409."""
    status, _, _ = await call(billing, "POST", "/api/v1/tariffs/", WATER_TIERED)
    assert status == 201
    status, body, _ = await call(billing, "POST", "/api/v1/tariffs/",
                                 {**WATER_TIERED, "effective_from": "2025-01-01T00:00:00Z"})
    assert status == 409 and "in force" in body["message"]
    other_kind = {**WATER_TIERED, "water_meter_kind": "purified"}
    status, _, _ = await call(billing, "POST", "/api/v1/tariffs/", other_kind)
    assert status == 201
