"""A registry view for the pure validator: seed-003 products, a gateway and its sub-devices."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from twinbill_common.schemas import DataType, ProductModel
from twinbill_ingest.domain.thingmodel import compile_model

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
GATEWAY = ("gwprod", "gw1")


@dataclass(frozen=True)
class Device:
    """A registered device as validation sees it."""

    product_key: str
    gateway_product_key: str | None = None
    gateway_device_key: str | None = None


@dataclass
class FixedRegistry:
    """A RegistryView over fixed data (pure, no I/O)."""

    models: dict[str, dict[str, DataType]]
    devices: dict[tuple[str, str], Device]
    online: set[tuple[str, str]] = field(default_factory=set)

    def device(self, product_key: str, device_key: str) -> Device | None:
        return self.devices.get((product_key, device_key))

    def model(self, product_key: str) -> dict[str, DataType] | None:
        return self.models.get(product_key)

    def is_online(self, product_key: str, device_key: str) -> bool:
        return (product_key, device_key) in self.online


@pytest.fixture
def registry() -> FixedRegistry:
    """product1/device1 and product2/device2 under gateway gwprod/gw1; product1/device9 under gw2."""
    products = [
        ProductModel.model_validate(p)
        for p in json.loads((FIXTURES / "seed003_thing_models.json").read_text())["products"]
    ]
    models = {p.product_key: compile_model(p) for p in products}
    models["gwprod"] = {
        "temp": DataType(type="float"),
        "mode": DataType(type="enum", values=[0, 1, 2]),
        "on": DataType(type="bool"),
        "at": DataType(type="timestamp"),
        "label": DataType(type="string"),
        "day": DataType(type="date"),
        "count": DataType(type="int"),
    }
    return FixedRegistry(
        models,
        {
            GATEWAY: Device("gwprod"),
            ("gwprod", "gw2"): Device("gwprod"),
            ("product1", "device1"): Device("product1", *GATEWAY),
            ("product2", "device2"): Device("product2", *GATEWAY),
            ("product1", "device9"): Device("product1", "gwprod", "gw2"),
        },
    )
