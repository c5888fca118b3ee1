"""flask-smorest's HTTP conventions, as BEMServer's API shows them (issue 12): error bodies,
ETag / If-Match / If-None-Match, and page parameters with the X-Pagination header.

BEMServer is a flask-smorest application, so its clients rely on these exact shapes:
- errors `{"code", "status"[, "message"][, "errors": {location: {field: [reasons]}}]}`; a 422
  carries no message, a 401 carries `errors.authentication` as a plain code string;
- an ETag is the SHA-1 of the response's JSON dumped with sorted keys; GET answers 304 when
  If-None-Match matches; PUT and DELETE need If-Match (428 without it, 412 when stale);
- pages: `page` (default 1) and `page_size` (default 10, at most 100), metadata in X-Pagination.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web

from twinbill_common.errors import HttpError, ValidationFailed
from twinbill_common.http import json_response

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100


def render_smorest(err: HttpError, request_id: str) -> web.Response:
    """flask-smorest's error body for an HttpError."""
    body: dict[str, Any] = {"code": err.status, "status": HTTPStatus(err.status).phrase}
    raw = err.data.get("errors") if isinstance(err.data, dict) else None
    if raw is not None:
        body["errors"] = raw
    elif err.fields:
        location = err.data.get("location", "json") if isinstance(err.data, dict) else "json"
        body["errors"] = {location: err.fields}
    if err.message and not (err.status == 422 and "errors" in body):
        body["message"] = err.message
    if err.status >= 500:
        body["request_id"] = request_id
    headers = err.data.get("headers") if isinstance(err.data, dict) else None
    response = json_response(body, status=err.status)
    if headers:
        response.headers.update(headers)
    return response


def etag_of(data: object) -> str:
    """flask-smorest's ETag of a response body: SHA-1 of its JSON with sorted keys."""
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def _tags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/").strip('"') for part in header.split(",") if part.strip()}


