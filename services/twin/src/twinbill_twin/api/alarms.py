"""Alarm rules per project (/api/v1/alarm_rules/): list, create, read, update, delete. The alarm
consumer picks a change up within its rule cache's few seconds."""

from __future__ import annotations

import json
from typing import Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from twinbill_common.apidocs import documented
from twinbill_common.errors import Conflict, NotFound, ValidationFailed
from twinbill_twin.api.common import filters_query, listed, one, parse_list_query, path_id, pool_of, read_model
from twinbill_twin.domain.alarms import KINDS, RuleInvalid, check_params
from twinbill_twin.domain.levels import LEVELS, NAMES

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class AlarmRuleCreate(BaseModel):
    """A new rule: its project, kind (offline, leak, threshold, register), parameters, level."""

    model_config = ConfigDict(extra="forbid")
    project_id: int = Field(ge=1, le=2**31 - 1)
    kind: Literal["offline", "leak", "threshold", "register"]
    name: str = Field(min_length=1, max_length=200)
    level: Level = "WARNING"
    enabled: bool = True
    device_type: int | None = Field(default=None, ge=1, le=2)
    params: dict[str, Any]


class AlarmRuleUpdate(BaseModel):
    """What a rule's update may change (its project and kind stay)."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    level: Level | None = None
    enabled: bool | None = None
    device_type: int | None = Field(default=None, ge=1, le=2)
    params: dict[str, Any] | None = None


class AlarmRuleRead(BaseModel):
    """A rule as stored."""

    id: int
    project_id: int
    kind: str
    name: str
    level: str
    enabled: bool
    device_type: int | None
    params: dict[str, Any]


def _row(row: Any) -> dict[str, Any]:
    out = dict(row)
    out["level"] = NAMES.get(out["level"], str(out["level"]))
    if isinstance(out["params"], str):
        out["params"] = json.loads(out["params"])
    return out


def _checked(kind: str, params: Any) -> str:
    try:
        return json.dumps(check_params(kind, params), default=str)
    except RuleInvalid as err:
        raise ValidationFailed({f"params.{k}" if k != "kind" else k: v for k, v in err.fields.items()}) from None


async def _one(conn: asyncpg.Connection, ident: int) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM alarm_rules WHERE id = $1", ident)
    if row is None:
        raise NotFound(f"no alarm rule {ident}")
    return _row(row)


RULE_FILTERS: dict[str, type] = {"project_id": int, "kind": str, "name": str}


@documented(summary="A page of alarm rules", query=filters_query(RULE_FILTERS, enums={"kind": KINDS}),
            response=list[AlarmRuleRead], tags=("management",))
async def list_rules(request: web.Request) -> web.Response:
    """GET /api/v1/alarm_rules/?project_id=&kind=&name=&page=&page_size=."""
    page, size, chosen = parse_list_query(request, RULE_FILTERS)
    if "kind" in chosen and chosen["kind"] not in KINDS:
        raise ValidationFailed({"kind": [f"Must be one of: {', '.join(KINDS)}."]}, data={"location": "query"})
    clauses = [f"{name} = ${i + 1}" for i, name in enumerate(chosen)]
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    async with pool_of(request).acquire() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM alarm_rules{where}", *chosen.values())
        rows = await conn.fetch(f"SELECT * FROM alarm_rules{where} ORDER BY id LIMIT {size} OFFSET {(page - 1) * size}",
                                *chosen.values())
    return listed([_row(r) for r in rows], AlarmRuleRead, total=int(total), page=page, page_size=size)


@documented(summary="Create an alarm rule", body=AlarmRuleCreate, response=AlarmRuleRead, status=201,
            tags=("management",))
async def create_rule(request: web.Request) -> web.Response:
    """POST /api/v1/alarm_rules/ (422 naming each bad parameter; 409 on a duplicate name)."""
    body = await read_model(request, AlarmRuleCreate)
    params = _checked(body.kind, body.params)
    async with pool_of(request).acquire() as conn:
        if not await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", body.project_id):
            raise ValidationFailed({"project_id": [f"no project {body.project_id}"]})
        try:
            ident = await conn.fetchval(
                "INSERT INTO alarm_rules (project_id, kind, name, level, enabled, device_type, params) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) RETURNING id", body.project_id, body.kind, body.name,
                LEVELS[body.level], body.enabled, body.device_type, params)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"project {body.project_id} already has an alarm rule named {body.name!r}") from None
        return one(await _one(conn, ident), AlarmRuleRead, status=201)


@documented(summary="One alarm rule", response=AlarmRuleRead, tags=("management",))
async def get_rule(request: web.Request) -> web.Response:
    """GET /api/v1/alarm_rules/{id}."""
    async with pool_of(request).acquire() as conn:
        return one(await _one(conn, path_id(request)), AlarmRuleRead)


@documented(summary="Change an alarm rule", body=AlarmRuleUpdate, response=AlarmRuleRead, tags=("management",))
async def update_rule(request: web.Request) -> web.Response:
    """PUT /api/v1/alarm_rules/{id}: the fields given."""
    body = await read_model(request, AlarmRuleUpdate)
    values = body.model_dump(exclude_unset=True)
    async with pool_of(request).acquire() as conn:
        current = await _one(conn, path_id(request))
        if "params" in values:
            values["params"] = _checked(current["kind"], values["params"])
        if "level" in values:
            values["level"] = LEVELS[values["level"]]
        for name in ("name", "enabled", "params", "level"):
            if name in values and values[name] is None:
                raise ValidationFailed({name: ["Field may not be null."]})
        if values:
            sets = ", ".join(f"{name} = ${i + 2}{'::jsonb' if name == 'params' else ''}"
                             for i, name in enumerate(values))
            try:
                await conn.execute(f"UPDATE alarm_rules SET {sets} WHERE id = $1", current["id"], *values.values())
            except asyncpg.UniqueViolationError:
                raise Conflict(f"project {current['project_id']} already has an alarm rule with that name") from None
        return one(await _one(conn, current["id"]), AlarmRuleRead)


@documented(summary="Delete an alarm rule", status=204, tags=("management",))
async def delete_rule(request: web.Request) -> web.Response:
    """DELETE /api/v1/alarm_rules/{id}."""
    async with pool_of(request).acquire() as conn:
        current = await _one(conn, path_id(request))
        await conn.execute("DELETE FROM alarm_rules WHERE id = $1", current["id"])
    return web.Response(status=204)


def add_alarm_routes(app: web.Application) -> None:
    """/api/v1/alarm_rules/ and /api/v1/alarm_rules/{id}."""
    app.router.add_get("/api/v1/alarm_rules/", list_rules)
    app.router.add_post("/api/v1/alarm_rules/", create_rule)
    app.router.add_get("/api/v1/alarm_rules/{id}", get_rule)
    app.router.add_put("/api/v1/alarm_rules/{id}", update_rule)
    app.router.add_delete("/api/v1/alarm_rules/{id}", delete_rule)
