"""OpenAPI 3.1 at `/openapi.json`, built from the application's own routes and pydantic models.

Every route the router holds is described (path parameters from its pattern; HEAD and catch-all
routes left out). Each handler says more with `@documented(...)` (or `describe(handler, ...)` where
a factory makes it): the pydantic model its body is validated with, a model listing its query
parameters, its answer's model and envelope (seed 000's `{"meta", "data"}`, seed 002's
`{"code", "message", "data"}` or none). Validators that are not pydantic models (the
flask-smorest-style field tables of `/bemserver`, the management API's list filters) give their
JSON Schema through `JsonSchema`, built from the same tables they validate with. An operation
whose handler says nothing is marked `x-twinbill-undescribed` (a test keeps every service free of
them). A POST that creates an item gets OpenAPI links to the item's GET/PUT/DELETE by its `id`
(schemathesis' stateful phase follows them). Error answers are described
for every operation with the error body of the surface the path belongs to, taken from the
envelope middleware's own rules (`envelope_middleware` records them), so the document and the
answers cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from twinbill_common.http import (
    ENVELOPE_RULES,
    Renderer,
    json_response,
    render_dt,
    render_management,
    render_meta,
)
from twinbill_common.smorest import Field as SmorestField
from twinbill_common.smorest import render_smorest

H = TypeVar("H", bound=Callable[..., Any])
Envelope = Literal["meta", "dt", "none"]
OPENAPI = "3.1.0"
DOC_ATTRIBUTE = "__twinbill_api__"
REF = "#/components/schemas/{model}"
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")
ERROR_STATUSES = ("400", "401", "403", "404", "405", "409", "412", "413", "422", "428", "429", "500", "502",
                  "503")
UNDESCRIBED = "x-twinbill-undescribed"


@dataclass(frozen=True)
class JsonSchema:
    """A schema given as JSON Schema, for validators that are not pydantic models; `name` makes it
    a component."""

    schema: dict[str, Any]
    name: str | None = None
    array: bool = False  # a JSON array of such items

    def many(self) -> JsonSchema:
        """An array of these."""
        return JsonSchema(self.schema, self.name, array=True)


@dataclass(frozen=True)
class Operation:
    """What `@documented` says of a handler beyond its route."""

    summary: str = ""
    body: Any = None  # a pydantic model (or annotation, or JsonSchema) the JSON body is validated with
    query: type[BaseModel] | JsonSchema | None = None  # its fields are the query parameters
    response: Any = None  # the answer's data: a model or annotation; None: any JSON
    status: int = 200
    envelope: Envelope = "none"
    content_type: str = "application/json"
    tags: tuple[str, ...] = ()
    path_types: Mapping[str, type] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # request header -> its description
    body_required: bool = True
    body_media: str = "application/json"  # the request body's content type
    empty: bool = False  # the success answer has no body (204 always has none)


def documented(**kwargs: Any) -> Callable[[H], H]:
    """Attach an Operation to a handler (read by the document builder)."""
    operation = Operation(**kwargs)

    def mark(handler: H) -> H:
        setattr(handler, DOC_ATTRIBUTE, operation)
        return handler

    return mark


def describe(handler: H, **kwargs: Any) -> H:
    """`documented` for a handler a factory made (the factory knows its models)."""
    return documented(**kwargs)(handler)


# ---- the seeds' bodies, as models --------------------------------------------------------------

class MetaBody(BaseModel):
    """Seed 000's meta."""

    code: int
    message: str


class MetaError(BaseModel):
    """Seed 000's error: a non-zero meta.code and the reason."""

    model_config = ConfigDict(title="MetaError")
    meta: MetaBody
    data: dict[str, Any]


class DtError(BaseModel):
    """Seed 002's error: code and its documented message; the detail in data."""

    code: Literal[400, 401, 403, 404, 500]
    message: Literal["paramater error", "unauthorized", "forbidden", "not found", "error"]
    data: dict[str, Any] | None = None  # twinbill always sends it; the seed's examples leave it out


