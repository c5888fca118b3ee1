"""The seeds' HTTP envelopes, one error middleware that renders them, and request parsing.

Three surfaces, three envelopes:
- seed 000 (scheduler, billing history): {"meta": {"code", "message"}, "data"}; code 0 is success;
- seed 002 (digital-twin open API): {"code", "message", "data"} with 200/400/404/500 and the
  documented messages, including the seed's spelling "paramater error";
- seed 001 (management resources, BEMServer style): plain JSON on success, flask-smorest errors
  {"code", "status", "message", "errors": {"json"|"query": {field: [reasons]}}} on failure.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal
from http import HTTPStatus
from typing import Any, TypeVar

from aiohttp import http_parser, web, web_protocol
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from twinbill_common.errors import HttpError, ValidationFailed
from twinbill_common.logging import get_logger
from twinbill_common.paging import INT32_MAX as INT32_MAX  # the largest id or page a surface takes
from twinbill_common.schemas.telemetry import text_problem

log = get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
Renderer = Callable[[HttpError, str], web.Response]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID = web.RequestKey("request_id", str)
# The attribute of the envelope middleware holding (rules, default): the API description reads it.
ENVELOPE_RULES = "envelope_rules"
# Seed 002's codes. 401/403 are not in the seed (its API has no security); the gateway adds them.
DT_MESSAGES = {200: "success", 400: "paramater error", 401: "unauthorized", 403: "forbidden",
               404: "not found", 500: "error"}


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: object) -> str:
    """JSON text as the seeds write it: UTF-8 characters kept, decimals as strings."""
    return json.dumps(value, ensure_ascii=False, default=_default)


def json_response(body: object, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response with non-ASCII text kept readable (the seeds are Chinese)."""
    return web.json_response(body, status=status, dumps=dumps, headers=headers)


def meta_ok(data: object, message: str) -> web.Response:
    """Seed 000 success: meta.code 0 and the endpoint's documented message."""
    return json_response({"meta": {"code": 0, "message": message}, "data": data})


def dt_ok(data: object) -> web.Response:
    """Seed 002 success: code 200, message "success"."""
    return json_response({"code": 200, "message": "success", "data": data})


def render_meta(err: HttpError, request_id: str) -> web.Response:
    """Seed 000 error: a non-zero meta.code (the HTTP status) and a message naming each bad field."""
    status = 400 if err.status == 422 else err.status
    data: dict[str, Any] = {"errors": err.fields} if err.fields else {}
    if err.status >= 500:
        data["request_id"] = request_id
    return json_response({"meta": {"code": status, "message": err.message}, "data": data}, status=status)


def render_dt(err: HttpError, request_id: str) -> web.Response:
    """Seed 002 error: only the documented codes and messages; the detail goes in data.

    A sign-in lockout (429) is the seed's `unauthorized` in the body, answered with HTTP 429 and
    its Retry-After, so a client backs off instead of seeing a server error."""
    code = 400 if err.status in (400, 405, 409, 413, 422) else 401 if err.status == 429 else err.status
    code = code if code in DT_MESSAGES else 500
    data: dict[str, Any] = {"detail": err.message}
    if err.fields:
        data["errors"] = err.fields
    if code >= 500:
        data["request_id"] = request_id
    response = json_response({"code": code, "message": DT_MESSAGES[code], "data": data},
                             status=429 if err.status == 429 else code)
    headers = err.data.get("headers") if isinstance(err.data, dict) else None
    if headers:
        response.headers.update(headers)
    return response


def render_management(err: HttpError, request_id: str) -> web.Response:
    """Seed 001 (flask-smorest) error: status name, message and per-field errors by location."""
    body: dict[str, Any] = {
        "code": err.status,
        "status": HTTPStatus(err.status).phrase,
        "message": err.message,
    }
    if err.fields:
        location = err.data.get("location", "json") if isinstance(err.data, dict) else "json"
        body["errors"] = {location: err.fields}
    if err.status >= 500:
        body["request_id"] = request_id
    return json_response(body, status=err.status)


def accept_utf8_request_targets() -> None:
    """Parse requests with aiohttp's pure-Python parser, which takes raw UTF-8 in the request
    target. curl sends seed 002's own example `?name=实例` (and seed 000's `wm_type=自来水表`)
    unencoded, and llhttp, aiohttp's C parser, answers that with a plain-text 400 "Invalid char
    in url query" before any handler or envelope sees it. Responses (the aiohttp client) keep
    the C parser. tests/integration/common/test_http_targets.py pins this on the locked aiohttp.
    """
    web_protocol.HttpRequestParser = http_parser.HttpRequestParserPy  # type: ignore[attr-defined]


