"""A processed API response: data without its envelope, pagination, etag."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

from twinbill_client.exceptions import (
    TwinbillAPIAuthenticationError,
    TwinbillAPIAuthorizationError,
    TwinbillAPIConflictError,
    TwinbillAPIError,
    TwinbillAPINotFoundError,
    TwinbillAPIPreconditionError,
    TwinbillAPIValidationError,
)


@dataclass(frozen=True)
class TwinbillAPIResponse:
    """`data` is the payload without its envelope; `message` the envelope's message, if any."""

    status: int
    data: Any
    pagination: dict[str, Any]
    etag: str | None
    message: str | None = None


def _errors_of(body: Any) -> dict[str, list[str]]:
    if not isinstance(body, dict):
        return {}
    errors = body.get("errors")
    if isinstance(errors, dict):  # flask-smorest: {"json": {...}} or {"query": {...}}
        merged: dict[str, list[str]] = {}
        for located in errors.values():
            if isinstance(located, dict):
                merged.update(located)
        return merged
    data = body.get("data")
    if isinstance(data, dict) and isinstance(data.get("errors"), dict):  # seed 000 / 002 envelopes
        return dict(data["errors"])
    return {}


def _message_of(body: Any, fallback: str) -> str:
    if isinstance(body, dict) and "status" in body and isinstance(body.get("code"), int) and "data" not in body:
        # flask-smorest (management and BEMServer surfaces): "422 Unprocessable Entity: message"
        return f"{body['code']} {body['status']}" + (f": {body['message']}" if body.get("message") else "")
    if isinstance(body, dict):
        meta = body.get("meta")
        if isinstance(meta, dict) and meta.get("message"):
            return str(meta["message"])
        if body.get("message"):
            detail = body.get("data", {}).get("detail") if isinstance(body.get("data"), dict) else None
            return f"{body['message']}: {detail}" if detail else str(body["message"])
    return fallback


def process(response: requests.Response) -> TwinbillAPIResponse:
    """Unwrap the envelope (seed 000 `meta`, seed 002 `code`, or none) or raise the typed error."""
    try:
        body: Any = response.json() if response.content else None
    except json.JSONDecodeError:
        body = response.text
    status = response.status_code
    if status >= 400 or (isinstance(body, dict) and _envelope_failed(body)):
        reason = _message_of(body, f"HTTP {status}")
        errors = _errors_of(body)
        if status in (400, 422) or errors:
            raise TwinbillAPIValidationError(reason, errors=errors, status=status, body=body)
        error_class = {401: TwinbillAPIAuthenticationError, 403: TwinbillAPIAuthorizationError,
                       404: TwinbillAPINotFoundError, 409: TwinbillAPIConflictError,
                       412: TwinbillAPIPreconditionError, 428: TwinbillAPIPreconditionError,
                       }.get(status, TwinbillAPIError)
        raise error_class(reason, status=status, body=body)
    pagination = json.loads(response.headers.get("X-Pagination", "{}") or "{}")
    data: Any = body
    message: str | None = None
    if isinstance(body, dict) and isinstance(body.get("meta"), dict) and "data" in body:
        data, message = body["data"], body["meta"].get("message")
    elif isinstance(body, dict) and isinstance(body.get("code"), int) and "data" in body and "message" in body:
        data, message = body["data"], body["message"]
    return TwinbillAPIResponse(status, data, pagination, response.headers.get("ETag"), message)


def _envelope_failed(body: dict[str, Any]) -> bool:
    meta = body.get("meta")
    if isinstance(meta, dict) and meta.get("code") not in (0, None):
        return True
    code = body.get("code")
    return isinstance(code, int) and "message" in body and "data" in body and code != 200
