"""bemserver-api 0.26-0.27's tasks (the installed client 0.22's `tasks` and `task_by_campaign`
entry points), which replaced the `st_*` resources there: `GET /tasks/` (the tasks with their
default parameters and schedule), `POST /tasks/run` (one task for one campaign over an interval,
now), and `/tasks_by_campaigns/` (a task scheduled for a campaign: parameters and the interval as
offsets in a period unit). Run by twinbill_twin.checks like the `st_*` switches."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
from aiohttp import web

from twinbill_common.apidocs import IF_MATCH, JsonSchema, documented, smorest_query
from twinbill_common.errors import HttpError, ValidationFailed
from twinbill_common.http import read_json
from twinbill_common.smorest import (
    Field,
    add_collection_routes,
    check_if_match,
    forbidden,
    load_query,
    not_found,
    path_id,
    respond,
)
from twinbill_twin.api.common import pool_of
from twinbill_twin.bemserver.access import access_of
from twinbill_twin.checks import CHECKS
from twinbill_twin.domain.checks import TASKS, UNITS
from twinbill_twin.keys import SETTINGS

COLUMNS = "id, task_name, campaign_id, is_enabled, parameters, offset_unit, start_offset, end_offset"


INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
# What _load and run_task accept, as JSON Schema (they are hand-written validators).
TASK_PUT = {"is_enabled": {"type": "boolean"}, "parameters": {"type": "object"},
            "offset_unit": {"type": "string", "enum": list(UNITS)}, "start_offset": INT32, "end_offset": INT32}
TASK_BY_CAMPAIGN = JsonSchema({"type": "object", "properties": {
    "id": {"type": "integer"}, "task_name": {"type": "string"}, "campaign_id": {"type": "integer"}, **TASK_PUT}},
    "bemserver_task_by_campaign")
TASK_QUERY = {"campaign_id": Field("int"), "task_name": Field("str"), "is_enabled": Field("bool")}
RUN = JsonSchema({"type": "object", "additionalProperties": False,
                  "required": ["task_name", "campaign_id", "start_time", "end_time"], "properties": {
                      "task_name": {"type": "string", "enum": list(TASKS)}, "campaign_id": INT32,
                      "start_time": {"type": "string", "format": "date-time"},
                      "end_time": {"type": "string", "format": "date-time"}, "parameters": {"type": "object"}}})


def _dump(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    out["parameters"] = json.loads(out["parameters"])
    return out


def _load(body: Any, *, creating: bool) -> dict[str, Any]:
    """TaskByCampaignSchema (POST) or TaskByCampaignPutSchema (PUT: no campaign_id, task_name)."""
    if not isinstance(body, dict):
        raise ValidationFailed({"_schema": ["Invalid input type."]}, data={"location": "json"})
    known = {"is_enabled", "parameters", "offset_unit", "start_offset", "end_offset"}
    if creating:
        known |= {"task_name", "campaign_id"}
    errors: dict[str, list[str]] = {name: ["Unknown field."] for name in body if name not in known}
    out: dict[str, Any] = {}
    for name in known & set(body):
        value = body[name]
        if name == "task_name" and not isinstance(value, str):
            errors[name] = ["Not a valid string."]
        elif name in ("campaign_id", "start_offset", "end_offset") and (
                isinstance(value, bool) or not isinstance(value, int) or not -(2**31) <= value < 2**31):
            errors[name] = ["Not a valid integer."]
        elif name == "is_enabled" and not isinstance(value, bool):
            errors[name] = ["Not a valid boolean."]
        elif name == "parameters" and not isinstance(value, dict):
            errors[name] = ["Not a valid mapping type."]
        elif name == "offset_unit" and value not in UNITS:
            errors[name] = ["Must be one of: " + ", ".join(UNITS) + "."]
        else:
            out[name] = value
    if creating:
        for name in ("task_name", "campaign_id", "offset_unit"):
            if name not in body:
                errors[name] = ["Missing data for required field."]
    if errors:
        raise ValidationFailed(errors, data={"location": "json"})
    if "parameters" in out:
        out["parameters"] = json.dumps(out["parameters"], default=_number)
    return out


def _number(value: Any) -> Any:
    """JSON numbers in a body are read as Decimal (read_json); parameters keep them as numbers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


