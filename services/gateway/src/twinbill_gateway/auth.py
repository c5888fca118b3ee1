"""Who is calling: resolve the Authorization header to an active user, or a 401 that says why."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from aiohttp import web

from twinbill_gateway.domain.credentials import (
    ApiKey,
    Basic,
    Bearer,
    CredentialError,
    key_digest,
    parse_authorization,
    read_claims,
)
from twinbill_gateway.errors import Forbidden, Unauthorized
from twinbill_gateway.keys import SIGN_IN
from twinbill_gateway.store import IdentityStore, User


async def authenticate(request: web.Request, *, store: IdentityStore, secret: str) -> User:
    """The active user behind the request's Authorization header."""
    header = request.headers.get("Authorization")
    if not header:
        raise Unauthorized("Authorization header is missing (Bearer, Basic or token)")
    try:
        credentials = parse_authorization(header)
        match credentials:
            case Bearer(token):
                claims = read_claims(token, kind="access", now=datetime.now(UTC), secret=secret)
                revoked, user = await store.by_token(claims.user_id, claims.session_id)
                if revoked:
                    raise CredentialError("token revoked: its session was signed out")
            case Basic(email, password):
                user = await request.app[SIGN_IN].check(request, email, password)
            case ApiKey(user_id, key):
                digest = await store.api_key_digest(user_id)
                ok = digest is not None and hmac.compare_digest(digest, key_digest(key))
                user = await store.by_id(user_id) if ok else None
    except CredentialError as err:
        raise Unauthorized(str(err)) from None
    if user is None:
        raise Unauthorized("unknown user or wrong credentials")
    if not user.is_active:
        raise Unauthorized("user is deactivated")
    return user


def require_admin(user: User) -> None:
    """Only administrators manage users."""
    if not user.is_admin:
        raise Forbidden("administrators only")
