"""The identity schema: users, memberships, API keys (PostgreSQL, asyncpg)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from twinbill_common.errors import Conflict


@dataclass(frozen=True)
class User:
    """A user as the gateway needs it."""

    id: int
    name: str
    email: str
    is_admin: bool
    is_active: bool
    password_hash: str
    projects: tuple[int, ...]

    def public(self) -> dict[str, object]:
        """The user as the users API shows it (no secrets)."""
        return {"id": self.id, "name": self.name, "email": self.email, "is_admin": self.is_admin,
                "is_active": self.is_active, "projects": list(self.projects)}


USER_SQL = """
SELECT u.*, coalesce(array_agg(m.project_id ORDER BY m.project_id)
                     FILTER (WHERE m.project_id IS NOT NULL), '{}') AS projects
FROM users u LEFT JOIN memberships m ON m.user_id = u.id
"""


_TOKEN_SQL = f"""
SELECT EXISTS (SELECT 1 FROM revoked_sessions WHERE session_id = $2) AS revoked, found.*
FROM (SELECT 1) AS one LEFT JOIN LATERAL ({USER_SQL} WHERE u.id = $1 GROUP BY u.id) AS found ON true
"""


def _user(row: asyncpg.Record) -> User:
    return User(row["id"], row["name"], row["email"], row["is_admin"], row["is_active"],
                row["password_hash"], tuple(row["projects"]))


class IdentityStore:
    """Reads and writes of the identity schema."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def by_id(self, user_id: int) -> User | None:
        row = await self.pool.fetchrow(USER_SQL + " WHERE u.id = $1 GROUP BY u.id", user_id)
        return _user(row) if row else None

    async def by_token(self, user_id: int, session_id: str | None) -> tuple[bool, User | None]:
        """Whether a bearer token's sign-in session was revoked, and its user: one round trip
        (every request through the gateway asks both)."""
        row = await self.pool.fetchrow(_TOKEN_SQL, user_id, session_id)
        assert row is not None  # one row always: the user's columns are NULL when there is none
        return bool(row["revoked"]), _user(row) if row["id"] is not None else None

    async def by_email(self, email: str) -> User | None:
        row = await self.pool.fetchrow(USER_SQL + " WHERE u.email = $1 GROUP BY u.id", email)
        return _user(row) if row else None

    async def page(self, *, limit: int, offset: int) -> tuple[int, list[User]]:
        total = await self.pool.fetchval("SELECT count(*) FROM users")
        rows = await self.pool.fetch(USER_SQL + " GROUP BY u.id ORDER BY u.id LIMIT $1 OFFSET $2",
                                     limit, offset)
        return int(total), [_user(r) for r in rows]

    async def count(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM users"))

    async def create(self, *, name: str, email: str, password_hash: str, is_admin: bool,
                     projects: list[int]) -> User:
        async with self.pool.acquire() as conn, conn.transaction():
            try:
                user_id = await conn.fetchval(
                    "INSERT INTO users (name, email, password_hash, is_admin) VALUES ($1,$2,$3,$4) RETURNING id",
                    name, email, password_hash, is_admin)
            except asyncpg.UniqueViolationError:
                raise Conflict(f"a user with email {email} exists") from None
            await conn.executemany("INSERT INTO memberships VALUES ($1, $2)",
                                   [(user_id, p) for p in sorted(set(projects))])
        user = await self.by_id(user_id)
        assert user is not None
        return user

    async def update(self, user_id: int, *, name: str | None, is_admin: bool | None,
                     is_active: bool | None, password_hash: str | None,
                     projects: list[int] | None) -> User | None:
        async with self.pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval(
                """UPDATE users SET name = coalesce($2, name), is_admin = coalesce($3, is_admin),
                   is_active = coalesce($4, is_active), password_hash = coalesce($5, password_hash)
                   WHERE id = $1 RETURNING id""",
                user_id, name, is_admin, is_active, password_hash)
            if found is None:
                return None
            if projects is not None:
                await conn.execute("DELETE FROM memberships WHERE user_id = $1", user_id)
                await conn.executemany("INSERT INTO memberships VALUES ($1, $2)",
                                       [(user_id, p) for p in sorted(set(projects))])
        return await self.by_id(user_id)

    async def delete(self, user_id: int) -> bool:
        return await self.pool.fetchval("DELETE FROM users WHERE id = $1 RETURNING id", user_id) is not None

    async def set_api_key(self, user_id: int, digest: str) -> None:
        await self.pool.execute(
            """INSERT INTO api_keys (user_id, key_sha256) VALUES ($1, $2)
               ON CONFLICT (user_id) DO UPDATE SET key_sha256 = excluded.key_sha256, created_at = now()""",
            user_id, digest)

    async def delete_api_key(self, user_id: int) -> None:
        await self.pool.execute("DELETE FROM api_keys WHERE user_id = $1", user_id)

    async def api_key_digest(self, user_id: int) -> str | None:
        value = await self.pool.fetchval("SELECT key_sha256 FROM api_keys WHERE user_id = $1", user_id)
        return str(value) if value is not None else None

    async def revoke_session(self, session_id: str, *, user_id: int, expires_at: datetime) -> None:
        """Refuse every token of this sign-in session from now on; forget long-expired ones."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM revoked_sessions WHERE expires_at < now()")
            await conn.execute(
                """INSERT INTO revoked_sessions (session_id, user_id, expires_at) VALUES ($1, $2, $3)
                   ON CONFLICT (session_id) DO NOTHING""", session_id, user_id, expires_at)

    async def session_revoked(self, session_id: str) -> bool:
        return bool(await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM revoked_sessions WHERE session_id = $1)", session_id))
