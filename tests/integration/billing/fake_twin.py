"""The twin service's billing contract (docs/architecture.md), served from in-memory data.

A fake of a peer service, not of a database or broker: it answers exactly the three calls the
billing worker makes (billing devices, last readings, project) so billing tests run before and
independently of the real twin. tests/e2e/test_billing_e2e.py runs the real twin instead.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from twinbill_common.http import envelope_middleware
from twinbill_common.servicetokens import ServiceTokens, require_service_token
from twinbill_common.settings import DEV_SERVICE_KEY


@dataclass
class TwinData:
    """Projects (id -> time zone), devices (contract shape plus project_id), readings per device."""

    timezones: dict[int, str] = field(default_factory=dict)
    devices: list[dict[str, Any]] = field(default_factory=list)
    readings: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # sorted (ms, value)
    calls: dict[str, int] = field(default_factory=dict)
    fail_readings: bool = False

    def add_device(self, project_id: int, device: dict[str, Any]) -> None:
        """Register a device (fields of the contract's billing device)."""
        if self.devices and self.devices[-1]["id"] > device["id"]:
            raise ValueError("add devices in increasing id order")
        self.devices.append({"project_id": project_id, **device})

    def add_reading(self, device_id: int, at_ms: int, value: str) -> None:
        """Store one billing-register sample."""
        bisect.insort(self.readings.setdefault(device_id, []), (at_ms, value))

    def last_at_or_before(self, device_id: int, at_ms: int) -> tuple[int, str] | None:
        """The last sample at or before at_ms."""
        series = self.readings.get(device_id, [])
        index = bisect.bisect_right(series, (at_ms, "\uffff"))
        return series[index - 1] if index else None


def create_fake_twin(data: TwinData) -> web.Application:
    """An aiohttp app serving the contract from `data`."""

    def count(name: str) -> None:
        data.calls[name] = data.calls.get(name, 0) + 1

    async def billing_devices(request: web.Request) -> web.Response:
        count("billing_devices")
        project_id = int(request.query["project_id"])
        device_type = int(request.query["device_type"])
        after_id = int(request.query.get("after_id", "0"))
        limit = min(int(request.query.get("limit", "1000")), 5000)
        start = bisect.bisect_right([d["id"] for d in data.devices], after_id)
        page: list[dict[str, Any]] = []
        more = False
        for device in data.devices[start:]:
            if device["project_id"] != project_id or device["device_type"] != device_type:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(device)
        next_after = page[-1]["id"] if more else None
        body = [{k: v for k, v in d.items() if k != "project_id"} for d in page]
        return web.json_response({"devices": body, "next_after_id": next_after})

    async def readings_last(request: web.Request) -> web.Response:
        count("readings_last")
        if data.fail_readings:
            return web.json_response({"error": "unavailable"}, status=503)
        body = await request.json()
        ids, at = body["device_ids"], int(body["at"])
        if len(ids) > 5000:
            return web.json_response({"error": "too many ids"}, status=422)
        out = []
        for device_id in ids:
            found = data.last_at_or_before(int(device_id), at)
            if found is not None:
                out.append({"device_id": int(device_id), "value": found[1], "time": found[0]})
        return web.json_response({"readings": out})

    async def project(request: web.Request) -> web.Response:
        count("project")
        project_id = int(request.match_info["id"])
        if project_id not in data.timezones:
            return web.json_response({"code": 404, "status": "Not Found", "message": "no project"},
                                     status=404)
        return web.json_response({"id": project_id, "name": f"p{project_id}",
                                  "timezone": data.timezones[project_id], "description": ""})

    # the real twin's check: billing's calls must carry its service token
    app = web.Application(middlewares=[envelope_middleware([]), require_service_token(
        ServiceTokens(DEV_SERVICE_KEY, issuer="fake-twin"), audience="twin")])
    app.router.add_get("/internal/v1/billing/devices", billing_devices)
    app.router.add_post("/internal/v1/readings/last", readings_last)
    app.router.add_get("/api/v1/projects/{id}", project)
    return app


def meter(device_id: int, *, device_type: int = 2, kind: str | None = None, multiplier: str = "1",
          register_max: str | None = "100000", key: str | None = None) -> dict[str, Any]:
    """A billing device in the contract's shape, with made-up address and residents."""
    return {
        "id": device_id, "product_key": "pk-meter", "device_key": key or f"M{device_id:08d}",
        "name": f"meter {device_id}", "device_type": device_type, "water_meter_kind": kind,
        "multiplier": multiplier, "register_max": register_max, "billing_register": "total",
        "house_address": ["Test Garden", "Block 1", "F2", "", f"Room {device_id}"],
        "residents": [{"name": "Alex Example", "cellphone": "10000000000"}],
    }
