"""Password sign-in, the one path every password takes (token requests and HTTP basic on both
surfaces): lockout per account and per client address, scrypt off the event loop with bounded
concurrency, a short memory of recent successes, and old hashes upgraded.

- A failed password (or an unknown email) counts against the account and the address; reaching
  `LOGIN_ACCOUNT_FAILURES` / `LOGIN_ADDRESS_FAILURES` within `LOGIN_WINDOW_SECONDS` locks it for
  `LOGIN_LOCKOUT_SECONDS`: every password sign-in for it is answered 429 with Retry-After, even a
  right one. A success clears the account's count. Counts live in PostgreSQL (migration 0020),
  shared by replicas.
- scrypt at N = 2^17 costs about 0.4 CPU s and 128 MiB: at most HASH_CONCURRENCY run at once, and a
  password just verified for a user (same email, password and stored hash) is not hashed again
  for VERIFIED_TTL seconds, so HTTP basic on every request (BEMServer's clients) stays cheap. The
  memory keeps HMACs under a per-process random key, never passwords.
- A hash of an older cost is rewritten after a successful verification.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict

import asyncpg
from aiohttp import web

from twinbill_common.errors import HttpError
from twinbill_gateway.domain.credentials import hash_password, needs_rehash, verify_password
from twinbill_gateway.settings import GatewaySettings
from twinbill_gateway.store import IdentityStore, User

HASH_CONCURRENCY = 2
VERIFIED_TTL = 300.0
VERIFIED_MAX = 10_000


class SignInLocked(HttpError):
    """Too many failed sign-ins for this account or from this address: 429 with Retry-After."""

    def __init__(self, scope: str, retry_after: int) -> None:
        super().__init__(429, f"too many failed sign-ins for this {scope}; try again in {retry_after} s",
                         data={"headers": {"Retry-After": str(retry_after)}})
        self.retry_after = retry_after


def client_address(request: web.Request, *, forwarded_hops: int) -> str:
    """The caller's address: the peer, or with `forwarded_hops` trusted proxies in front, the
    address the outermost of them saw (X-Forwarded-For counted from the right)."""
    if forwarded_hops > 0:
        hops = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(hops) >= forwarded_hops:
            return hops[-forwarded_hops]
    return request.remote or "unknown"


class SignIn:
    """Checks email and password for one gateway process (see the module's docstring)."""

    def __init__(self, store: IdentityStore, settings: GatewaySettings) -> None:
        self.store = store
        self.settings = settings
        self._hashing = asyncio.Semaphore(HASH_CONCURRENCY)
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, float] = OrderedDict()

    async def check(self, request: web.Request, email: str, password: str) -> User | None:
        """The user when the password is right; None when it is wrong or the email unknown
        (counted); SignInLocked while the account or the address is locked."""
        address = client_address(request, forwarded_hops=self.settings.forwarded_hops)
        account = email.strip().lower()
        await self._refuse_locked(account, address)
        user = await self.store.by_email(email)
        if user is not None and await self._verify(user, email, password):
            await self.store.pool.execute(
                "DELETE FROM login_failures WHERE scope = 'account' AND subject = $1", account)
            return user
        await self._count_failure(account, address)
        return None

    async def _verify(self, user: User, email: str, password: str) -> bool:
        memo = hmac.new(self._key, "\0".join((email, password, user.password_hash)).encode(),
                        hashlib.sha256).digest()
        now = time.monotonic()
        if self._verified.get(memo, 0.0) > now:
            return True
        async with self._hashing:
            ok = await asyncio.to_thread(verify_password, password, user.password_hash)
            if ok and needs_rehash(user.password_hash):
                upgraded = await asyncio.to_thread(hash_password, password)
                await self.store.pool.execute(
                    "UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash = $3",
                    user.id, upgraded, user.password_hash)
        if ok:
            self._verified[memo] = now + VERIFIED_TTL
            while len(self._verified) > VERIFIED_MAX:
                self._verified.popitem(last=False)
        return ok

    async def _refuse_locked(self, account: str, address: str) -> None:
        row = await self.store.pool.fetchrow(
            """SELECT scope, ceil(extract(epoch FROM locked_until - now()))::int AS wait
               FROM login_failures
               WHERE ((scope = 'account' AND subject = $1) OR (scope = 'address' AND subject = $2))
                 AND locked_until > now()
               ORDER BY locked_until DESC LIMIT 1""", account, address)
        if row is not None:
            raise SignInLocked(row["scope"], max(1, int(row["wait"])))

    async def _count_failure(self, account: str, address: str) -> None:
        settings = self.settings
        async with self.store.pool.acquire() as conn, conn.transaction():
            for scope, subject, limit in (("account", account, settings.login_account_failures),
                                          ("address", address, settings.login_address_failures)):
                await _count(conn, scope, subject, limit=limit, window=settings.login_window_seconds,
                             lockout=settings.login_lockout_seconds)


async def _count(conn: asyncpg.Connection, scope: str, subject: str, *, limit: int, window: int,
                 lockout: int) -> None:
    """One more failure in the subject's window (a new window once the old one has passed); the
    limit locks it and starts counting afresh."""
    failures = await conn.fetchval(
        """INSERT INTO login_failures AS f (scope, subject, failures, window_start)
           VALUES ($1, $2, 1, now())
           ON CONFLICT (scope, subject) DO UPDATE SET
               failures = CASE WHEN f.window_start < now() - make_interval(secs => $3) THEN 1
                               ELSE f.failures + 1 END,
               window_start = CASE WHEN f.window_start < now() - make_interval(secs => $3) THEN now()
                                   ELSE f.window_start END
           RETURNING failures""", scope, subject, window)
    if failures >= limit:
        await conn.execute(
            """UPDATE login_failures SET locked_until = now() + make_interval(secs => $3),
                      failures = 0, window_start = now()
               WHERE scope = $1 AND subject = $2""", scope, subject, lockout)
        # forget subjects whose window and lock are both over
        await conn.execute(
            """DELETE FROM login_failures WHERE window_start < now() - make_interval(secs => $1)
               AND (locked_until IS NULL OR locked_until < now())""", window)