class ManagementError(BaseModel):
    """Seed 001's (flask-smorest) error body."""

    code: int
    status: str
    message: str | None = None
    errors: dict[str, Any] | None = None
    request_id: str | None = Field(default=None, description="on 5xx: quote it when reporting")


class SmorestError(BaseModel):
    """flask-smorest's error body as BEMServer answers it (`/bemserver`)."""

    code: int
    status: str
    message: str | None = None
    errors: dict[str, Any] | None = None
    request_id: str | None = None


ERROR_MODELS: dict[Renderer, type[BaseModel]] = {
    render_meta: MetaError, render_dt: DtError, render_management: ManagementError,
    render_smorest: SmorestError}


def page_query(*, default_size: int, max_size: int) -> JsonSchema:
    """`page` and `page_size` as `twinbill_common.paging.query_page` reads them."""
    return JsonSchema({"type": "object", "properties": {
        "page": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1, "description": "from 1"},
        "page_size": {"type": "integer", "minimum": 1, "maximum": max_size,
                      "description": f"{default_size} unless given"}}})


# ---- flask-smorest-style field tables (/bemserver) as JSON Schema ------------------------------

IF_MATCH = {"If-Match": "the ETag of the item as last read (428 without it, 412 when stale)"}


def smorest_field(spec: SmorestField) -> dict[str, Any]:
    """One field of a `twinbill_common.smorest` table, as `load_body` / `load_query` accept it."""
    schema: dict[str, Any]
    match spec.kind:
        case "int":
            schema = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
        case "number":
            schema = {"type": "number"}
        case "bool":
            schema = {"type": "boolean"}
        case "datetime":
            schema = {"type": "string", "format": "date-time"}
        case "email":
            schema = {"type": "string", "format": "email"}
        case "choice":
            schema = {"type": "string", "enum": list(spec.choices)} if spec.choices else {"type": "string"}
        case _:
            schema = {"type": "string"}
    if spec.length is not None:
        schema.update(minLength=spec.length[0], maxLength=spec.length[1])
    if spec.bounds is not None:
        schema.update(minimum=spec.bounds[0], maximum=spec.bounds[1])
    if spec.nullable and not spec.required:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def smorest_body(fields: Mapping[str, SmorestField], name: str | None = None) -> JsonSchema:
    """The JSON body `load_body(body, fields)` loads: unknown fields refused."""
    return JsonSchema({"type": "object", "additionalProperties": False,
                       "properties": {k: smorest_field(v) for k, v in fields.items()},
                       "required": [k for k, v in fields.items() if v.required]}, name)


def smorest_query(fields: Mapping[str, SmorestField], *, paginate: bool = False) -> JsonSchema:
    """The query `load_query(query, fields)` (and `parse_page` when `paginate`) reads."""
    properties: dict[str, Any] = {}
    for name, spec in fields.items():
        schema = smorest_field(SmorestField(spec.kind, length=spec.length, choices=spec.choices, nullable=False))
        if spec.kind == "bool":
            schema = {"type": "string", "enum": ["true", "false", "1", "0"]}
        properties[name] = schema
    if paginate:
        properties["page"] = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
        properties["page_size"] = {"type": "integer", "minimum": 1, "maximum": 100}
    return JsonSchema({"type": "object", "properties": properties,
                       "required": [k for k, v in fields.items() if v.required]})


def smorest_item(names: Iterable[str], *fields: Mapping[str, SmorestField],
                 name: str | None = None) -> JsonSchema:
    """An item as BEMServer dumps it (`resources.dump`: null fields left out): `names` its fields,
    typed from the body tables that load them, `id` always there."""
    kinds: dict[str, SmorestField] = {}
    for table in fields:
        kinds.update(table)
    properties: dict[str, Any] = {}
    for field_name in names:
        spec = kinds.get(field_name)
        if field_name == "id" or (field_name.endswith("_id") and spec is None):
            properties[field_name] = {"type": "integer"}
        elif spec is None:
            properties[field_name] = {}
        else:
            loose = SmorestField("str" if spec.kind == "choice" else spec.kind, nullable=False)
            properties[field_name] = smorest_field(loose)
    return JsonSchema({"type": "object", "properties": properties,
                       "required": ["id"] if "id" in properties else []}, name)


