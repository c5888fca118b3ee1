"""EnOS sub-device login: the signature and the shape of login, login/batch and logout params.

EnOS signs a login by sorting the params (without `sign`, `signMethod` and `cleanSession`) by
name, concatenating name and value of each, appending the device secret and hashing with the
`signMethod`; the hex digest is compared case-insensitively. Methods: sha256 (what EnOS's
current docs show), and hmacsha256 / hmacsha1 / hmacmd5 keyed with the secret (older docs).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from twinbill_ingest.domain.codes import Code, Rejection

EXCLUDED = frozenset({"sign", "signmethod", "cleansession"})
SIGN_METHODS = ("sha256", "hmacsha256", "hmacsha1", "hmacmd5")


def sign(params: dict[str, str], *, secret: str, method: str) -> str:
    """The uppercase hex signature of `params` (sign, signMethod, cleanSession left out)."""
    content = "".join(f"{key}{params[key]}" for key in sorted(params) if key.lower() not in EXCLUDED)
    method = method.lower()
    if method == "sha256":
        return hashlib.sha256(f"{content}{secret}".encode()).hexdigest().upper()
    digests = {"hmacsha256": hashlib.sha256, "hmacsha1": hashlib.sha1, "hmacmd5": hashlib.md5}
    if method not in digests:
        raise Rejection(Code.PAYLOAD_FORMAT, f"signMethod {method!r} is not one of {', '.join(SIGN_METHODS)}")
    return hmac.new(secret.encode(), content.encode(), digests[method]).hexdigest().upper()


def sign_matches(params: dict[str, str], *, secret: str, method: str, signature: str) -> bool:
    """Whether `signature` is the signature of `params` (constant-time comparison)."""
    return hmac.compare_digest(sign(params, secret=secret, method=method), signature.upper())


@dataclass(frozen=True)
class LoginAttempt:
    """One sub-device's login: the signed content and the signature it came with."""

    product_key: str
    device_key: str
    signed: dict[str, str]
    sign_method: str
    signature: str


def _text(params: dict[str, Any], name: str, *, where: str) -> str:
    value = params.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise Rejection(Code.PAYLOAD_FORMAT, f"{where}.{name} must be a non-empty string")
    return value


def parse_login(params: Any) -> LoginAttempt:
    """combine.login params: productKey, deviceKey, clientId, timestamp, signMethod, sign."""
    if not isinstance(params, dict):
        raise Rejection(Code.PAYLOAD_FORMAT, "params must be an object")
    signed = {
        name: _text(params, name, where="params") for name in ("clientId", "deviceKey", "productKey", "timestamp")
    }
    return LoginAttempt(
        signed["productKey"],
        signed["deviceKey"],
        signed,
        _text(params, "signMethod", where="params").lower(),
        _text(params, "sign", where="params"),
    )


def parse_login_batch(params: Any) -> list[LoginAttempt]:
    """combine.login.batch params: clientId, timestamp, signMethod, subDevices[{pk, dk, sign}]."""
    if not isinstance(params, dict):
        raise Rejection(Code.PAYLOAD_FORMAT, "params must be an object")
    client_id = _text(params, "clientId", where="params")
    timestamp = _text(params, "timestamp", where="params")
    method = _text(params, "signMethod", where="params").lower()
    subs = params.get("subDevices")
    if not isinstance(subs, list) or not subs:
        raise Rejection(Code.PAYLOAD_FORMAT, "params.subDevices must be a non-empty array")
    attempts = []
    for index, sub in enumerate(subs):
        where = f"params.subDevices[{index}]"
        if not isinstance(sub, dict):
            raise Rejection(Code.PAYLOAD_FORMAT, f"{where} must be an object")
        pk, dk = _text(sub, "productKey", where=where), _text(sub, "deviceKey", where=where)
        signed = {"clientId": client_id, "deviceKey": dk, "productKey": pk, "timestamp": timestamp}
        attempts.append(LoginAttempt(pk, dk, signed, method, _text(sub, "sign", where=where)))
    return attempts


def parse_logout(params: Any) -> tuple[str, str]:
    """combine.logout params: productKey, deviceKey of the sub-device."""
    if not isinstance(params, dict):
        raise Rejection(Code.PAYLOAD_FORMAT, "params must be an object")
    return _text(params, "productKey", where="params"), _text(params, "deviceKey", where="params")