async def _one(conn: asyncpg.Connection, request: web.Request, ident: int) -> asyncpg.Record:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM bem_tasks_by_campaigns WHERE id = $1", ident)
    if row is None:
        raise not_found()
    access = access_of(request)
    if not access.admin and row["campaign_id"] not in access.campaigns:
        raise forbidden()
    return row


@documented(summary="Tasks enabled per campaign", query=smorest_query(TASK_QUERY), response=TASK_BY_CAMPAIGN.many(),
            tags=("bemserver",))
async def list_tasks_by_campaigns(request: web.Request) -> web.Response:
    """GET /tasks_by_campaigns/?campaign_id&task_name&is_enabled."""
    access = access_of(request)
    query = load_query(request.query, TASK_QUERY)
    clauses, args = [], []
    for name, value in query.items():
        args.append(value)
        clauses.append(f"{name} = ${len(args)}")
    if not access.admin:
        args.append(sorted(access.campaigns))
        clauses.append(f"campaign_id = ANY(${len(args)}::int[])")
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    rows = await pool_of(request).fetch(f"SELECT {COLUMNS} FROM bem_tasks_by_campaigns{where} ORDER BY id", *args)
    return respond(request, [_dump(row) for row in rows])


@documented(summary="One task of a campaign", response=TASK_BY_CAMPAIGN, tags=("bemserver",))
async def get_task_by_campaign(request: web.Request) -> web.Response:
    async with pool_of(request).acquire() as conn:
        return respond(request, _dump(await _one(conn, request, path_id(request))))


@documented(summary="Enable a task for a campaign", response=TASK_BY_CAMPAIGN, status=201, tags=("bemserver",),
            body=JsonSchema({"type": "object", "additionalProperties": False,
                             "required": ["task_name", "campaign_id", "offset_unit"],
                             "properties": {"task_name": {"type": "string"}, "campaign_id": INT32, **TASK_PUT}}))
async def create_task_by_campaign(request: web.Request) -> web.Response:
    """POST: administrators; an unknown campaign is BEMServer's foreign-key 409. Task names are
    not checked, as bemserver-core ("There is no validation on task name")."""
    access_of(request).write()
    body = _load(await read_json(request), creating=True)
    names = list(body)
    try:
        row = await pool_of(request).fetchrow(
            f"INSERT INTO bem_tasks_by_campaigns ({', '.join(names)}) VALUES "
            f"({', '.join(f'${i + 1}' for i in range(len(names)))}) RETURNING {COLUMNS}", *body.values())
    except asyncpg.ForeignKeyViolationError:
        raise HttpError(409, "Foreign key constraint violation") from None
    return respond(request, _dump(row), status=201)


@documented(summary="Change a campaign's task", response=TASK_BY_CAMPAIGN, headers=IF_MATCH, tags=("bemserver",),
            body=JsonSchema({"type": "object", "additionalProperties": False, "properties": TASK_PUT}))
async def update_task_by_campaign(request: web.Request) -> web.Response:
    access_of(request).write()
    ident = path_id(request)
    body = _load(await read_json(request), creating=False)
    async with pool_of(request).acquire() as conn:
        check_if_match(request, _dump(await _one(conn, request, ident)))
        if body:
            sets = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(body))
            await conn.execute(f"UPDATE bem_tasks_by_campaigns SET {sets} WHERE id = $1", ident, *body.values())
        return respond(request, _dump(await _one(conn, request, ident)))


@documented(summary="Delete a campaign's task", status=204, headers=IF_MATCH, tags=("bemserver",))
async def delete_task_by_campaign(request: web.Request) -> web.Response:
    access_of(request).write()
    ident = path_id(request)
    async with pool_of(request).acquire() as conn:
        check_if_match(request, _dump(await _one(conn, request, ident)))
        await conn.execute("DELETE FROM bem_tasks_by_campaigns WHERE id = $1", ident)
    return web.Response(status=204)


