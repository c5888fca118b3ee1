"""Device secrets at rest: sealed with AES-256-GCM under keys from settings, with rotation.

The registry stores `aesgcm2:<key id>:<base64url(nonce | ciphertext | tag)>` in `devices.secret`
(the key id is bound to the ciphertext as associated data); the twin opens it only where a
service needs the secret (`GET /internal/v1/devices` for the ingest gateway's EnOS signature
check and the broker's password file), behind a service token.

Keys: `TWIN_DEVICE_SECRET_KEY` (id `TWIN_DEVICE_SECRET_KEY_ID`) seals every new secret;
`TWIN_DEVICE_SECRET_OLD_KEYS` (`id:key,id:key`) only open. A stored secret opens with the key its
id names, so rotating is: make the old key an old key, set a new key and id, restart, then
`python -m twinbill_twin.reseal` re-seals every row under the newest key; after that the old
key can go. Values of the first format (`aesgcm1:`, no key id) open with any configured key;
plain values written before sealing existed are sealed at start-up (`seal_stored_secrets`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Mapping

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from twinbill_twin.errors import TwinError

LEGACY_PREFIX = "aesgcm1:"
PREFIX = "aesgcm2:"
NONCE_BYTES = 12
SEAL_BATCH = 1000
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class SecretUnreadable(TwinError):
    """A sealed secret does not open with the configured keys (its key is gone, or the row was
    altered)."""


def parse_old_keys(text: str) -> dict[str, str]:
    """`id:key,id:key` -> {id: key}; ValueError naming what is wrong."""
    keys: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key_id, sep, key = part.partition(":")
        if not sep or not key_id or not key:
            raise ValueError("each old key is `<id>:<key>`, separated by commas")
        if not KEY_ID.fullmatch(key_id) or key_id in keys:
            raise ValueError(f"old key id {key_id!r} is repeated or does not match {KEY_ID.pattern}")
        keys[key_id] = key
    return keys


class DeviceSecrets:
    """Seals with the current key; opens with whichever configured key a value names."""

    def __init__(self, key: str, *, key_id: str = "k1", old_keys: Mapping[str, str] | None = None) -> None:
        if not KEY_ID.fullmatch(key_id):
            raise ValueError(f"a device secret key id matches {KEY_ID.pattern}")
        self.key_id = key_id
        self._keys = {kid: AESGCM(hashlib.sha256(text.encode()).digest())
                      for kid, text in {**(old_keys or {}), key_id: key}.items()}

    def seal(self, secret: str) -> str:
        """The stored form of a secret under the current key (a fresh nonce each time)."""
        head = f"{PREFIX}{self.key_id}:"
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._keys[self.key_id].encrypt(nonce, secret.encode(), head.encode())
        return head + base64.urlsafe_b64encode(sealed).decode()

    def open(self, stored: str) -> str:
        """The secret behind a stored value; a value stored before sealing is returned as is."""
        if stored.startswith(PREFIX):
            key_id, _, body = stored[len(PREFIX):].partition(":")
            aead = self._keys.get(key_id)
            if aead is None:
                raise SecretUnreadable(f"a device secret is sealed under key {key_id!r}, which is not configured "
                                       "(TWIN_DEVICE_SECRET_KEY_ID / TWIN_DEVICE_SECRET_OLD_KEYS)")
            return self._open(aead, body, f"{PREFIX}{key_id}:")
        if stored.startswith(LEGACY_PREFIX):
            for aead in self._keys.values():
                try:
                    return self._open(aead, stored[len(LEGACY_PREFIX):], LEGACY_PREFIX)
                except SecretUnreadable:
                    continue
            raise SecretUnreadable("a device secret does not open with any configured key")
        return stored

    @staticmethod
    def _open(aead: AESGCM, body: str, head: str) -> str:
        try:
            sealed = base64.urlsafe_b64decode(body)
            return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], head.encode()).decode()
        except (InvalidTag, ValueError) as err:
            raise SecretUnreadable("a device secret does not open with its key") from err

    def current(self, stored: str) -> bool:
        """True when a stored value is sealed under the current key."""
        return stored.startswith(f"{PREFIX}{self.key_id}:")


def is_sealed(stored: str) -> bool:
    """True when a stored secret is in a sealed form."""
    return stored.startswith((PREFIX, LEGACY_PREFIX))


async def seal_stored_secrets(pool: asyncpg.Pool, secrets: DeviceSecrets) -> int:
    """Seal every plain secret left by an earlier version, in batches; returns how many. Safe with
    replicas starting together: a row is only rewritten while it still holds the plain value."""
    return await _rewrite(pool, secrets, "secret NOT LIKE 'aesgcm_:%'", "")


async def reseal_stored_secrets(pool: asyncpg.Pool, secrets: DeviceSecrets) -> int:
    """Re-seal every secret not sealed under the current key (older keys, the first format, plain
    values); returns how many. Concurrent writers are safe: a row is only rewritten while it still
    holds the value that was read."""
    return await _rewrite(pool, secrets, "left(secret, length($2)) <> $2", f"{PREFIX}{secrets.key_id}:")


async def _rewrite(pool: asyncpg.Pool, secrets: DeviceSecrets, where: str, head: str) -> int:
    done, after, unreadable = 0, 0, []
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(f"SELECT id, secret FROM devices WHERE {where} AND id > $1 "
                                    f"AND $2::text IS NOT NULL ORDER BY id LIMIT {SEAL_BATCH} "
                                    "FOR NO KEY UPDATE SKIP LOCKED", after, head)
            if not rows:
                break
            updates = []
            for row in rows:
                try:
                    updates.append((row["id"], secrets.seal(secrets.open(row["secret"])), row["secret"]))
                except SecretUnreadable:
                    unreadable.append(row["id"])  # left as it is: nothing is lost
            await conn.executemany("UPDATE devices SET secret = $2 WHERE id = $1 AND secret = $3", updates)
            done += len(updates)
            after = rows[-1]["id"]
    if unreadable:
        raise SecretUnreadable(f"{done} re-sealed; the secrets of devices {unreadable[:20]} do not open with any "
                               "configured key and were left as they are")
    return done
