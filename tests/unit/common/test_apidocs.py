"""Each service's OpenAPI document lists every route it mounts, with the pydantic models that
validate its bodies and the error body of the surface each path belongs to."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from aiohttp import web

from twinbill_billing.app import create_app as billing_app
from twinbill_billing.settings import BillingSettings
from twinbill_common.apidocs import UNDESCRIBED, openapi_document
from twinbill_ingest.app import create_app as ingest_app
from twinbill_ingest.settings import IngestSettings
from twinbill_scheduler.app import create_app as scheduler_app
from twinbill_scheduler.settings import SchedulerSettings
from twinbill_twin.app import create_app as twin_app
from twinbill_twin.settings import TwinSettings

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
APPS = {
    "twin": lambda: twin_app(TwinSettings()),
    "scheduler": lambda: scheduler_app(SchedulerSettings()),
    "billing": lambda: billing_app(BillingSettings()),
    "ingest": lambda: ingest_app(IngestSettings()),
}


def _routes(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path is not None:
            found.add((route.method.lower(), re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", path)))
    return found


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_route_is_in_the_document(service: str) -> None:
    """No route is missing, and each path parameter is declared."""
    app = APPS[service]()
    document = openapi_document(app, title=service, version="0")
    assert document["openapi"] == "3.1.0"
    listed = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert _routes(app) <= listed, _routes(app) - listed
    for path, operations in document["paths"].items():
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), path


def test_seed_000_task_routes_carry_their_models_and_envelopes() -> None:
    """The scheduler's body schema is TaskCreate's own JSON schema, answers are in the meta
    envelope, and errors are seed 000's error body."""
    document = openapi_document(scheduler_app(SchedulerSettings()), title="s", version="0")
    create = document["paths"]["/api/v1/scheduler/task/"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TaskCreate"}
    created: dict[str, Any] = create["responses"]["200"]["content"]["application/json"]["schema"]
    assert created["properties"]["data"] == {"$ref": "#/components/schemas/TaskRead"}
    assert created["properties"]["meta"]["properties"]["code"] == {"const": 0}
    assert create["responses"]["400"] == {"$ref": "#/components/responses/MetaError"}
    listing = document["paths"]["/api/v1/scheduler/tasks/"]["get"]
    assert {p["name"]: p["required"] for p in listing["parameters"]} == {
        "project_id": True, "device_type": True, "page_size": False, "page": False}
    assert "natrual_key" in document["components"]["schemas"]["TaskRead"]["properties"]


def test_each_surface_documents_its_own_error_body() -> None:
    """Seed 002 paths the seed's error envelope, BEMServer paths flask-smorest's, management paths
    seed 001's."""
    paths = openapi_document(twin_app(TwinSettings()), title="t", version="0")["paths"]
    assert paths["/dt/open/v1/instances"]["get"]["responses"]["400"]["$ref"].endswith("/DtError")
    assert paths["/bemserver/sites/"]["get"]["responses"]["404"]["$ref"].endswith("/SmorestError")
    assert paths["/api/v1/sites/"]["get"]["responses"]["404"]["$ref"].endswith("/ManagementError")


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.glob("seed000_*.json")))
def test_the_seeds_own_answers_fit_the_documented_schemas(fixture: str) -> None:
    """Seed 000's example answers, verbatim, validate against the document's success schema of
    their operation (tasks: the scheduler's document; history: billing's)."""
    example = json.loads((FIXTURES / fixture).read_text())
    app = billing_app(BillingSettings()) if "history" in fixture else scheduler_app(SchedulerSettings())
    document = openapi_document(app, title="s", version="0")
    path = (example.get("path") or example["request"]).split("?")[0]
    template = next(p for p in document["paths"]
                    if re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(p)), path))
    success = document["paths"][template][example.get("method", "GET").lower()]["responses"]["200"]
    schema = {**success["content"]["application/json"]["schema"], "components": document["components"]}
    errors = [e.message[:200] for e in jsonschema_rs.validator_for(schema).iter_errors(example["response"])]
    assert errors == []


SEED_002 = {"seed002_instances.json": ("/dt/open/v1/instances", "get"),
            "seed002_instance_detail.json": ("/dt/open/v1/instance", "get"),
            "seed002_control_response.json": ("/dt/open/v1/instance/{id}", "patch")}


