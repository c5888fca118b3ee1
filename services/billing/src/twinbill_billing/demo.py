"""Demo tariffs for `make run`: flat electricity, tiered water per kind (idempotent)."""

from __future__ import annotations

from typing import Any

import aiohttp

DEMO_TARIFFS: tuple[dict[str, Any], ...] = (
    {"device_type": 2, "name": "demo electricity (flat)", "kind": "flat", "unit_price": "0.55"},
    {
        "device_type": 1,
        "water_meter_kind": "tap",
        "name": "demo tap water (tiered)",
        "kind": "tiered",
        "blocks": [
            {"up_to": "10", "price": "3.50"},
            {"up_to": "20", "price": "4.55"},
            {"up_to": None, "price": "6.10"},
        ],
    },
    {
        "device_type": 1,
        "water_meter_kind": "purified",
        "name": "demo purified water (tiered)",
        "kind": "tiered",
        "blocks": [{"up_to": "5", "price": "8.00"}, {"up_to": None, "price": "12.00"}],
    },
)
EFFECTIVE_FROM = "2000-01-01T00:00:00Z"


async def seed_demo_tariffs(base_url: str, *, project_id: int) -> None:
    """Create the demo tariffs for a project through the billing API unless they already exist.

    A tariff counts as existing when the project has one for the same device type and kind;
    running this twice changes nothing. Raises RuntimeError naming the API's answer on failure.
    """
    base = base_url.rstrip("/")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        async with http.get(
            f"{base}/api/v1/tariffs/", params={"project_id": project_id, "page_size": 1000}
        ) as response:
            if response.status != 200:
                raise RuntimeError(f"listing tariffs failed: {response.status} {await response.text()}")
            existing = {(t["device_type"], t.get("water_meter_kind")) for t in await response.json()}
        for tariff in DEMO_TARIFFS:
            key = (tariff["device_type"], tariff.get("water_meter_kind"))
            if key in existing:
                continue
            body = {**tariff, "project_id": project_id, "effective_from": EFFECTIVE_FROM}
            async with http.post(f"{base}/api/v1/tariffs/", json=body) as response:
                if response.status not in (201, 409):
                    raise RuntimeError(
                        f"creating tariff {tariff['name']!r} failed: {response.status} {await response.text()}"
                    )
