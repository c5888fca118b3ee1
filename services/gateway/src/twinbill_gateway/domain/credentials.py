"""Credentials: password hashes, the three Authorization schemes, and signed tokens.

Schemes accepted (seed 001 and seed 000):
- `Bearer <jwt>`: an access token from POST /api/v1/auth/token;
- `Basic <base64(email:password)>`: HTTP basic, as BEMServer's client offers;
- `token <user_id>:<40 hex>`: seed 000's API key header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

import jwt

SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
API_KEY = re.compile(r"^(\d{1,9}):([0-9a-f]{40})$")


class CredentialError(ValueError):
    """The Authorization header or token is malformed, expired, or of the wrong kind."""


# The three forms an Authorization header takes (immutable; `match` takes them apart).
class Bearer(NamedTuple):
    """`Authorization: Bearer <access token>`."""

    token: str


class Basic(NamedTuple):
    """`Authorization: Basic <email:password>`."""

    email: str
    password: str


class ApiKey(NamedTuple):
    """Seed 000's `Authorization: token <user_id>:<key>`."""

    user_id: int
    key: str


Credentials = Bearer | Basic | ApiKey


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$<salt hex>$<hash hex>`."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time comparison of a password against its stored hash."""
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def new_api_key() -> str:
    """A fresh 40-hex API key (seed 000's format)."""
    return secrets.token_hex(20)


def key_digest(key: str) -> str:
    """What is stored of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_authorization(header: str) -> Credentials:
    """Read one of the three schemes, or raise CredentialError saying what is wrong."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    match scheme.lower():
        case "bearer":
            if not value:
                raise CredentialError("Bearer scheme without a token")
            return Bearer(value)
        case "basic":
            try:
                email, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError) as err:
                raise CredentialError("Basic credentials are not base64 of email:password") from err
            if not sep:
                raise CredentialError("Basic credentials are not base64 of email:password")
            return Basic(email, password)
        case "token":
            found = API_KEY.match(value)
            if not found:
                raise CredentialError("token must be <user_id>:<40 hex characters>")
            return ApiKey(int(found.group(1)), found.group(2))
    raise CredentialError(f"unsupported Authorization scheme {scheme!r}: use Bearer, Basic or token")


TokenKind = Literal["access", "refresh"]


class TokenClaims(NamedTuple):
    """What a valid token says: whose it is, and its sign-in session (None in tokens issued
    before sessions existed, which cannot be revoked)."""

    user_id: int
    kind: TokenKind
    session_id: str | None


def new_session_id() -> str:
    """A sign-in session's id, shared by its access and refresh tokens (and their refreshes)."""
    return secrets.token_hex(16)


def issue_token(user_id: int, *, kind: TokenKind, now: datetime, ttl: timedelta, secret: str,
                session_id: str | None = None) -> str:
    """A signed HS256 JWT for the user; `session_id` (claim `sid`) makes it revocable."""
    claims: dict[str, object] = {"sub": str(user_id), "kind": kind, "iat": int(now.timestamp()),
                                 "exp": int((now + ttl).timestamp()), "jti": secrets.token_hex(8)}
    if session_id is not None:
        claims["sid"] = session_id
    return jwt.encode(claims, secret, algorithm="HS256")


def read_claims(token: str, *, kind: TokenKind | None, now: datetime, secret: str) -> TokenClaims:
    """The claims of a valid, unexpired token of that kind (any kind when None), or CredentialError."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"],
                            options={"verify_exp": False, "require": ["sub", "exp", "kind"]})
    except jwt.PyJWTError as err:
        raise CredentialError(f"invalid token: {err}") from err
    if claims["kind"] not in ("access", "refresh"):
        raise CredentialError(f"unknown token kind {claims['kind']!r}")
    if kind is not None and claims["kind"] != kind:
        raise CredentialError(f"a {claims['kind']} token cannot be used as a {kind} token")
    if int(claims["exp"]) <= int(now.timestamp()):
        raise CredentialError("token expired")
    session_id = claims.get("sid")
    return TokenClaims(int(claims["sub"]), claims["kind"], session_id if isinstance(session_id, str) else None)


def read_token(token: str, *, kind: TokenKind, now: datetime, secret: str) -> int:
    """The user id of a valid token of that kind, or CredentialError."""
    return read_claims(token, kind=kind, now=now, secret=secret).user_id
