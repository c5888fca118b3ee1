"""The twin service as billing sees it: billing devices, last readings, project time zones.

`TwinClient` is the seam; `HttpTwinClient` speaks exactly the contract in docs/architecture.md.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import aiohttp

from twinbill_billing.domain.ledger import MeterEvent, Reading
from twinbill_billing.domain.periods import from_epoch_ms
from twinbill_billing.errors import BadRunInput, TwinUnavailable

READINGS_BATCH = 5000
PROJECT_TIMEOUT = 5.0  # seconds for GET /api/v1/projects/{id} (the read API waits on it too)


@dataclass(frozen=True)
class BillingDevice:
    """A device as `GET /internal/v1/billing/devices` lists it, kept as JSON-ready data too."""

    id: int
    device_key: str
    device_type: int
    water_meter_kind: str | None
    multiplier: Decimal
    register_max: Decimal | None
    raw: dict[str, Any]
    events: tuple[MeterEvent, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BillingDevice:
        """Decode one device of the contract; PermanentError (BadRunInput) when it is malformed."""
        try:
            register_max = data.get("register_max")
            return cls(
                id=int(data["id"]),
                device_key=str(data["device_key"]),
                device_type=int(data["device_type"]),
                water_meter_kind=data.get("water_meter_kind"),
                multiplier=Decimal(str(data.get("multiplier") or "1")),
                register_max=None if register_max in (None, "") else Decimal(str(register_max)),
                raw=data,
                events=tuple(_event(item) for item in data.get("lifecycle") or ()),
            )
        except (KeyError, TypeError, ValueError, InvalidOperation) as err:
            raise BadRunInput(f"twin sent a malformed billing device {data!r}: {err!r}") from err


def _decimal(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _event(item: dict[str, Any]) -> MeterEvent:
    """One lifecycle event of the contract (times ISO-8601 with offset, decimals as strings)."""
    multiplier = Decimal(str(item["multiplier"]))
    at = datetime.fromisoformat(item["at"])
    if at.tzinfo is None or item["kind"] not in ("installation", "exchange", "removal", "multiplier_change"):
        raise ValueError(f"lifecycle event needs an aware `at` and a known `kind`: {item!r}")
    return MeterEvent(
        kind=item["kind"],
        at=at,
        reading_before=_decimal(item.get("reading_before")),
        reading_after=_decimal(item.get("reading_after")),
        multiplier=multiplier,
        multiplier_before=_decimal(item.get("multiplier_before")) or multiplier,
        register_max=_decimal(item.get("register_max")),
        register_max_before=_decimal(item.get("register_max_before")),
    )


class TwinClient(Protocol):
    """What billing asks of the twin service."""

    def billing_devices(self, project_id: int, device_type: int) -> AsyncIterator[list[BillingDevice]]:
        """The project's devices of a type, page by page (keyset on id)."""
        ...

    async def last_readings(self, device_ids: list[int], *, at_ms: int) -> dict[int, Reading]:
        """Each device's last billing-register reading at or before `at_ms` (absent: none)."""
        ...

    async def project_timezone(self, project_id: int) -> str:
        """The project's IANA time zone (TwinUnavailable / BadRunInput when it cannot be read)."""
        ...


class HttpTwinClient:
    """The twin service over HTTP, per the contract; network and 5xx errors are transient."""

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession,
        page_size: int = 1000,
        zone_ttl: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.page_size = page_size
        self.zone_ttl = zone_ttl
        self._monotonic = monotonic
        self._zones: dict[int, tuple[float, str]] = {}  # project -> (expires at, zone)

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        try:
            async with self.session.request(method, url, **kwargs) as response:
                if response.status >= 500 or response.status == 429:
                    raise TwinUnavailable(f"{method} {path}: twin answered {response.status}")
                if response.status >= 400:
                    text = await response.text()
                    raise BadRunInput(f"{method} {path}: twin answered {response.status}: {text[:300]}")
                return await response.json()
        except (TimeoutError, aiohttp.ClientError) as err:
            raise TwinUnavailable(f"{method} {path}: {err!r}") from err

    async def billing_devices(self, project_id: int, device_type: int) -> AsyncIterator[list[BillingDevice]]:
        """Keyset pages of `GET /internal/v1/billing/devices` until next_after_id is null."""
        after_id = 0
        while True:
            body = await self._call(
                "GET",
                "/internal/v1/billing/devices",
                params={
                    "project_id": project_id,
                    "device_type": device_type,
                    "after_id": after_id,
                    "limit": self.page_size,
                },
            )
            devices = [BillingDevice.from_json(item) for item in body.get("devices", [])]
            if devices:
                yield devices
            next_after = body.get("next_after_id")
            if next_after is None or not devices:
                return
            after_id = int(next_after)

    async def last_readings(self, device_ids: list[int], *, at_ms: int) -> dict[int, Reading]:
        """`POST /internal/v1/readings/last` in batches of up to 5,000 ids; values stay exact."""
        found: dict[int, Reading] = {}
        for offset in range(0, len(device_ids), READINGS_BATCH):
            batch = device_ids[offset : offset + READINGS_BATCH]
            body = await self._call("POST", "/internal/v1/readings/last", json={"device_ids": batch, "at": at_ms})
            for item in body.get("readings", []):
                try:
                    found[int(item["device_id"])] = Reading(
                        Decimal(str(item["value"])), from_epoch_ms(int(item["time"]))
                    )
                except (KeyError, TypeError, ValueError, InvalidOperation) as err:
                    raise BadRunInput(f"twin sent a malformed reading {item!r}: {err!r}") from err
        return found

    async def project_timezone(self, project_id: int) -> str:
        """`GET /api/v1/projects/{id}`'s timezone, cached for `zone_ttl` seconds.

        Only answers are cached, so a zone change reaches billing within `zone_ttl`, and a twin
        that did not answer is asked again on the next call.
        """
        now = self._monotonic()
        cached = self._zones.get(project_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        body = await self._call(
            "GET", f"/api/v1/projects/{project_id}", timeout=aiohttp.ClientTimeout(total=PROJECT_TIMEOUT)
        )
        zone = body.get("timezone") if isinstance(body, dict) else None
        if not isinstance(zone, str) or not zone:
            raise BadRunInput(f"project {project_id} has no timezone in the twin's answer")
        self._zones[project_id] = (now + self.zone_ttl, zone)
        return zone
