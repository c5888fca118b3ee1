"""The simulator's device list: {"gateways": [{product_key, device_key, secret, sub_devices:
[{product_key, device_key, secret, device_type, water_meter_kind, register}]}]} (the twin's demo
seeding returns exactly this), generated or loaded, and the registry a gateway needs for it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

GATEWAY_PRODUCT = "sim-gateway"
WATER_PRODUCT = "sim-water-meter"
ELECTRICITY_PRODUCT = "sim-electricity-meter"


def load_config(path: Path) -> dict[str, Any]:
    """Read a device list from a JSON file."""
    config: dict[str, Any] = json.loads(path.read_text())
    if not isinstance(config.get("gateways"), list):
        raise ValueError(f'{path}: expected {{"gateways": [...]}}')
    return config


def generate_config(gateways: int, sub_devices: int, *, prefix: str | None = None) -> dict[str, Any]:
    """N gateways with M meters each, alternating water (tap/purified) and electricity."""
    tag = prefix or uuid.uuid4().hex[:6]
    result = []
    for g in range(gateways):
        subs = []
        for s in range(sub_devices):
            water = s % 2 == 0
            subs.append(
                {
                    "product_key": WATER_PRODUCT if water else ELECTRICITY_PRODUCT,
                    "device_key": f"{tag}-g{g}-m{s}",
                    "secret": uuid.uuid4().hex,
                    "device_type": 1 if water else 2,
                    "water_meter_kind": ("tap" if s % 4 == 0 else "purified") if water else None,
                    "register": "total",
                }
            )
        result.append(
            {
                "product_key": GATEWAY_PRODUCT,
                "device_key": f"{tag}-gw{g}",
                "secret": uuid.uuid4().hex,
                "sub_devices": subs,
            }
        )
    return {"gateways": result}


def registry_for(config: dict[str, Any]) -> dict[str, Any]:
    """{"products", "devices"} for the ingest gateway's INGEST_REGISTRY_FILE, for a config."""
    products: dict[str, dict[str, Any]] = {
        GATEWAY_PRODUCT: {
            "product_key": GATEWAY_PRODUCT,
            "name": "simulated gateway",
            "is_gateway": True,
            "measurepoints": [],
        }
    }
    devices: list[dict[str, Any]] = []
    for gateway in config["gateways"]:
        devices.append(
            {
                "id": len(devices) + 1,
                "product_key": gateway["product_key"],
                "device_key": gateway["device_key"],
                "name": gateway["device_key"],
                "project_id": 1,
                "secret": gateway["secret"],
            }
        )
        for sub in gateway["sub_devices"]:
            register = sub.get("register", "total")
            product = products.setdefault(
                sub["product_key"],
                {
                    "product_key": sub["product_key"],
                    "name": sub["product_key"],
                    "billing_register": register,
                    "measurepoints": [],
                },
            )
            if not any(mp["identifier"] == register for mp in product["measurepoints"]):
                product["measurepoints"].append({"identifier": register, "data_type": {"type": "double"}})
            devices.append(
                {
                    "id": len(devices) + 1,
                    "product_key": sub["product_key"],
                    "device_key": sub["device_key"],
                    "name": sub["device_key"],
                    "project_id": 1,
                    "device_type": sub.get("device_type"),
                    "water_meter_kind": sub.get("water_meter_kind"),
                    "gateway_product_key": gateway["product_key"],
                    "gateway_device_key": gateway["device_key"],
                    "secret": sub["secret"],
                }
            )
    return {"products": list(products.values()), "devices": devices}
