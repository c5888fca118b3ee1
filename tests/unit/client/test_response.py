"""The client unwraps each seed's envelope and raises the typed error a caller handles."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from twinbill_client.exceptions import (
    TwinbillAPIAuthenticationError,
    TwinbillAPIConflictError,
    TwinbillAPIError,
    TwinbillAPINotFoundError,
    TwinbillAPIValidationError,
)
from twinbill_client.response import process


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    made = requests.Response()
    made.status_code = status
    made._content = json.dumps(body, ensure_ascii=False).encode()
    made.headers.update(headers or {})
    return made


def test_plain_list_with_pagination_header() -> None:
    got = process(response(200, [{"id": 1}], {"X-Pagination": '{"total": 1, "page": 1}', "ETag": '"a"'}))
    assert (got.data, got.pagination, got.etag) == ([{"id": 1}], {"total": 1, "page": 1}, '"a"')


def test_seed000_meta_envelope_is_unwrapped() -> None:
    got = process(response(200, {"meta": {"code": 0, "message": "task info"}, "data": {"natrual_key": "k"}}))
    assert (got.data, got.message) == ({"natrual_key": "k"}, "task info")


def test_seed002_envelope_is_unwrapped() -> None:
    got = process(response(200, {"code": 200, "message": "success", "data": {"total": 0}}))
    assert (got.data, got.message) == ({"total": 0}, "success")


def test_flask_smorest_validation_errors_by_field() -> None:
    body = {"code": 422, "status": "Unprocessable Entity", "message": "name: Missing data",
            "errors": {"json": {"name": ["Missing data for required field."]}}}
    with pytest.raises(TwinbillAPIValidationError) as caught:
        process(response(422, body))
    assert caught.value.errors == {"name": ["Missing data for required field."]}


def test_seed000_validation_error_in_meta() -> None:
    body = {"meta": {"code": 400, "message": "crontab.day: 31 is not a day of month 2"},
            "data": {"errors": {"crontab.day": ["31 is not a day of month 2"]}}}
    with pytest.raises(TwinbillAPIValidationError) as caught:
        process(response(400, body))
    assert str(caught.value) == "crontab.day: 31 is not a day of month 2"
    assert caught.value.errors == {"crontab.day": ["31 is not a day of month 2"]}


def test_seed002_parameter_error_keeps_detail() -> None:
    body = {"code": 400, "message": "paramater error", "data": {"detail": "start is required"}}
    with pytest.raises(TwinbillAPIValidationError, match="paramater error: start is required"):
        process(response(400, body))


@pytest.mark.parametrize(("status", "error"), [
    (401, TwinbillAPIAuthenticationError),
    (404, TwinbillAPINotFoundError),
    (409, TwinbillAPIConflictError),
    (502, TwinbillAPIError),
])
def test_status_maps_to_typed_error(status: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        process(response(status, {"code": status, "status": "x", "message": "why"}))