def _validate(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    rooted = {**schema, "components": document["components"]}
    return [e.message[:200] for e in jsonschema_rs.validator_for(rooted).iter_errors(instance)]


def test_seed_002_examples_fit_the_twins_document() -> None:
    """Seed 002's list, detail and reverse-control examples fit their operations' schemas, its
    control request fits the body schema (ExpectValue), and its error examples the error body."""
    document = openapi_document(twin_app(TwinSettings()), title="t", version="0")
    for fixture, (path, method) in SEED_002.items():
        operation = document["paths"][path][method]
        schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert _validate(document, schema, json.loads((FIXTURES / fixture).read_text())) == [], fixture
    body = document["paths"]["/dt/open/v1/instance/{id}"]["patch"]["requestBody"]["content"]["application/json"]
    request = json.loads((FIXTURES / "seed002_control_request.json").read_text())
    assert _validate(document, body["schema"], request) == []
    error = {"$ref": "#/components/schemas/DtError"}
    for status, example in json.loads((FIXTURES / "seed002_errors.json").read_text()).items():
        if status.isdigit():
            assert _validate(document, error, example) == [], status


def _gateway() -> web.Application:
    from twinbill_gateway.app import create_app as gateway_app
    from twinbill_gateway.settings import GatewaySettings
    return gateway_app(GatewaySettings())


ALL_APPS = {**APPS, "gateway": _gateway}
# What a handler's own code calls when it reads a body, or the query string.
READS_BODY = re.compile(r"read_json\(|read_model\(|load_body\(|parse_model\(|"
                        r"request\.(json|read|text|multipart|post)\(")
READS_QUERY = re.compile(r"request\.query|load_query\(|parse_list_query\(|_paging\(|query_int\(|\bdata_state\(|"
                         r"time_param\(|labels_of\(")


@pytest.mark.parametrize("service", sorted(ALL_APPS))
def test_every_operation_is_described(service: str) -> None:
    """Every route of every service says what it takes and answers (`@documented` or a factory's
    `describe`): none is left with only its path. A handler whose code reads a body documents
    one, and one that reads the query string documents its parameters, so a new route cannot
    reach the document with input schemathesis (and a client) would not know of."""
    app = ALL_APPS[service]()
    document = openapi_document(app, title=service, version="0")
    undescribed = [f"{m.upper()} {p}" for p, ops in document["paths"].items() for m, op in ops.items()
                   if op.get(UNDESCRIBED)]
    assert undescribed == []
    missing: list[str] = []
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        if path is None:
            continue
        try:
            source = inspect.getsource(route.handler)
        except (OSError, TypeError):
            continue
        operation = document["paths"][re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", path)][route.method.lower()]
        if route.method in ("POST", "PUT", "PATCH") and READS_BODY.search(source) and "requestBody" not in operation:
            missing.append(f"{route.method} {path}: reads a body, documents none")
        if READS_QUERY.search(source) and not any(p["in"] == "query" for p in operation.get("parameters", [])):
            missing.append(f"{route.method} {path}: reads the query, documents no parameter")
    assert missing == []


def test_management_and_bemserver_operations_carry_their_validators_schemas() -> None:
    """The management API's list filters, bodies and answers come from the registry's own models
    and filter tables; BEMServer's from the field tables `load_body`/`load_query` validate with."""
    document = openapi_document(twin_app(TwinSettings()), title="t", version="0")
    paths, schemas = document["paths"], document["components"]["schemas"]
    sites = paths["/api/v1/sites/"]
    assert {p["name"] for p in sites["get"]["parameters"]} == {"page", "page_size", "project_id", "name"}
    assert sites["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SiteCreate"}
    assert sites["get"]["responses"]["200"]["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/SiteRead"}
    bem = paths["/bemserver/timeseries/"]
    created = schemas["bemserver_timeseries_create"] if "bemserver_timeseries_create" in schemas else \
        bem["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(created["required"]) == {"name", "campaign_id", "campaign_scope_id"}
    assert created["additionalProperties"] is False  # load_body refuses unknown fields
    aggregate = {p["name"]: p for p in paths["/bemserver/timeseries_data/aggregate"]["get"]["parameters"]}
    assert aggregate["bucket_width_unit"]["required"] and aggregate["timeseries"]["schema"]["type"] == "array"
    put = paths["/bemserver/sites/{id}"]["put"]
    assert any(p["name"] == "If-Match" and p["in"] == "header" for p in put["parameters"])


def test_a_creating_post_links_to_its_items_operations() -> None:
    """schemathesis' stateful phase follows these: create, then read, change and delete by id."""
    paths = openapi_document(twin_app(TwinSettings()), title="t", version="0")["paths"]
    for base in ("/api/v1/sites/", "/bemserver/campaigns/", "/api/v1/webhooks/"):
        links = paths[base]["post"]["responses"]["201"]["links"]
        assert {link["operationId"] for link in links.values()} >= {
            paths[base + "{id}"]["get"]["operationId"], paths[base + "{id}"]["delete"]["operationId"]}
        assert all(link["parameters"] == {"id": "$response.body#/id"} for link in links.values())
