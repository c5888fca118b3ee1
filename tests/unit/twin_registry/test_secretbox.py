"""Device-secret keys: sealed under the current key's id, opened with whichever configured key a
value names (rotation), the first format (no id) opened with any key; bad key settings named."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from twinbill_twin.secretbox import DeviceSecrets, SecretUnreadable, is_sealed, parse_old_keys
from twinbill_twin.settings import TwinSettings

K1, K2 = "first-device-secret-key-" * 2, "second-device-secret-key-" * 2


def test_a_rotated_key_still_opens_what_it_sealed() -> None:
    before = DeviceSecrets(K1, key_id="k1")
    stored = before.seal("s3cret")
    assert stored.startswith("aesgcm2:k1:") and is_sealed(stored) and "s3cret" not in stored
    after = DeviceSecrets(K2, key_id="k2", old_keys={"k1": K1})
    assert after.open(stored) == "s3cret" and not after.current(stored)
    assert after.seal("new").startswith("aesgcm2:k2:") and after.current(after.seal("new"))
    with pytest.raises(SecretUnreadable, match="'k1'"):
        DeviceSecrets(K2, key_id="k2").open(stored)


def test_the_id_is_bound_to_the_ciphertext() -> None:
    """Relabelling a value with another configured key's id does not open it."""
    secrets = DeviceSecrets(K2, key_id="k2", old_keys={"k1": K1})
    relabelled = secrets.seal("x").replace("aesgcm2:k2:", "aesgcm2:k1:")
    with pytest.raises(SecretUnreadable):
        secrets.open(relabelled)


def test_the_first_format_opens_with_any_configured_key() -> None:
    nonce = os.urandom(12)
    aead = AESGCM(hashlib.sha256(K1.encode()).digest())
    legacy = "aesgcm1:" + base64.urlsafe_b64encode(nonce + aead.encrypt(nonce, b"old", b"aesgcm1:")).decode()
    assert DeviceSecrets(K2, key_id="k2", old_keys={"k1": K1}).open(legacy) == "old"
    with pytest.raises(SecretUnreadable):
        DeviceSecrets(K2, key_id="k2").open(legacy)
    assert DeviceSecrets(K2).open("plain-from-before-sealing") == "plain-from-before-sealing"


def test_key_settings_are_checked() -> None:
    assert parse_old_keys(f" k1:{K1} , old-2:{K2}") == {"k1": K1, "old-2": K2}
    for bad in ("k1", f"k1:{K1},k1:{K2}", f"k 1:{K1}", ":x"):
        with pytest.raises(ValueError, match="old key"):
            parse_old_keys(bad)
    with pytest.raises(ValidationError, match="32 characters"):
        TwinSettings(device_secret_old_keys="k0:short")
    with pytest.raises(ValidationError):
        TwinSettings(device_secret_key_id="has:colon")
    settings = TwinSettings(device_secret_key_id="k2", device_secret_old_keys=f"k1:{K1}")
    assert settings.device_secrets().open(DeviceSecrets(K1, key_id="k1").seal("x")) == "x"