def respond(request: web.Request, data: object, *, status: int = 200,
            headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer with its ETag; 304 when a GET's If-None-Match already has it."""
    tag = etag_of(data)
    if request.method == "GET" and tag in _tags(request.headers.get("If-None-Match", "")):
        return web.Response(status=304, headers={"ETag": f'"{tag}"'})
    response = json_response(data, status=status, headers=headers)
    response.headers["ETag"] = f'"{tag}"'
    return response


def check_if_match(request: web.Request, current: object) -> None:
    """PUT / DELETE preconditions: 428 without If-Match, 412 when it is not the current ETag."""
    header = request.headers.get("If-Match")
    if header is None:
        raise HttpError(428, "")
    if "*" not in _tags(header) and etag_of(current) not in _tags(header):
        raise HttpError(412, "")


def parse_page(query: Any) -> tuple[int, int]:
    """page and page_size from a query, 422 (location query) naming the bad one."""
    errors: dict[str, list[str]] = {}
    values = {"page": 1, "page_size": DEFAULT_PAGE_SIZE}
    for name, top in (("page", 2**31 - 1), ("page_size", MAX_PAGE_SIZE)):
        raw = query.get(name)
        if raw is None:
            continue
        try:
            number = int(raw)
        except ValueError:
            errors[name] = ["Not a valid integer."]
            continue
        if not 1 <= number <= top:
            errors[name] = [f"Must be greater than or equal to 1 and less than or equal to {top}."]
            continue
        values[name] = number
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    return values["page"], values["page_size"]


def pagination_header(*, total: int, page: int, page_size: int) -> str:
    """X-Pagination as flask-smorest writes it."""
    meta: dict[str, int] = {"total": total}
    if total == 0:
        meta["total_pages"] = 0
        return json.dumps(meta)
    last = (total - 1) // page_size + 1
    meta.update(total_pages=last, first_page=1, last_page=last)
    if page <= last:
        meta["page"] = page
        if page > 1:
            meta["previous_page"] = page - 1
        if page < last:
            meta["next_page"] = page + 1
    return json.dumps(meta)


def not_found() -> HttpError:
    """flask-smorest's bare abort(404)."""
    return HttpError(404, "")


def forbidden() -> HttpError:
    """BEMServer's authorization error."""
    return HttpError(403, "Authorization error")


def path_id(request: web.Request) -> int:
    """The `{id}` of an item URL as flask's int converter takes it: 404 unless a positive int32."""
    try:
        ident = int(request.match_info["id"])
    except ValueError:
        raise not_found() from None
    if not 0 < ident < 2**31:
        raise not_found()
    return ident


def name_order(sort: str | None, *, alias: str = "") -> str:
    """ORDER BY for BEMServer's `sort` parameter: name, +name or -name (id breaks ties), id alone
    without it; 422 (location query) for anything else. `alias` prefixes the columns ("t.")."""
    if not sort:
        return f"{alias}id"
    if sort.lstrip("+-") != "name":
        raise HttpError(422, "", fields={"sort": ["Must be one of: name, +name, -name."]}, data={"location": "query"})
    return f"{alias}name DESC, {alias}id" if sort.startswith("-") else f"{alias}name, {alias}id"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_collection_routes(app: web.Application, base: str, *, lister: Handler, creator: Handler,
                          getter: Handler, deleter: Handler, updater: Handler | None = None) -> None:
    """A flask-smorest blueprint's routes: GET/POST `<base>/`, GET/PUT/DELETE `<base>/{id}` (PUT
    only with an updater)."""
    app.router.add_get(f"{base}/", lister)
    app.router.add_post(f"{base}/", creator)
    app.router.add_get(base + "/{id}", getter)
    if updater is not None:
        app.router.add_put(base + "/{id}", updater)
    app.router.add_delete(base + "/{id}", deleter)


Kind = Literal["str", "int", "bool", "number", "email", "datetime", "choice"]
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Field:
    """One body field as marshmallow would load it."""

    kind: Kind
    required: bool = False
    nullable: bool = True
    length: tuple[int, int] | None = None
    choices: tuple[str, ...] = ()
    bounds: tuple[float, float] | None = None  # a number's inclusive range (marshmallow's Range)


def _load_one(value: Any, spec: Field) -> tuple[Any, str | None]:
    """The loaded value, or the reason (marshmallow's wording) it is refused."""
    if value is None:
        return (None, None) if spec.nullable and not spec.required else (None, "Field may not be null.")
    match spec.kind:
        case "int":
            if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
                return None, "Not a valid integer."
            try:
                number = int(value)
            except (TypeError, ValueError):
                return None, "Not a valid integer."
            if number != Decimal(str(value)) or not -(2**31) <= number < 2**31:
                return None, "Not a valid integer."
            return number, None
        case "number":
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                return None, "Not a valid number."
            if spec.bounds is not None and not spec.bounds[0] <= value <= spec.bounds[1]:
                low, high = (f"{b:g}" for b in spec.bounds)
                return None, f"Must be greater than or equal to {low} and less than or equal to {high}."
            return float(value), None
        case "bool":
            return (value, None) if isinstance(value, bool) else (None, "Not a valid boolean.")
        case "datetime":
            if not isinstance(value, str):
                return None, "Not a valid datetime."
            try:
                when = datetime.fromisoformat(value)
            except ValueError:
                return None, "Not a valid datetime."
            if when.tzinfo is None:
                return None, "Not a valid aware datetime."
            return when, None
    if not isinstance(value, str):
        return None, "Not a valid string."
    if spec.kind == "email" and not EMAIL.match(value):
        return None, "Not a valid email address."
    if spec.kind == "choice" and value not in spec.choices:
        return None, "Must be one of: " + ", ".join(spec.choices) + "."
    if spec.length and not spec.length[0] <= len(value) <= spec.length[1]:
        return None, f"Length must be between {spec.length[0]} and {spec.length[1]}."
    return value, None


def load_body(body: Any, fields: dict[str, Field]) -> dict[str, Any]:
    """A JSON object loaded as BEMServer's AutoSchema does: unknown fields refused, every bad or
    missing required field named (422), and absent optional fields set to None."""
    if not isinstance(body, dict):
        raise ValidationFailed({"_schema": ["Invalid input type."]})
    errors: dict[str, list[str]] = {name: ["Unknown field."] for name in body if name not in fields}
    loaded: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in body:
            if spec.required:
                errors[name] = ["Missing data for required field."]
            loaded[name] = None
            continue
        value, problem = _load_one(body[name], spec)
        if problem:
            errors[name] = [problem]
        loaded[name] = value
    if errors:
        raise ValidationFailed(errors, data={"location": "json"})
    return loaded


def load_query(query: Any, fields: dict[str, Field], *, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Query-string filters: each given one converted (422, location query, naming the bad ones).
    Unknown parameters are ignored, as webargs excludes them from a query (not from a body)."""
    errors: dict[str, list[str]] = {}
    loaded: dict[str, Any] = {}
    for name in query:
        if name in extra or name not in fields:
            continue
        raw = query.get(name)
        spec = fields[name]
        if spec.kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                errors[name] = ["Not a valid boolean."]
                continue
            loaded[name] = raw.lower() in ("true", "1")
            continue
        value, problem = _load_one(raw, spec)
        if problem:
            errors[name] = [problem]
        else:
            loaded[name] = value
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    return loaded
