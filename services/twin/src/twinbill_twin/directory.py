"""Who may hear of an event: the gateway owns users and groups (identity schema), so the twin asks
it which users' groups are linked to a campaign scope, over the gateway's internal endpoint, with
a service token for the gateway (twinbill_common.servicetokens: the gateway's port is public)."""

from __future__ import annotations

from typing import Protocol

import aiohttp

from twinbill_common.errors import TransientError
from twinbill_common.servicetokens import ServiceTokens


class DirectoryUnavailable(TransientError):
    """The gateway did not answer (or is not configured): retry later, never guess recipients."""


class Directory(Protocol):
    """Users by campaign scope, and campaign scopes by user."""

    async def users_of_scope(self, scope_id: int) -> list[int]: ...

    async def scopes_of_user(self, user_id: int) -> list[int]: ...


class GatewayDirectory:
    """The gateway's `/internal/v1/bemserver/...` answers (no cache: group links change)."""

    def __init__(self, base_url: str, tokens: ServiceTokens, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = tokens.client_middleware({self.base_url: "gateway"}) if self.base_url else None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def _get(self, path: str) -> list[int]:
        if self._auth is None:
            raise DirectoryUnavailable("no gateway URL configured (TWIN_GATEWAY_URL): users cannot be notified")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, middlewares=(self._auth,))
        try:
            async with self._session.get(f"{self.base_url}{path}") as response:
                if response.status == 404:  # no such user or scope (an id <= 0, say): nobody, nothing
                    return []
                if response.status != 200:
                    raise DirectoryUnavailable(f"gateway answered {response.status} for {path}")
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            raise DirectoryUnavailable(f"gateway did not answer {path}: {err!r}") from err
        return [int(x) for x in body["ids"]]

    async def users_of_scope(self, scope_id: int) -> list[int]:
        """Active users in a group linked to the campaign scope."""
        return await self._get(f"/internal/v1/bemserver/campaign_scopes/{scope_id}/users")

    async def scopes_of_user(self, user_id: int) -> list[int]:
        """Campaign scopes linked to the user's groups."""
        return await self._get(f"/internal/v1/bemserver/users/{user_id}/campaign_scopes")

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
