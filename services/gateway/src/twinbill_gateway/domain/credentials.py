"""Credentials: password hashes, the three Authorization schemes, and signed tokens.

Schemes accepted (seed 001 and seed 000):
- `Bearer <jwt>`: an access token from POST /api/v1/auth/token;
- `Basic <base64(email:password)>`: HTTP basic, as BEMServer's client offers;
- `token <user_id>:<40 hex>`: seed 000's API key header.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

import jwt

# scrypt's cost: N = 2^17, r = 8 (128 MiB and about 0.4 CPU seconds per hash on the 2-core
# development machine). Hashes written before it (`scrypt$<salt>$<hash>`, N = 2^14) still verify
# and are rewritten at the next successful sign-in (needs_rehash).
SCRYPT_N, SCRYPT_R, SCRYPT_P, SCRYPT_DKLEN = 2**17, 8, 1, 32
LEGACY_N = 2**14
SCRYPT_MAXMEM = 256 * 1024 * 1024
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


def _scrypt(password: str, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=SCRYPT_DKLEN,
                          maxmem=SCRYPT_MAXMEM)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$<N>$<r>$<p>$<salt hex>$<hash hex>` at the current cost."""
    salt = salt or secrets.token_bytes(16)
    digest = _scrypt(password, salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def _parameters(stored: str) -> tuple[int, int, int, str, str] | None:
    """(N, r, p, salt hex, hash hex) of a stored hash, either form; None if unreadable."""
    parts = stored.split("$")
    try:
        if len(parts) == 3 and parts[0] == "scrypt":  # before the cost was written down
            return LEGACY_N, 8, 1, parts[1], parts[2]
        if len(parts) == 6 and parts[0] == "scrypt":
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            if n in (2**k for k in range(14, 21)) and 1 <= r <= 16 and 1 <= p <= 4:
                return n, r, p, parts[4], parts[5]
    except ValueError:
        return None
    return None


def verify_password(password: str, stored: str) -> bool:
    """Constant-time comparison of a password against its stored hash (either form)."""
    found = _parameters(stored)
    if found is None:
        return False
    n, r, p, salt_hex, digest_hex = found
    try:
        digest = _scrypt(password, bytes.fromhex(salt_hex), n=n, r=r, p=p)
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def needs_rehash(stored: str) -> bool:
    """True when a stored hash is weaker than the current cost (rewrite it after a sign-in)."""
    found = _parameters(stored)
    return found is None or found[:3] != (SCRYPT_N, SCRYPT_R, SCRYPT_P)


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


@functools.lru_cache(maxsize=4096)
def _signed_claims(token: str, secret: str) -> dict[str, Any]:
    """The claims of a token whose signature and format are valid (expiry not checked: that
    depends on the time, and read_claims checks it at every use). Kept per (token, secret):
    a client sends its token with every request, and decoding it was a tenth of the gateway's
    CPU per proxied request. A failure is raised, never kept."""
    return jwt.decode(token, secret, algorithms=["HS256"],
                      options={"verify_exp": False, "require": ["sub", "exp", "kind"]})


def read_claims(token: str, *, kind: TokenKind | None, now: datetime, secret: str) -> TokenClaims:
    """The claims of a valid, unexpired token of that kind (any kind when None), or CredentialError."""
    try:
        claims = _signed_claims(token, secret)
    except jwt.ExpiredSignatureError as err:
        raise CredentialError("token expired") from err
    except jwt.PyJWTError as err:  # the library's own wording stays out of the answer
        raise CredentialError("invalid token: bad signature, format or claims") from err
    if claims["kind"] not in ("access", "refresh"):
        raise CredentialError(f"unknown token kind {claims['kind']!r}")
    if kind is not None and claims["kind"] != kind:
        raise CredentialError(f"a {claims['kind']} token cannot be used as a {kind} token")
    if int(claims["exp"]) <= int(now.timestamp()):
        raise CredentialError("token expired")
    session_id = claims.get("sid")
    return TokenClaims(int(claims["sub"]), claims["kind"], session_id if isinstance(session_id, str) else None)