# ---- the builder --------------------------------------------------------------------------------

class _Schemas:
    """Collects component schemas while operations are described."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}
        self.responses: dict[str, Any] = {}

    def of(self, annotation: Any, *, mode: Literal["validation", "serialization"]) -> dict[str, Any]:
        if isinstance(annotation, JsonSchema):
            if annotation.name is None:
                one = dict(annotation.schema)
            else:
                self.components[annotation.name] = annotation.schema
                one = {"$ref": REF.format(model=annotation.name)}
            return {"type": "array", "items": one} if annotation.array else one
        schema = TypeAdapter(annotation).json_schema(ref_template=REF, mode=mode)
        self.components.update(schema.pop("$defs", {}))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and "properties" in schema:
            name = annotation.__name__
            self.components[name] = schema
            return {"$ref": REF.format(model=name)}
        return dict(schema)


def _envelope(data: dict[str, Any], envelope: Envelope) -> dict[str, Any]:
    if envelope == "meta":
        return {"type": "object", "required": ["meta", "data"], "properties": {
            "meta": {"type": "object", "required": ["code", "message"],
                     "properties": {"code": {"const": 0}, "message": {"type": "string"}}},
            "data": data}}
    if envelope == "dt":
        return {"type": "object", "required": ["code", "message", "data"], "properties": {
            "code": {"const": 200}, "message": {"const": "success"}, "data": data}}
    return data


def _renderer_for(app: web.Application, path: str) -> Renderer | None:
    found = [getattr(m, ENVELOPE_RULES) for m in app.middlewares if hasattr(m, ENVELOPE_RULES)]
    if not found:
        return None
    rules: tuple[list[tuple[str, Renderer]], Renderer] = found[0]
    prefixes, default = rules
    for prefix, renderer in prefixes:
        if path.startswith(prefix):
            return renderer
    return default


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter's schema without pydantic's `null` branch (absent means
    default; a query has no null)."""
    branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1 and "anyOf" in schema:
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**rest, **branches[0]}
    return schema


def _path_schema(name: str, declared: Mapping[str, type]) -> dict[str, Any]:
    kind = declared.get(name)
    if kind is int or (kind is None and (name == "id" or name.endswith("_id")) and name != "run_id"):
        return {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    return {"type": "string", "minLength": 1}


def _operation(app: web.Application, method: str, path: str, handler: Any, schemas: _Schemas) -> dict[str, Any]:
    described: Operation | None = getattr(handler, DOC_ATTRIBUTE, None)
    doc = described or Operation()
    summary = doc.summary or (handler.__doc__ or "").strip().splitlines()[0:1]
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_') or 'root'}",
        "summary": summary if isinstance(summary, str) else (summary[0] if summary else path),
    }
    if doc.tags:
        operation["tags"] = list(doc.tags)
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(name, doc.path_types)}
        for name in _PARAM.findall(path)]
    if doc.query is not None:
        if isinstance(doc.query, JsonSchema):
            properties = dict(doc.query.schema)
        else:
            properties = doc.query.model_json_schema(ref_template=REF, mode="validation")
        schemas.components.update(properties.pop("$defs", {}))
        required = set(properties.get("required", []))
        for name, schema in properties.get("properties", {}).items():
            schema = _without_null(schema)
            parameters.append({"name": name, "in": "query", "required": name in required,
                               "description": schema.pop("description", ""), "schema": schema})
    for name, description in doc.headers.items():
        parameters.append({"name": name, "in": "header", "required": False, "description": description,
                           "schema": {"type": "string"}})
    if parameters:
        operation["parameters"] = parameters
    if doc.body is not None:
        operation["requestBody"] = {"required": doc.body_required, "content": {
            doc.body_media: {"schema": schemas.of(doc.body, mode="validation")}}}
    data = schemas.of(doc.response, mode="serialization") if doc.response is not None else {}
    if doc.status == 204 or doc.empty:
        success: dict[str, Any] = {"description": "done, no body"}
    elif doc.content_type != "application/json":
        success = {"description": "ok", "content": {doc.content_type: {"schema": {"type": "string"}}}}
    else:
        success = {"description": "ok", "content": {"application/json": {"schema": _envelope(data, doc.envelope)}}}
    responses: dict[str, Any] = {str(doc.status): success}
    renderer = _renderer_for(app, path)
    model = ERROR_MODELS.get(renderer) if renderer is not None else None
    if model is not None:
        name = model.__name__
        schemas.responses[name] = {
            "description": "refused, or failed: the error body of the surface the path belongs to",
            "content": {"application/json": {"schema": schemas.of(model, mode="serialization")}}}
        for status in ERROR_STATUSES:
            responses.setdefault(status, {"$ref": f"#/components/responses/{name}"})
    operation["responses"] = responses
    if described is None:
        operation[UNDESCRIBED] = True
    return operation


