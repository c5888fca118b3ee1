"""Alarm shard leases in PostgreSQL (migration 0420): each live replica renews what it holds and
claims up to its share, ceil(shards / live replicas); what it holds beyond that it gives back
once it has stopped consuming it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Balance:
    """One round for one member: what it holds now, and which of those to give back."""

    held: frozenset[int]
    surplus: frozenset[int]


async def balance(conn: asyncpg.Connection, member: str, *, shards: int, ttl: float) -> Balance:
    """Heartbeat, renew, and claim free or expired shards up to this member's share."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO alarm_shard_members (member, seen_at) VALUES ($1, now()) "
            "ON CONFLICT (member) DO UPDATE SET seen_at = now()", member)
        await conn.execute("DELETE FROM alarm_shard_members WHERE seen_at < now() - make_interval(secs => $1)", ttl)
        live = await conn.fetchval("SELECT count(*) FROM alarm_shard_members")
        await conn.execute("INSERT INTO alarm_shard_leases (shard) SELECT generate_series(0, $1 - 1) "
                           "ON CONFLICT DO NOTHING", shards)
        held = {row["shard"] for row in await conn.fetch(
            "UPDATE alarm_shard_leases SET expires_at = now() + make_interval(secs => $2) "
            "WHERE member = $1 AND shard < $3 RETURNING shard", member, ttl, shards)}
        share = math.ceil(shards / max(live, 1))
        if len(held) < share:
            held |= {row["shard"] for row in await conn.fetch(
                "UPDATE alarm_shard_leases l SET member = $1, expires_at = now() + make_interval(secs => $2) "
                "FROM (SELECT shard FROM alarm_shard_leases WHERE shard < $3 "
                "      AND (member IS NULL OR expires_at < now()) "
                "      ORDER BY shard LIMIT $4 FOR UPDATE SKIP LOCKED) free "
                "WHERE l.shard = free.shard RETURNING l.shard", member, ttl, shards, share - len(held))}
    return Balance(frozenset(held), frozenset(sorted(held)[share:]))


async def release(conn: asyncpg.Connection, member: str, shards: frozenset[int] | None = None) -> None:
    """Give back these shards (every one this member holds when None) for others to claim now."""
    await conn.execute("UPDATE alarm_shard_leases SET member = NULL, expires_at = '-infinity' "
                       "WHERE member = $1 AND ($2::int[] IS NULL OR shard = ANY($2::int[]))",
                       member, None if shards is None else sorted(shards))


async def leave(conn: asyncpg.Connection, member: str) -> None:
    """This member stops: its shards are free at once and it no longer counts as live."""
    async with conn.transaction():
        await release(conn, member)
        await conn.execute("DELETE FROM alarm_shard_members WHERE member = $1", member)