@documented(summary="The tasks, their default parameters and schedule", response=JsonSchema({"type": "object"}).many(),
            tags=("bemserver",))
async def list_tasks(request: web.Request) -> web.Response:
    """GET /tasks/: each task, its default parameters and its schedule (every twin looks every
    TWIN_CHECKS_INTERVAL seconds for enabled tasks_by_campaigns rows)."""
    interval = request.app[SETTINGS].checks_interval
    schedule = {} if not request.app[SETTINGS].checks_enabled else {"twinbill": f"every {interval:g} seconds"}
    return respond(request, [{"name": name, "default_parameters": defaults,
                              "schedule": {f"{name}Scheduled": text for text in schedule.values()}}
                             for name, (_, defaults) in TASKS.items()])


@documented(summary="Run a task now for a campaign and period", body=RUN, status=204, tags=("bemserver",))
async def run_task(request: web.Request) -> web.Response:
    """POST /tasks/run {task_name, campaign_id, start_time, end_time, parameters?}: 204 once run
    (bemserver-api answers 204 as it queues the task; here it has run when the answer comes)."""
    access_of(request).write()
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ValidationFailed({"_schema": ["Invalid input type."]}, data={"location": "json"})
    errors: dict[str, list[str]] = {name: ["Unknown field."] for name in body
                                    if name not in ("task_name", "campaign_id", "start_time", "end_time", "parameters")}
    for name in ("task_name", "campaign_id", "start_time", "end_time"):
        if name not in body:
            errors[name] = ["Missing data for required field."]
    times: dict[str, datetime] = {}
    for name in ("start_time", "end_time"):
        if name in body:
            try:
                times[name] = datetime.fromisoformat(str(body[name]))
            except ValueError:
                errors[name] = ["Not a valid datetime."]
                continue
            if times[name].tzinfo is None:
                errors[name] = ["Not a valid aware datetime."]
            elif not 1 < times[name].year < 9999:  # an interval's ends must stay datetimes in every zone
                errors[name] = ["Not a valid datetime."]
    campaign: Any = body.get("campaign_id")
    if "campaign_id" in body and (isinstance(campaign, bool) or not isinstance(campaign, int)
                                  or not -(2**31) <= campaign < 2**31):
        errors["campaign_id"] = ["Not a valid integer."]
    if "task_name" in body and not isinstance(body["task_name"], str):
        errors["task_name"] = ["Not a valid string."]
    parameters = body.get("parameters", {})
    if not isinstance(parameters, dict):
        errors["parameters"] = ["Not a valid mapping type."]
    if errors:
        raise ValidationFailed(errors, data={"location": "json"})
    if body["task_name"] not in TASKS:
        raise HttpError(422, "Unknown task")
    if not await pool_of(request).fetchval("SELECT 1 FROM projects WHERE id = $1", campaign):
        raise HttpError(422, "Unknown campaign")
    if CHECKS not in request.app:
        raise HttpError(503, "The check services are not running in this twin (starting, or stopped).")
    await request.app[CHECKS].run_task(body["task_name"], campaign, times["start_time"], times["end_time"],
                                       {**TASKS[body["task_name"]][1],
                                        **json.loads(json.dumps(parameters, default=_number))})
    return web.Response(status=204)


def add_task_routes(app: web.Application, prefix: str) -> None:
    """/tasks/, /tasks/run, /tasks_by_campaigns/."""
    app.router.add_get(f"{prefix}/tasks/", list_tasks)
    app.router.add_post(f"{prefix}/tasks/run", run_task)
    add_collection_routes(app, f"{prefix}/tasks_by_campaigns", lister=list_tasks_by_campaigns,
                          creator=create_task_by_campaign, getter=get_task_by_campaign,
                          updater=update_task_by_campaign, deleter=delete_task_by_campaign)


__all__ = ["add_task_routes"]
