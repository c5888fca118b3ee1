"""The gateway's view of the device registry: where it comes from (a RegistrySource) and the
in-memory cache validation reads (products' thing models, devices, sub-device sessions)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from twinbill_common.schemas import DataType, DeviceRecord, ProductModel
from twinbill_common.servicetokens import ServiceTokens
from twinbill_ingest.domain.fastpath import Grants
from twinbill_ingest.domain.thingmodel import CompiledModel, compile_model
from twinbill_ingest.errors import RegistryUnavailable

DeviceKey = tuple[str, str]


class RegistrySource(Protocol):
    """Where the registry comes from: the twin service's internal endpoints, or a fixed set."""

    async def products(self) -> list[ProductModel]:
        """Every product (thing model)."""
        ...

    async def devices(self) -> list[DeviceRecord]:
        """Every device."""
        ...

    async def report_status(self, updates: Sequence[dict[str, Any]]) -> None:
        """Record devices' online state and last-seen time."""
        ...


class HttpRegistrySource:
    """The twin service's internal endpoints (docs/architecture.md, "Twin service")."""

    def __init__(self, base_url: str, *, tokens: ServiceTokens, page_size: int = 5000,
                 timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        # every call carries a service token for the twin (its /internal/ paths refuse others)
        self._auth = tokens.client_middleware({self.base_url: "twin"})
        self.page_size = page_size
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, middlewares=(self._auth,))
        return self._session

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            async with self._client().get(f"{self.base_url}{path}", params=params) as response:
                response.raise_for_status()
                return await response.json()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise RegistryUnavailable(f"GET {path} failed: {err!r}") from err

    async def products(self) -> list[ProductModel]:
        """GET /internal/v1/products."""
        body = await self._get("/internal/v1/products")
        return [ProductModel.model_validate(item) for item in body["products"]]

    async def devices(self) -> list[DeviceRecord]:
        """GET /internal/v1/devices, keyset-paged by after_id."""
        devices: list[DeviceRecord] = []
        after: int | None = 0
        while after is not None:
            body = await self._get("/internal/v1/devices", {"after_id": after, "limit": self.page_size})
            devices += [DeviceRecord.model_validate(item) for item in body["devices"]]
            after = body.get("next_after_id")
        return devices

    async def report_status(self, updates: Sequence[dict[str, Any]]) -> None:
        """POST /internal/v1/devices/status."""
        try:
            async with self._client().post(
                f"{self.base_url}/internal/v1/devices/status", json={"devices": list(updates)}
            ) as response:
                response.raise_for_status()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise RegistryUnavailable(f"POST /internal/v1/devices/status failed: {err!r}") from err


class StaticRegistrySource:
    """A fixed registry (a JSON file for a bench or a demo without the twin, or objects in tests).

    The latest status report of each device is kept (`reported`) so a caller can see what
    reached "the registry"; one per device, so a long run (a bench, the demo) does not grow.
    """

    def __init__(self, products: Iterable[ProductModel], devices: Iterable[DeviceRecord]) -> None:
        self._products = list(products)
        self._devices = list(devices)
        self._reported: dict[tuple[str, str], dict[str, Any]] = {}

    @property
    def reported(self) -> list[dict[str, Any]]:
        """The latest status report of each device that had one."""
        return list(self._reported.values())

    @classmethod
    def from_file(cls, path: Path) -> StaticRegistrySource:
        """Load {"products": [ProductModel...], "devices": [DeviceRecord...]} from a JSON file."""
        body = json.loads(path.read_text())
        return cls(
            [ProductModel.model_validate(p) for p in body["products"]],
            [DeviceRecord.model_validate(d) for d in body["devices"]],
        )

    def put_device(self, device: DeviceRecord) -> None:
        """Add or replace a device (as the twin would before announcing `device.created`)."""
        self._devices = [d for d in self._devices if d.id != device.id] + [device]

    async def products(self) -> list[ProductModel]:
        """The fixed products."""
        return list(self._products)

    async def devices(self) -> list[DeviceRecord]:
        """The fixed devices."""
        return list(self._devices)

    async def report_status(self, updates: Sequence[dict[str, Any]]) -> None:
        """Keep the latest report of each device."""
        for update in updates:
            self._reported[(update["product_key"], update["device_key"])] = dict(update)


class RegistryCache:
    """Products, devices and sub-device sessions in memory; implements domain RegistryView."""

    def __init__(self) -> None:
        self._models: dict[str, dict[str, DataType]] = {}
        self._devices: dict[DeviceKey, DeviceRecord] = {}
        self._online: dict[DeviceKey, DeviceKey] = {}  # sub-device -> gateway it logged in through
        # The fast path's memo of authorised devices (domain.fastpath.accept_plain): it holds
        # what the registry and the sessions say now, so any change to either empties it.
        self.grants: Grants = {}
        self.loaded = False

    async def load(self, source: RegistrySource) -> None:
        """Replace the cache with the source's products and devices. Sessions are kept; the first
        load restores them from the registry's device status (what the gateways reported before
        a restart: a sub-device online through its registered gateway), so a restart of the
        ingest gateway does not make every gateway log its sub-devices in again."""
        products = await source.products()
        devices = await source.devices()
        self._models = {product.product_key: compile_model(product) for product in products}
        self._devices = {(d.product_key, d.device_key): d for d in devices}
        self.grants.clear()
        if not self.loaded:
            for device in devices:
                if device.online and device.gateway_product_key and device.gateway_device_key:
                    self._online[(device.product_key, device.device_key)] = (
                        device.gateway_product_key, device.gateway_device_key)
        self.loaded = True

    def device(self, product_key: str, device_key: str) -> DeviceRecord | None:
        """A registered device."""
        return self._devices.get((product_key, device_key))

    def model(self, product_key: str) -> CompiledModel | None:
        """A product's measurepoints by identifier."""
        return self._models.get(product_key)

    def is_online(self, product_key: str, device_key: str) -> bool:
        """A sub-device is online while its login through its gateway holds."""
        return (product_key, device_key) in self._online

    def online_among(self, devices: set[DeviceKey]) -> set[DeviceKey]:
        """Those of `devices` that are online (is_online for a set at once)."""
        return devices & self._online.keys()

    def set_online(self, device: DeviceKey, *, gateway: DeviceKey) -> None:
        """Record a sub-device's login through a gateway."""
        if self._online.get(device) != gateway:
            self._online[device] = gateway
            self.grants.clear()

    def set_offline(self, device: DeviceKey) -> None:
        """Record a sub-device's logout."""
        if self._online.pop(device, None) is not None:
            self.grants.clear()

    @property
    def online_count(self) -> int:
        """How many sub-devices are logged in."""
        return len(self._online)