def _has_id(schema: dict[str, Any], components: Mapping[str, Any]) -> bool:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = components.get(ref.rsplit("/", 1)[1], {})
    return "id" in schema.get("properties", {})


def _add_links(paths: dict[str, dict[str, Any]], components: Mapping[str, Any]) -> None:
    """A POST to `<base>/` answering an item with an `id` links to `<base>/{id}`'s operations."""
    for path, operations in paths.items():
        post = operations.get("post")
        item = paths.get(path.rstrip("/") + "/{id}")
        if post is None or item is None:
            continue
        for status, response in post["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if not status.startswith("2") or not _has_id(schema, components):
                continue
            links = {f"{method.upper()}_item": {"operationId": target["operationId"],
                                                "parameters": {"id": "$response.body#/id"}}
                     for method, target in item.items() if method in ("get", "put", "patch", "delete")}
            if links:
                response["links"] = links


async def _static_file(request: web.Request) -> web.StreamResponse:  # pragma: no cover - never served
    """Stands for a static directory's files in the document."""
    raise web.HTTPNotFound


def openapi_document(app: web.Application, *, title: str, version: str, description: str = "") -> dict[str, Any]:
    """The application's OpenAPI 3.1 document (every route; see the module's docstring)."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path is None:  # a static directory: one GET per file
            prefix = info.get("prefix")
            if prefix is None:
                continue
            path = f"{prefix.rstrip('/')}/{{filename}}"
            handler: Any = describe(_static_file, summary="A static file", content_type="application/octet-stream",
                                    path_types={"filename": str})
        else:
            handler = route.handler
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
        paths.setdefault(path, {})[route.method.lower()] = _operation(app, route.method, path, handler, schemas)
    _add_links(paths, schemas.components)
    return {"openapi": OPENAPI, "info": {"title": title, "version": version, "description": description},
            "paths": dict(sorted(paths.items())),
            "components": {"schemas": dict(sorted(schemas.components.items())),
                           "responses": dict(sorted(schemas.responses.items()))}}


def add_api_docs(app: web.Application, *, title: str, version: str, description: str = "") -> None:
    """Serve `GET /openapi.json`: the document, built once after every route is mounted."""

    built: dict[str, Any] = {}

    @documented(summary="This service's OpenAPI 3.1 document", response=dict[str, Any])
    async def openapi_json(request: web.Request) -> web.Response:
        if not built:
            built.update(openapi_document(request.app, title=title, version=version, description=description))
        return json_response(built)

    app.router.add_get("/openapi.json", openapi_json)
