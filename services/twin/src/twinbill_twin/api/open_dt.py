"""Seed 002's instance endpoints under /dt/open/v1 (envelope {"code", "message", "data"})."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, TypeAdapter, ValidationError

from twinbill_common.apidocs import documented
from twinbill_common.errors import HttpError, NotFound, ValidationFailed
from twinbill_common.http import dt_ok, read_json, validation_fields
from twinbill_common.paging import INT64_MAX, Errors, page_total, parse_int, query_int
from twinbill_common.schemas import SetMeasurepoints
from twinbill_common.schemas.base import new_message_id
from twinbill_common.topology import COMMANDS
from twinbill_twin.api.common import pool_of
from twinbill_twin.api.open_dt_schemas import Empty, InstanceDetail, InstancePage, InstanceQuery, InstancesQuery
from twinbill_twin.api.visibility import instances_visible, visible_projects
from twinbill_twin.domain.control import BadExpectValue, typed_expectvalue
from twinbill_twin.events import enqueue_messages
from twinbill_twin.keys import OUTBOX
from twinbill_twin.store import instances

MAX_OFFSET = 10_000
MAX_IDS = 1_000
COMMAND_TTL = timedelta(days=1)


def bad(field: str, reason: str) -> ValidationFailed:
    """400 "paramater error" (render_dt maps 422) with the field named in data."""
    return ValidationFailed({field: [reason]}, data={"location": "query"})


@documented(summary="A page of instances (seed 002)", query=InstancesQuery, response=InstancePage, envelope="dt",
            tags=("seed 002",))
async def list_instances(request: web.Request) -> web.Response:
    """GET /dt/open/v1/instances?name=&page=&offset=: a page of instances."""
    name = request.query.get("name", "")
    errors: Errors = {}
    if len(name) > 128:
        errors["name"] = ["at most 128 characters"]
    page = query_int(request.query, "page", default=1, errors=errors)
    offset = query_int(request.query, "offset", default=10, maximum=MAX_OFFSET, errors=errors)
    if errors:
        raise ValidationFailed(errors, data={"location": "query"})
    async with pool_of(request).acquire() as conn:
        total, rows = await instances.list_instances(conn, name=name, page=page, offset=offset,
                                                     projects=visible_projects(request))
    return dt_ok({"total": total, "pageTotal": page_total(total, offset), "page": page,
                  "offset": offset, "rows": rows})


def parse_ids(raw: str | None) -> list[int]:
    """`ids=1,2`: positive integers separated by commas, repeats dropped (400 otherwise)."""
    if raw is None or raw.strip() == "":
        raise bad("ids", "Missing data for required field.")
    ids: list[int] = []
    for part in raw.split(","):
        try:
            ident = parse_int(part, maximum=INT64_MAX)
        except ValueError as err:
            raise bad("ids", f"{part.strip()!r}: {err}") from None
        if ident not in ids:
            ids.append(ident)
    if len(ids) > MAX_IDS:
        raise bad("ids", f"at most {MAX_IDS} ids per request")
    return ids


@documented(summary="Instances with their attributes (seed 002)", query=InstanceQuery,
            response=list[InstanceDetail], envelope="dt", tags=("seed 002",))
async def instance_details(request: web.Request) -> web.Response:
    """GET /dt/open/v1/instance?ids=1,2: instances with their attributes; 404 if any is unknown."""
    ids = parse_ids(request.query.get("ids"))
    async with pool_of(request).acquire() as conn:
        visible = await instances_visible(conn, visible_projects(request), ids)
        found = await instances.instance_details(conn, [ident for ident in ids if ident in visible])
    missing = sorted(set(ids) - {row["id"] for row in found})
    if missing:
        raise NotFound(f"instance {', '.join(map(str, missing))} not found")
    return dt_ok(found)


class ExpectValue(BaseModel):
    """One element of the reverse-control body."""

    model_config = ConfigDict(extra="forbid")

    id: StrictInt = Field(ge=1, le=INT64_MAX)
    expectvalue: StrictStr


EXPECT_VALUES = TypeAdapter(list[ExpectValue])


@documented(summary="Set desired values of State attributes (seed 002 reverse control)", body=list[ExpectValue],
            response=Empty, envelope="dt", tags=("seed 002",))
async def set_expectvalues(request: web.Request) -> web.Response:
    """PATCH /dt/open/v1/instance/{id}: set expectvalues of State attributes, command the device."""
    try:
        instance_id = parse_int(request.match_info["id"], maximum=INT64_MAX)
    except ValueError as err:
        raise bad("id", str(err)) from None
    body = await read_json(request)
    if not isinstance(body, list) or not body:
        raise ValidationFailed({"_body": ["a non-empty JSON array of {id, expectvalue}"]})
    try:
        wanted = EXPECT_VALUES.validate_python(body)
    except ValidationError as err:
        raise ValidationFailed(validation_fields(err)) from None
    values = {item.id: item.expectvalue for item in wanted}
    async with pool_of(request).acquire() as conn, conn.transaction():
        target = await instances.control_targets(conn, instance_id)
        if target is None or not await instances_visible(conn, visible_projects(request), [instance_id]):
            raise NotFound(f"instance {instance_id} not found")
        attrs = await instances.attributes_of(conn, instance_id, list(values))
        command = _command_values(values, attrs)
        # the command's id is the set request's: the device's set_reply names it (handlers.outcomes)
        command_id = new_message_id() if target["device_key"] is not None else None
        version = await instances.set_expectvalues(conn, values, request=command_id)
        if command_id is not None:
            message = SetMeasurepoints(
                message_id=command_id, product_key=target["product_key"], device_key=target["device_key"],
                instance_id=instance_id, version=version, values=command,
                expires_at=datetime.now(UTC) + COMMAND_TTL)
            key = f"set.{target['product_key']}.{target['device_key']}"
            await enqueue_messages(conn, [(COMMANDS, key, message)])
    await request.app[OUTBOX].flush_quietly()
    return dt_ok({})


def _command_values(values: dict[int, str], attrs: dict[int, Any]) -> dict[str, Any]:
    missing = [ident for ident in values if ident not in attrs]
    if missing:
        raise NotFound(f"attribute {', '.join(map(str, missing))} not found in this instance")
    command: dict[str, Any] = {}
    for ident, text in values.items():
        attr = attrs[ident]
        if attr["attrtype"] != "State":
            raise HttpError(400, f"attribute {ident} is a {attr['attrtype']} attribute; "
                                 "only State attributes take an expectvalue")
        try:
            command[attr["measurepoint"] or attr["name"]] = typed_expectvalue(text, datatype=attr["datatype"])
        except BadExpectValue as err:
            raise HttpError(400, f"attribute {ident}: {err}") from None
    return command


def add_open_routes(app: web.Application) -> None:
    """The seed-002 instance endpoints."""
    app.router.add_get("/dt/open/v1/instances", list_instances)
    app.router.add_get("/dt/open/v1/instance", instance_details)
    app.router.add_patch("/dt/open/v1/instance/{id}", set_expectvalues)
