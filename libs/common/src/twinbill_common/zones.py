"""Project time zones, the one lookup every service uses: the twin service's
`GET /api/v1/projects/{id}` -> `timezone`, cached.

One behaviour everywhere (docs/architecture.md, "Project time zones"): a project the twin does
not know (404; seed 000's examples use projects 42 and 49), or whose zone is not a valid IANA
key, gets the caller's default zone, logged. A twin that does not answer (connection error,
timeout, 5xx, an unreadable body) raises `RegistryUnavailable`: nothing is cached and no guessed
zone is ever stored; the caller answers 503 or retries.
"""

from __future__ import annotations

import time
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp

from twinbill_common.errors import RegistryUnavailable
from twinbill_common.logging import get_logger
from twinbill_common.servicetokens import ServiceTokens

log = get_logger(__name__)


class ProjectZones(Protocol):
    """Where a project's IANA time zone comes from."""

    async def zone_of(self, project_id: int) -> str:
        """The project's zone name (a valid IANA key); RegistryUnavailable if it cannot be read."""
        ...

    def forget(self, project_id: int) -> None:
        """Drop what is cached for a project (it changed)."""
        ...


def valid_zone(name: object) -> bool:
    """True when `name` is an IANA zone this machine knows."""
    if not isinstance(name, str) or not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


class HttpProjectZones:
    """Zones from the twin service, cached for `ttl` seconds; the default for an unknown project.

    Only answers are cached: an unreachable twin raises RegistryUnavailable every time.
    """

    def __init__(self, base_url: str, *, default: str, ttl: float = 300.0,
                 timeout: float = 3.0, tokens: ServiceTokens | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        # the caller's service token for the twin, when it has one (every service does)
        self._auth = () if tokens is None else (tokens.client_middleware({self.base_url: "twin"}),)
        self.default = default
        self.ttl = ttl
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._cache: dict[int, tuple[float, str]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()

    def forget(self, project_id: int) -> None:
        """Drop a cached zone (a project changed)."""
        self._cache.pop(project_id, None)

    async def zone_of(self, project_id: int) -> str:
        """The project's zone from the twin service, cached; the default when unknown (404).

        Raises RegistryUnavailable (not cached) when the twin does not answer.
        """
        cached = self._cache.get(project_id)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            return cached[1]
        zone = await self._fetch(project_id)
        self._cache[project_id] = (now + self.ttl, zone)
        return zone

    async def _fetch(self, project_id: int) -> str:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, middlewares=self._auth)
        url = f"{self.base_url}/api/v1/projects/{project_id}"
        try:
            async with self._session.get(url) as response:
                if response.status == 404:
                    log.info("project unknown to the twin service, default zone",
                             project_id=project_id, zone=self.default)
                    return self.default
                response.raise_for_status()
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            log.warning("twin service unreachable, project zone unknown", project_id=project_id,
                        error=repr(err))
            raise RegistryUnavailable(f"GET {url}: {err!r}") from err
        zone = body.get("timezone") if isinstance(body, dict) else None
        if not valid_zone(zone):
            log.warning("project has no valid time zone, default zone", project_id=project_id,
                        timezone=zone, zone=self.default)
            return self.default
        return str(zone)