def envelope_middleware(
    rules: list[tuple[str, Renderer]], *, default: Renderer = render_management
) -> Middleware:
    """One error middleware: the first path prefix that matches picks the envelope.

    Anything unexpected is a 500 carrying a request id, logged with its traceback. Building it
    also makes the server accept raw UTF-8 request targets (accept_utf8_request_targets).
    """
    accept_utf8_request_targets()

    def pick(path: str) -> Renderer:
        for prefix, renderer in rules:
            if path.startswith(prefix):
                return renderer
        return default

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        request[REQUEST_ID] = request_id
        try:
            _refuse_bad_text_in_target(request)
            response = await handler(request)
        except HttpError as err:
            response = pick(request.path)(err, request_id)
            extra = err.data.get("headers") if isinstance(err.data, dict) else None
            if extra:  # Retry-After of a 429, WWW-Authenticate of a 401
                response.headers.update(extra)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            http_error = HttpError(exc.status, exc.reason or HTTPStatus(exc.status).phrase)
            response = pick(request.path)(http_error, request_id)
        except Exception:
            log.exception("unhandled error", path=request.path, request_id=request_id)
            response = pick(request.path)(HttpError(500, "internal error"), request_id)
        response.headers["X-Request-Id"] = request_id
        return response

    setattr(middleware, ENVELOPE_RULES, (list(rules), default))
    return middleware


def field_path(parts: Iterable[str | int]) -> str:
    """A location as a client writes it: `crontab.minute`, `[0].expectvalue`, `items[2].id`."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def text_problems(value: Any) -> dict[str, list[str]]:
    """Where a parsed JSON document holds text no store can keep (a NUL, which PostgreSQL text
    cannot hold, or a lone surrogate, which UTF-8 cannot), in names and values: {path: [why]}.
    Iterative, so a deeply nested body is an answer, not a RecursionError."""
    found: dict[str, list[str]] = {}

    def note(path: tuple[str | int, ...], problem: str) -> None:
        # the path itself may hold the bad text: written with escapes, so the answer encodes
        where = field_path(path).encode(errors="backslashreplace").decode() or "_body"
        found.setdefault(where, []).append(problem)

    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if problem := text_problem(item):
                note(path, problem)
        elif isinstance(item, dict):
            for key, child in item.items():
                if problem := text_problem(key):
                    note((*path, key), f"name {problem}")
                stack.append(((*path, key), child))
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in enumerate(item))
    return found


def _refuse_bad_text_in_target(request: web.Request) -> None:
    """A NUL (`%00`) or bytes that are not UTF-8 in the path or query are a 400 naming where,
    before any handler runs (the request parser keeps undecodable bytes as lone surrogates)."""
    if problem := text_problem(request.path):
        raise ValidationFailed({"_path": [problem]}, data={"location": "path"})
    bad: dict[str, list[str]] = {}
    for name, value in request.query.items():
        if problem := text_problem(name) or text_problem(value):
            bad[name.encode(errors="backslashreplace").decode() or "_query"] = [problem]
    if bad:
        raise ValidationFailed(bad, data={"location": "query"})


# pydantic's wrapping of a validator's own message ("Value error, month must be ...")
_LIBRARY_PREFIXES = ("Value error, ", "Assertion failed, ")


def _reason(message: str) -> str:
    """A validator's reason without pydantic's wrapper words."""
    for prefix in _LIBRARY_PREFIXES:
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def validation_fields(err: ValidationError) -> dict[str, list[str]]:
    """Turn pydantic's errors into {field: [reasons]}, the shape seed 001 shows."""
    fields: dict[str, list[str]] = {}
    for problem in err.errors():
        name = field_path(problem["loc"]) or "_schema"
        reason = "Missing data for required field." if problem["type"] == "missing" else _reason(problem["msg"])
        fields.setdefault(name, []).append(reason)
    return fields


def parse_model(model: type[M], data: object, *, location: str = "json") -> M:
    """Validate input into a model, or raise ValidationFailed naming every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ValidationFailed(validation_fields(err), data={"location": location}) from None


def _loads_exact(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a validation error that says the body is not JSON.

    Numbers with a fraction are read as Decimal, so a meter multiplier or a tariff price never
    passes through a float.
    """
    try:
        body = await request.json(loads=_loads_exact)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValidationFailed({"_body": [f"body is not valid JSON: {err}"]}) from None
    if bad := text_problems(body):
        raise ValidationFailed(bad)
    return body
