"""The twin's /internal/ paths want a service token, and device secrets are sealed at rest."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.integration.twin_registry.conftest import make_device, make_product, make_project
from tests.servicetokens import as_service
from twinbill_common.servicetokens import HEADER, ServiceTokens
from twinbill_common.settings import DEV_SERVICE_KEY
from twinbill_twin.keys import DEVICE_SECRETS, POOL
from twinbill_twin.secretbox import (
    DeviceSecrets,
    SecretUnreadable,
    is_sealed,
    reseal_stored_secrets,
    seal_stored_secrets,
)
from twinbill_twin.settings import DEV_DEVICE_SECRET_KEY

Client = TestClient[Any, Any]
INTERNAL = ["/internal/v1/products", "/internal/v1/devices", "/internal/v1/billing/devices?project_id=1"]


@pytest.mark.parametrize("path", INTERNAL)
async def test_internal_paths_refuse_a_call_without_a_valid_service_token(twin: Client, path: str) -> None:
    """No token, a token for another service, an expired one or one signed with another key: 401,
    and no device secret in the answer."""
    wrong = {
        "missing": {HEADER: ""},
        "audience": as_service("billing"),
        "expired": {HEADER: ServiceTokens(DEV_SERVICE_KEY, issuer="x", ttl=10).token("twin", now=time.time() - 60)},
        "key": {HEADER: ServiceTokens("another-key-" * 4, issuer="ingest").token("twin")},
    }
    for why, headers in wrong.items():
        response = await twin.get(path, headers=headers)
        assert response.status == 401, (why, await response.text())
        body = await response.json()
        assert body["code"] == 401 and "secret" not in await response.text(), why
    posted = await twin.post("/internal/v1/devices/status", json={"devices": []}, headers={HEADER: ""})
    assert posted.status == 401
    assert (await twin.get(INTERNAL[0], headers=as_service("twin"))).status == 200


async def test_device_secrets_are_sealed_at_rest_and_opened_for_services(twin: Client) -> None:
    """The secret given at creation is stored sealed (AES-GCM), comes back plain on the internal
    list, and a secret changed by PUT is sealed too."""
    project = await make_project(twin)
    product = await make_product(twin)
    device = await make_device(twin, product_key=product["product_key"], project_id=project,
                               secret="plain-secret-1")
    assert device["secret"] == "plain-secret-1"
    pool = twin.app[POOL]
    stored = await pool.fetchval("SELECT secret FROM devices WHERE id = $1", device["id"])
    assert is_sealed(stored) and "plain-secret-1" not in stored

    async def listed() -> str:
        body = await (await twin.get("/internal/v1/devices", params={"project_id": project})).json()
        return str(next(d["secret"] for d in body["devices"] if d["id"] == device["id"]))
    assert await listed() == "plain-secret-1"
    response = await twin.put(f"/api/v1/devices/{device['id']}", json={"secret": "plain-secret-2"})
    assert response.status == 200, await response.text()
    stored = await pool.fetchval("SELECT secret FROM devices WHERE id = $1", device["id"])
    assert is_sealed(stored) and await listed() == "plain-secret-2"


async def test_plain_secrets_of_an_earlier_version_are_sealed(twin: Client) -> None:
    """Rows written before sealing existed are sealed by the start-up pass, and still open."""
    project = await make_project(twin)
    product = await make_product(twin)
    device = await make_device(twin, product_key=product["product_key"], project_id=project)
    pool = twin.app[POOL]
    await pool.execute("UPDATE devices SET secret = 'legacy-plain-secret' WHERE id = $1", device["id"])
    assert await seal_stored_secrets(pool, twin.app[DEVICE_SECRETS]) >= 1
    stored = await pool.fetchval("SELECT secret FROM devices WHERE id = $1", device["id"])
    assert is_sealed(stored)
    assert twin.app[DEVICE_SECRETS].open(stored) == "legacy-plain-secret"
    assert await pool.fetchval("SELECT count(*) FROM devices WHERE secret NOT LIKE 'aesgcm_:%'") == 0


async def test_device_secret_keys_rotate_and_reseal(twin: Client) -> None:
    """Rotation: with the key a secret was sealed under kept as an old key and a new current one,
    the secret still opens (and the first format, without a key id, too); the reseal pass puts
    every row under the new key, after which the old key is not needed; a row no configured key
    opens is named and left as it was."""
    project = await make_project(twin)
    product = await make_product(twin)
    device = await make_device(twin, product_key=product["product_key"], project_id=project, secret="rotate-me")
    legacy = await make_device(twin, product_key=product["product_key"], project_id=project)
    pool = twin.app[POOL]
    first_key = DEV_DEVICE_SECRET_KEY
    aead = AESGCM(hashlib.sha256(first_key.encode()).digest())
    nonce = os.urandom(12)
    first_format = "aesgcm1:" + base64.urlsafe_b64encode(
        nonce + aead.encrypt(nonce, b"first-format", b"aesgcm1:")).decode()
    await pool.execute("UPDATE devices SET secret = $2 WHERE id = $1", legacy["id"], first_format)
    stored = await pool.fetchval("SELECT secret FROM devices WHERE id = $1", device["id"])
    assert stored.startswith("aesgcm2:k1:")
    rotated = DeviceSecrets("second-device-secret-key-" * 2, key_id="k2", old_keys={"k1": first_key})
    assert rotated.open(stored) == "rotate-me" and rotated.open(first_format) == "first-format"
    assert await reseal_stored_secrets(pool, rotated) >= 2
    assert await reseal_stored_secrets(pool, rotated) == 0  # idempotent
    only_new = DeviceSecrets("second-device-secret-key-" * 2, key_id="k2")
    for ident, secret in ((device["id"], "rotate-me"), (legacy["id"], "first-format")):
        value = await pool.fetchval("SELECT secret FROM devices WHERE id = $1", ident)
        assert value.startswith("aesgcm2:k2:") and only_new.open(value) == secret
    with pytest.raises(SecretUnreadable, match="k2"):
        DeviceSecrets("third-device-secret-key-" * 2, key_id="k3").open(value)
    foreign = DeviceSecrets("unrelated-device-secret-key-" * 2, key_id="zz").seal("nobody-opens-me")
    await pool.execute("UPDATE devices SET secret = $2 WHERE id = $1", legacy["id"], foreign)
    with pytest.raises(SecretUnreadable, match=str(legacy["id"])):
        await reseal_stored_secrets(pool, only_new)
    assert await pool.fetchval("SELECT secret FROM devices WHERE id = $1", legacy["id"]) == foreign
    await pool.execute("UPDATE devices SET secret = $2 WHERE id = $1", legacy["id"], only_new.seal("x"))
    # back under the app's own key, for the module's other tests
    back = DeviceSecrets(first_key, key_id="k1", old_keys={"k2": "second-device-secret-key-" * 2})
    assert await reseal_stored_secrets(pool, back) >= 2
    body = await (await twin.get("/internal/v1/devices", params={"project_id": project})).json()
    assert {d["id"]: d["secret"] for d in body["devices"]}[device["id"]] == "rotate-me"
