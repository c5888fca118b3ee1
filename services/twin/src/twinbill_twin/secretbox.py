"""Device secrets at rest: sealed with AES-256-GCM under a key from settings (TWIN_DEVICE_SECRET_KEY).

The registry stores `aesgcm1:<base64url(nonce | ciphertext | tag)>` in `devices.secret`; the
twin opens it only where a service needs the secret (`GET /internal/v1/devices` for the ingest
gateway's EnOS signature check and the broker's password file), behind a service token. Rows
written before sealing existed are sealed at start-up (`seal_stored_secrets`); until then `open`
returns such a plain value unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import os

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from twinbill_twin.errors import TwinError

PREFIX = "aesgcm1:"
NONCE_BYTES = 12
SEAL_BATCH = 1000


class SecretUnreadable(TwinError):
    """A sealed secret does not open with the configured key (the key changed, or the row was
    altered)."""


class DeviceSecrets:
    """Seals and opens device secrets with one AES-256-GCM key derived from the setting's text."""

    def __init__(self, key: str) -> None:
        self._aead = AESGCM(hashlib.sha256(key.encode()).digest())

    def seal(self, secret: str) -> str:
        """The stored form of a secret (a fresh nonce each time)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, secret.encode(), PREFIX.encode())
        return PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open(self, stored: str) -> str:
        """The secret behind a stored value; a value stored before sealing is returned as is."""
        if not is_sealed(stored):
            return stored
        try:
            sealed = base64.urlsafe_b64decode(stored[len(PREFIX):])
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], PREFIX.encode()).decode()
        except (InvalidTag, ValueError) as err:
            raise SecretUnreadable("a device secret does not open with TWIN_DEVICE_SECRET_KEY") from err


def is_sealed(stored: str) -> bool:
    """True when a stored secret is in the sealed form."""
    return stored.startswith(PREFIX)


async def seal_stored_secrets(pool: asyncpg.Pool, secrets: DeviceSecrets) -> int:
    """Seal every plain secret left by an earlier version, in batches; returns how many. Safe with
    replicas starting together: a row is only rewritten while it still holds the plain value."""
    sealed = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, secret FROM devices WHERE secret NOT LIKE 'aesgcm1:%' ORDER BY id "
                f"LIMIT {SEAL_BATCH} FOR NO KEY UPDATE SKIP LOCKED")
            if not rows:
                return sealed
            await conn.executemany("UPDATE devices SET secret = $2 WHERE id = $1 AND secret = $3",
                                   [(row["id"], secrets.seal(row["secret"]), row["secret"]) for row in rows])
            sealed += len(rows)
