"""Reverse control as a simulated gateway answers it (EnOS): the ingest gateway publishes a set
request on a sub-device's `/sys/{pk}/{dk}/thing/service/measurepoint/set`; the gateway applies
it, answers on `..._reply` with the request's id and code 200, and reports the values it now has,
so the twin's current value catches up with the desired one."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

SET_SUFFIX = "/thing/service/measurepoint/set"


@dataclass(frozen=True)
class SetRequest:
    """One set request: which sub-device, the request id, the values to apply."""

    product_key: str
    device_key: str
    request_id: str
    params: dict[str, Any]


def set_topic(product_key: str, device_key: str) -> str:
    """The topic a sub-device's set requests arrive on."""
    return f"/sys/{product_key}/{device_key}{SET_SUFFIX}"


def parse_set(topic: str, payload: bytes) -> SetRequest | None:
    """A set request, or None when the topic is not one or the body is not an EnOS set request."""
    parts = topic.split("/")
    if len(parts) != 8 or parts[:2] != ["", "sys"] or "/" + "/".join(parts[4:]) != SET_SUFFIX:
        return None
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("params"), dict) or "id" not in body:
        return None
    return SetRequest(parts[2], parts[3], str(body["id"]), body["params"])


def set_reply(request: SetRequest, *, code: int = 200, message: str = "") -> tuple[str, bytes]:
    """The reply's topic and body: {"id", "code", "data": {}, "message"}."""
    body = {"id": request.request_id, "code": code, "data": {}, "message": message}
    return set_topic(request.product_key, request.device_key) + "_reply", json.dumps(body).encode()


def applied_entry(request: SetRequest, *, at_ms: int) -> str:
    """A post/batch entry reporting the values the device now has."""
    return (f'{{"productKey":"{request.product_key}","deviceKey":"{request.device_key}",'
            f'"measurepoints":{json.dumps(request.params, ensure_ascii=False)},"time":{at_ms}}}')
