"""Meter lifecycle on the real twin: installation, exchange, removal, multiplier changes recorded
in time order, errors naming the field, and billing reading them with its devices."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp.test_utils import TestClient

from tests.integration.twin_registry.conftest import make_device, make_product, make_project

Client = TestClient[Any, Any]


async def post_event(twin: Client, device_id: int, body: dict[str, Any]) -> tuple[int, Any]:
    resp = await twin.post(f"/api/v1/devices/{device_id}/lifecycle/", json=body)
    return resp.status, await resp.json()


async def test_lifecycle_recorded_and_served_to_billing(twin: Client) -> None:
    """Installation, exchange with a new multiplier and 6-digit register, multiplier change,
    removal: listed oldest first with the parameters before/after, the device's current
    multiplier and register follow, and /internal/v1/billing/devices carries them."""
    project = await make_project(twin)
    product = await make_product(twin)
    device = await make_device(twin, product_key=product["product_key"], project_id=project, device_type=2,
                               register_max="100000")
    status, installed = await post_event(twin, device["id"], {
        "kind": "installation", "at": "2024-01-01T00:00:00+08:00", "initial_reading": "12.5"})
    assert status == 201, installed
    assert installed["multiplier"] == "1" and installed["register_digits"] == 5
    status, exchanged = await post_event(twin, device["id"], {
        "kind": "exchange", "at": "2024-03-10T09:30:00+08:00", "final_reading": "99990",
        "initial_reading": "0", "multiplier": "40", "register_digits": 6, "meter_number": "NEW-1"})
    assert status == 201, exchanged
    assert (exchanged["multiplier_before"], exchanged["multiplier"]) == ("1", "40")
    assert (exchanged["register_digits_before"], exchanged["register_digits"]) == (5, 6)
    status, changed = await post_event(twin, device["id"], {
        "kind": "multiplier_change", "at": "2024-04-01T00:00:00+08:00", "reading": "7.25", "multiplier": "80"})
    assert status == 201, changed
    got = await (await twin.get(f"/api/v1/devices/{device['id']}")).json()
    assert got["multiplier"] == "80" and Decimal(got["register_max"]) == 1000000

    listed = await (await twin.get(f"/api/v1/devices/{device['id']}/lifecycle/")).json()
    assert [e["kind"] for e in listed] == ["installation", "exchange", "multiplier_change"]

    body = await (await twin.get("/internal/v1/billing/devices", params={
        "project_id": str(project), "device_type": "2"})).json()
    events = body["devices"][0]["lifecycle"]
    assert events[1] == {
        "id": exchanged["id"], "kind": "exchange", "at": "2024-03-10T01:30:00+00:00",
        "reading_before": "99990", "reading_after": "0", "multiplier": "40", "multiplier_before": "1",
        "register_max": "1000000", "register_max_before": "100000"}
    assert events[2]["reading_before"] == events[2]["reading_after"] == "7.25"

    status, removed = await post_event(twin, device["id"], {
        "kind": "removal", "at": "2024-05-01T00:00:00+08:00", "final_reading": "20"})
    assert status == 201, removed
    status, answer = await post_event(twin, device["id"], {
        "kind": "exchange", "at": "2024-06-01T00:00:00+08:00", "final_reading": "21", "initial_reading": "0"})
    assert status == 422 and "kind" in answer["errors"]["json"], answer
    # The latest event can be taken back (a mistaken entry); the parameters before it return.
    resp = await twin.delete(f"/api/v1/devices/{device['id']}/lifecycle/{changed['id']}")
    assert resp.status == 404
    resp = await twin.delete(f"/api/v1/devices/{device['id']}/lifecycle/{removed['id']}")
    assert resp.status == 204


async def test_lifecycle_errors_name_the_field(twin: Client) -> None:
    """An exchange before the installation, a missing final reading, a reading too big for the
    register, a second installation, an unknown device: 422/404 naming what is wrong."""
    project = await make_project(twin)
    product = await make_product(twin)
    device = await make_device(twin, product_key=product["product_key"], project_id=project, device_type=1,
                               register_max="10000")
    status, _ = await post_event(twin, device["id"], {
        "kind": "installation", "at": "2024-02-01T00:00:00Z", "initial_reading": "3"})
    assert status == 201
    status, answer = await post_event(twin, device["id"], {
        "kind": "exchange", "at": "2024-01-15T00:00:00Z", "final_reading": "9", "initial_reading": "0"})
    assert status == 422 and "installation" in answer["errors"]["json"]["at"][0], answer
    status, answer = await post_event(twin, device["id"], {
        "kind": "exchange", "at": "2024-03-01T00:00:00Z", "initial_reading": "0"})
    assert status == 422 and set(answer["errors"]["json"]) == {"final_reading"}, answer
    status, answer = await post_event(twin, device["id"], {
        "kind": "removal", "at": "2024-03-01T00:00:00Z", "final_reading": "12345"})
    assert status == 422 and "4-digit register" in answer["errors"]["json"]["final_reading"][0], answer
    status, answer = await post_event(twin, device["id"], {
        "kind": "installation", "at": "2024-01-01T00:00:00Z", "initial_reading": "0"})
    assert status == 422 and "kind" in answer["errors"]["json"], answer
    status, answer = await post_event(twin, device["id"], {
        "kind": "exchange", "at": "2024-03-01T00:00:00", "final_reading": "-1", "initial_reading": "0",
        "register_digits": 99})
    assert status == 422 and {"at", "final_reading", "register_digits"} <= set(answer["errors"]["json"]), answer
    status, _ = await post_event(twin, 2**31 - 1, {"kind": "installation", "at": "2024-01-01T00:00:00Z",
                                                   "initial_reading": "0"})
    assert status == 404
