"""Who calls the BEMServer surface: HTTP basic or JWT as BEMServer answers them (401 with
`errors.authentication` set to BEMServer's code), then what that user may reach."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from twinbill_common.errors import HttpError
from twinbill_gateway.domain.credentials import (
    ApiKey,
    Basic,
    Bearer,
    CredentialError,
    key_digest,
    parse_authorization,
    read_claims,
)
from twinbill_gateway.keys import SETTINGS, SIGN_IN, STORE
from twinbill_gateway.store import User

BEM_POOL_SQL = """
SELECT coalesce(array_agg(DISTINCT c.campaign_id) FILTER (WHERE c.campaign_id IS NOT NULL), '{}') AS campaigns,
       coalesce(array_agg(DISTINCT s.campaign_scope_id) FILTER (WHERE s.campaign_scope_id IS NOT NULL), '{}')
           AS scopes
FROM users_by_user_groups m
LEFT JOIN user_groups_by_campaigns c ON c.user_group_id = m.user_group_id
LEFT JOIN user_groups_by_campaign_scopes s ON s.user_group_id = m.user_group_id
WHERE m.user_id = $1
"""


@dataclass(frozen=True)
class Caller:
    """The authenticated user and the campaigns and campaign scopes they may read."""

    user: User
    campaigns: frozenset[int]
    scopes: frozenset[int]
    session_id: str | None = None  # the sign-in session of a bearer token (revoked together)

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin


def auth_error(code: str) -> HttpError:
    """BEMServer's 401: `{"code": 401, "status": "Unauthorized", "message": "Authentication error",
    "errors": {"authentication": code}}` (the client refreshes tokens on `expired_token`)."""
    return HttpError(401, "Authentication error", data={
        "errors": {"authentication": code}, "headers": {"WWW-Authenticate": "Bearer, Basic"}})


async def _user(request: web.Request, *, refresh: bool) -> tuple[User, str | None]:
    header = request.headers.get("Authorization")
    if header is None:
        raise auth_error("missing_authentication")
    store = request.app[STORE]
    try:
        credentials = parse_authorization(header)
    except CredentialError as err:
        scheme = header.strip().partition(" ")[0].lower()
        raise auth_error("malformed_credentials" if scheme in ("basic", "token") else "invalid_scheme") from err
    session_id: str | None = None
    match credentials:
        case Bearer(token):
            try:
                claims = read_claims(token, kind="refresh" if refresh else "access", now=datetime.now(UTC),
                                     secret=request.app[SETTINGS].jwt_secret.get_secret_value())
            except CredentialError as err:
                raise auth_error("expired_token" if "expired" in str(err) else "invalid_token") from None
            session_id = claims.session_id
            revoked, found = await store.by_token(claims.user_id, session_id)
            if revoked:
                raise auth_error("invalid_token")  # signed out
            if found is None:
                raise auth_error("invalid_token")
            user = found
        case Basic(email, password):
            found = await request.app[SIGN_IN].check(request, email, password)
            if found is None:
                raise auth_error("invalid_credentials")
            user = found
        case ApiKey(user_id, key):
            digest = await store.api_key_digest(user_id)
            found = await store.by_id(user_id) if digest and hmac.compare_digest(digest, key_digest(key)) else None
            if found is None:
                raise auth_error("invalid_credentials")
            user = found
    if refresh != isinstance(credentials, Bearer) and refresh:
        raise auth_error("invalid_token")
    if not user.is_active:
        # BEMServer lets an inactive user authenticate but authorizes nothing
        raise HttpError(403, "Authorization error")
    return user, session_id


async def caller(request: web.Request, *, refresh: bool = False) -> Caller:
    """The active user behind the request and what they may reach (administrators: everything)."""
    user, session_id = await _user(request, refresh=refresh)
    if user.is_admin:
        return Caller(user, frozenset(), frozenset(), session_id)
    row = await request.app[STORE].pool.fetchrow(BEM_POOL_SQL, user.id)
    campaigns = set(user.projects) | set(row["campaigns"] if row else ())
    return Caller(user, frozenset(campaigns), frozenset(row["scopes"] if row else ()), session_id)


def require_admin(who: Caller) -> None:
    """BEMServer's authorization error for what only administrators do."""
    if not who.is_admin:
        raise HttpError(403, "Authorization error")


async def readable_projects(request: web.Request, user: User) -> set[int]:
    """A user's projects: memberships, and the campaigns their user groups are given."""
    row = await request.app[STORE].pool.fetchrow(BEM_POOL_SQL, user.id)
    return set(user.projects) | set(row["campaigns"] if row else ())
