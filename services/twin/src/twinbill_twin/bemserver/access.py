"""Who asks, as the gateway says it (trusted headers; the gateway always sets them itself).

A request without them comes from inside the platform (the twin's port is not public, like the
rest of its management API) and is treated as an administrator's."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from twinbill_common.errors import HttpError


@dataclass(frozen=True)
class Access:
    """Administrator, or the campaigns (projects) and campaign scopes the user may read."""

    admin: bool
    campaigns: frozenset[int]
    scopes: frozenset[int]
    user_id: int | None = None  # the gateway's user (None: a caller inside the platform)

    def campaign(self, campaign_id: int | None) -> None:
        """403 (BEMServer's authorization error) unless the campaign is readable."""
        if not self.admin and campaign_id not in self.campaigns:
            raise HttpError(403, "Authorization error")

    def write(self) -> None:
        """Structure and series definitions are changed by administrators only, as in BEMServer."""
        if not self.admin:
            raise HttpError(403, "Authorization error")

    def series(self, campaign_id: int, scope_id: int) -> bool:
        """A series is readable through its campaign or through its scope."""
        return self.admin or campaign_id in self.campaigns or scope_id in self.scopes


def _ids(text: str) -> frozenset[int]:
    return frozenset(int(part) for part in text.split(",") if part.strip().isdigit())


def access_of(request: web.Request) -> Access:
    """The caller's access from the gateway's headers."""
    user = request.headers.get("X-Twinbill-User", "").strip()
    user_id = int(user) if user.isdigit() else None
    if request.headers.get("X-Twinbill-Admin", "1") == "1":
        return Access(True, frozenset(), frozenset(), user_id)
    return Access(False, _ids(request.headers.get("X-Twinbill-Campaigns", "")),
                  _ids(request.headers.get("X-Twinbill-Scopes", "")), user_id)
